"""Hostile arguments to ``generate.py`` and ``script.py``: neither writes outside its output folder nor over its
own input, and every bad argument or fault ends in one line naming it, a non-zero status and nothing partial.

Read-only folders: tests run as root, which ignores permission bits (``os.access`` says yes too), so a folder is
made unwritable the way it fails for a user: ``chmod 0o555`` and, for root, ``os.access``, ``os.mkdir`` and
``tempfile.mkstemp`` answering EACCES (or EROFS, a read-only disk) below it. Where the write itself must fail
(root, a disk that fills up), only the write is made to raise.
"""
import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from test_generation_cli import harmonic_tone, make_run, write_wav  # noqa: E402  (one run-folder maker for the CLIs)
from vschaos.cli import script
from vschaos.cli.generate import main as generate
from vschaos.generation.errors import GenerationError
from vschaos.training.run import CONFIG_NAME

RATE = 22050


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), "demo", "demo")


@pytest.fixture
def own_run(demo_run, tmp_path):
    """A copy of the demo run that a test may make read-only."""
    return Path(shutil.copytree(demo_run, tmp_path / "runs" / "demo"))


def demo_hop(run: Path) -> int:
    return int(OmegaConf.load(run / "version_0" / CONFIG_NAME).transform.hop)


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model is loaded: arguments must be refused before."""
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    import vschaos.cli.generate_commands as commands
    import vschaos.training.run as run_module

    monkeypatch.setattr(commands, "open_run", loaded)
    monkeypatch.setattr(run_module, "open_run", loaded)


def one_line(err: str) -> str:
    """The single line of an error output (fails on a traceback or several lines)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def files_under(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def unwritable(monkeypatch):
    """``unwritable(folder, code=errno.EACCES)``: writes below ``folder`` fail with ``code``: ``chmod 0o555``,
    and where that is not enough (root; EROFS, a read-only disk) the calls that would write answer ``code``."""
    made = []
    real_access, real_mkdir, real_mkstemp = os.access, os.mkdir, tempfile.mkstemp

    def make(folder: Path, code: int = errno.EACCES) -> Path:
        folder = folder.resolve()
        if code == errno.EACCES:
            folder.chmod(0o555)
            made.append(folder)
            if not os.access(folder, os.W_OK):
                return folder  # not root: the permission bits are enough

        def below(path) -> bool:
            path = Path(os.path.abspath(path))
            return path == folder or folder in path.parents

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and below(path):
                return False
            return real_access(path, mode, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if below(path):
                raise OSError(code, os.strerror(code), str(path))
            return real_mkdir(path, *args, **kwargs)

        def mkstemp(*args, **kwargs):
            where = kwargs.get("dir")
            if where is not None and below(where):
                raise OSError(code, os.strerror(code), str(Path(where) / "tmpXXXXXXXX"))
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


@pytest.fixture
def take(tmp_path) -> Path:
    return write_wav(tmp_path / "take.wav", harmonic_tone(220.0, 0.3, RATE), RATE)


# ------------------------------------------------------------------ generate.py: outputs never replace inputs

def test_reconstruct_refuses_to_replace_its_input_file_or_folder(demo_run, tmp_path, capsys, no_model):
    out = tmp_path / "out"
    take1 = write_wav(out / "reconstructions" / "take1.wav", harmonic_tone(220.0, 0.3, RATE), RATE)
    original = take1.read_bytes()
    for given in (take1, out / "reconstructions", Path(os.path.relpath(take1))):
        assert generate(["reconstruct", str(demo_run), "--files", str(given), "--out", str(out)]) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith("error: --files ") and "is also an output" in line and "take1.wav" in line
        assert take1.read_bytes() == original and files_under(out) == ["reconstructions",
                                                                       "reconstructions/take1.wav"]


def test_reconstruct_refuses_an_output_linked_to_its_input(demo_run, tmp_path, capsys, no_model):
    take = write_wav(tmp_path / "takes" / "take.wav", harmonic_tone(220.0, 0.3, RATE), RATE)
    original = take.read_bytes()
    for link in (os.link, os.symlink):
        out = tmp_path / f"out_{link.__name__}"
        (out / "reconstructions").mkdir(parents=True)
        link(take, out / "reconstructions" / "take.wav")  # the output's name, the input's file
        assert generate(["reconstruct", str(demo_run), "--files", str(take), "--out", str(out)]) == 2
        line = one_line(capsys.readouterr().err)
        assert f"--files {take} is also an output ({out / 'reconstructions' / 'take.wav'})" in line
        assert take.read_bytes() == original


def test_trajectories_refuse_to_replace_an_interpolated_or_spread_input(demo_run, tmp_path, take, capsys,
                                                                        no_model):
    out = tmp_path / "out"
    endpoint = write_wav(out / "trajectories" / "interpolate_1.wav", harmonic_tone(330.0, 0.3, RATE), RATE)
    original = endpoint.read_bytes()
    assert generate(["trajectories", str(demo_run), "--trajectories", "interpolate", "-b", "2", "--files",
                     str(take), str(endpoint), "-s", "8", "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: --files {endpoint} is also an output")
    # a hard link to a --spread-from sound, at the name of an .npy the command would write
    os.link(take, out / "trajectories" / "sin_0.npy")
    assert generate(["trajectories", str(demo_run), "--trajectories", "sin", "--spread-from", str(take), "-s", "8",
                     "--out", str(out)]) == 2
    assert f"--spread-from {take} is also an output" in one_line(capsys.readouterr().err)
    assert endpoint.read_bytes() == original and take.is_file()
    # a name beyond -b is not an output: the command goes on to load the model (which the test refuses)
    with pytest.raises(AssertionError, match="a model was loaded"):
        generate(["trajectories", str(demo_run), "--trajectories", "interpolate", "-b", "1", "--files",
                  str(take), str(endpoint), "-s", "4", "--out", str(out)])


# ------------------------------------------------------------------ generate.py: --out

@pytest.mark.parametrize("command", ["reconstruct", "trajectories"])
def test_generate_out_that_is_a_file_is_one_line(command, demo_run, tmp_path, take, capsys, no_model):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    extra = ["--files", str(take)] if command == "reconstruct" else ["--trajectories", "sin", "-s", "8"]
    assert generate([command, str(demo_run), *extra, "--out", str(notes)]) == 2
    assert one_line(capsys.readouterr().err) == f"error: --out {notes} is a file, not a folder"
    assert generate([command, str(demo_run), *extra, "--out", str(notes / "deeper")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: --out {notes / 'deeper'}: cannot create the folder") and "is a file" in line
    assert notes.read_text() == "keep me"


@pytest.mark.parametrize("command", ["reconstruct", "trajectories"])
def test_generate_read_only_out_is_one_line_before_the_model_loads(command, demo_run, tmp_path, take, capsys,
                                                                   unwritable, no_model):
    (tmp_path / "out_ro").mkdir()
    out = unwritable(tmp_path / "out_ro")
    extra = ["--files", str(take)] if command == "reconstruct" else ["--trajectories", "sin", "-s", "8"]
    assert generate([command, str(demo_run), *extra, "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == f"error: --out {out}: cannot write in {out} (read-only or not yours); choose another --out"
    assert files_under(out) == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_generate_write_that_fails_is_one_line_naming_the_file(code, demo_run, tmp_path, take, capsys,
                                                               monkeypatch):
    """The check beforehand cannot see everything (root, a disk that fills up): the write's own failure."""
    out = tmp_path / "out"
    real_mkstemp = tempfile.mkstemp

    def failing(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(out)):
            raise OSError(code, os.strerror(code), str(Path(kwargs["dir"]) / ".take.wav.tmp"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", failing)
    assert generate(["reconstruct", str(demo_run), "--files", str(take), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {out / 'reconstructions' / 'take.wav'}: {os.strerror(code)}")
    assert "choose another --out" in line and not list((out / "reconstructions").iterdir())


def test_generate_disk_full_is_one_line_naming_the_file(demo_run, tmp_path, take, capsys, monkeypatch):
    import vschaos.io

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(vschaos.io, "write_bytes", full)  # metrics.csv's writer (the .wav is written by scipy)
    out = tmp_path / "out"
    assert generate(["reconstruct", str(demo_run), "--files", str(take), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: disk full: cannot write {out / 'reconstructions' / 'metrics.csv'} (")
    assert "free some space or choose another --out" in line
    assert files_under(out) == ["reconstructions", "reconstructions/take.wav"]  # complete; no temporary


def test_generate_interrupted_is_one_line(demo_run, tmp_path, take, capsys, monkeypatch):
    import vschaos.cli.generate_commands as commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "reconstruct_files", interrupted)
    out = tmp_path / "out"
    assert generate(["reconstruct", str(demo_run), "--files", str(take), "--out", str(out)]) == 130
    assert one_line(capsys.readouterr().err) == (f"interrupted; the files already in {out} are complete, none is "
                                                 f"partial")


# ------------------------------------------------------------------ generate.py: lengths and rates

def test_trajectories_too_long_for_memory_is_one_line_before_the_model_loads(demo_run, tmp_path, capsys,
                                                                             no_model):
    out = tmp_path / "out"
    assert generate(["trajectories", str(demo_run), "--trajectories", "sin", "-s", "1000000000",
                     "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: -s 1000000000: a path of 1000000000 frames") and "at most -s " in line
    assert not out.exists()


def test_the_longest_path_named_is_the_longest_that_fits():
    from vschaos.generation.limits import check_trajectory_length, trajectory_bytes

    settings = dict(n_fft=1024, hop=256, model_rate=RATE, out_rate=48000)
    available = trajectory_bytes(5000, 1024, 256, RATE, 48000) + 10  # 5000 frames fit, 5001 do not
    check_trajectory_length(5000, available=available, **settings)
    with pytest.raises(GenerationError, match=r"^-s 5001: .* at most -s 5000 \("):
        check_trajectory_length(5001, available=available, **settings)
    with pytest.raises(GenerationError, match=r"at most -s 5000 \("):
        check_trajectory_length(10 ** 9, available=available, **settings)
    with pytest.raises(GenerationError, match="not even -s 1 fits"):
        check_trajectory_length(10, available=10, **settings)


def test_output_rate_with_a_huge_resampling_filter_is_refused(demo_run, tmp_path, capsys, no_model):
    from vschaos.generation.limits import check_sample_rate, resample_filter_bytes

    # 22050 -> 44100: gcd 22050, a (2, 1 + 2 * 7) filter of 16 bytes per tap; 44101 shares no factor with 22050
    assert resample_filter_bytes(RATE, 44100) == 2 * (1 + 2 * 7) * 16
    assert resample_filter_bytes(RATE, RATE) == 0
    check_sample_rate(RATE, 48000, "--sr 48000", "")
    assert generate(["trajectories", str(demo_run), "--trajectories", "sin", "-s", "8", "--sr", "44101",
                     "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: --sr 44101: resampling 22050 Hz to 44101 Hz builds a filter of about 15.6 GB")
    assert line.endswith("choose a common rate such as 44100 or 48000")
    # an input at such a rate, read at the model's
    odd = write_wav(tmp_path / "odd.wav", harmonic_tone(220.0, 0.1, 44101), 44101)
    assert generate(["reconstruct", str(demo_run), "--files", str(odd), "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: --files {odd}: resampling 44101 Hz to 22050 Hz builds a filter")
    assert not (tmp_path / "out").exists()


def test_an_input_too_long_for_memory_is_one_line_before_the_model_loads(demo_run, tmp_path, take, capsys,
                                                                         no_model, monkeypatch):
    import vschaos.generation.limits as limits

    monkeypatch.setattr(limits, "available_memory", lambda: 50 * 10 ** 6)  # 50 MB: well under a minute of sound
    long = write_wav(tmp_path / "long.wav", harmonic_tone(220.0, 90.0, RATE), RATE)
    assert generate(["reconstruct", str(demo_run), "--files", str(take), str(long), "--out",
                     str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: --files {long}: 1 min 30 s of sound needs about ")
    assert "50.0 MB are available: split it into pieces of at most " in line
    assert not (tmp_path / "out").exists()


def test_the_longest_input_named_is_the_longest_that_fits():
    from vschaos.generation.limits import check_input_length, trajectory_bytes

    settings = dict(n_fft=1024, hop=256, model_rate=RATE, out_rate=RATE)
    # 256 * 100 samples at the model's rate: 100 frames, plus the samples as read
    available = trajectory_bytes(100, 1024, 256, RATE, RATE) + 8 * 25600
    check_input_length("a.wav", 25600, RATE, available=available, **settings)
    with pytest.raises(GenerationError, match=r"^b\.wav: 2\.32 s of sound .* at most 1\.16 s$"):
        check_input_length("b.wav", 51200, RATE, available=available, **settings)
    with pytest.raises(GenerationError, match=r"at most 1\.16 s$"):  # one sample more than fits
        check_input_length("c.wav", 25601, RATE, available=available, **settings)


# ------------------------------------------------------------------ script.py: names and buffers

@pytest.mark.parametrize("name", ["../../x", "..", ".", "", "   ", "/tmp/abs", "sub/x", "a\\b", "x" * 300])
def test_script_output_name_must_be_a_bare_name(name, demo_run, tmp_path, capsys, no_model):
    out = tmp_path / "exports" / "a" / "b"
    out.mkdir(parents=True)
    assert script.main([str(demo_run), "-o", str(out), "--output-name", name]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("script.py: --output-name")
    assert files_under(tmp_path) == ["exports", "exports/a", "exports/a/b"]


def test_script_n_as_output_name_must_be_a_bare_name(demo_run, tmp_path, capsys, no_model):
    assert script.main([str(demo_run), "-o", str(tmp_path), "-n", ".."]) == 2
    assert one_line(capsys.readouterr().err).startswith("script.py: -n ..: must be a bare file name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("buffer", ["100", "0", "-4", "HOP/2", "131072"])
def test_script_buffers_outside_the_contract_are_one_line(buffer, demo_run, tmp_path, capsys, no_model):
    hop = demo_hop(demo_run)
    value = str(hop // 2) if buffer == "HOP/2" else buffer
    assert script.main([str(demo_run), "-o", str(tmp_path), f"--buffers={value}"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"script.py: --buffers {value}: ")
    assert line.endswith(f"allowed: powers of two from {hop} to 65536")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "11"])
def test_script_temperature_outside_the_export_range_is_one_line(value, demo_run, tmp_path, capsys, no_model):
    assert script.main([str(demo_run), "-o", str(tmp_path), f"--temperature={value}"]) == 2
    assert one_line(capsys.readouterr().err) == f"script.py: --temperature {float(value):g}: must be within [0, 10]"
    assert list(tmp_path.iterdir()) == []


def test_generate_label_and_interpolation_arguments_are_checked_before_the_model_loads(demo_run, tmp_path, take,
                                                                                         capsys, no_model):
    out = tmp_path / "out"
    assert generate(["reconstruct", str(demo_run), "--files", str(take), "--labels", "pitch", "--out",
                     str(out)]) == 2
    assert one_line(capsys.readouterr().err) == "error: --labels expects task=value items, got 'pitch'"
    assert generate(["trajectories", str(demo_run), "--trajectories", "interpolate", "--files", str(take),
                     "--out", str(out)]) == 2
    assert "needs exactly two sound files" in one_line(capsys.readouterr().err)
    assert not out.exists()


def test_script_refuses_to_replace_the_checkpoint(own_run, tmp_path, capsys, no_model):
    checkpoint = own_run / "version_0" / "checkpoints" / "last.ckpt"
    original = checkpoint.read_bytes()
    os.link(checkpoint, tmp_path / "model.ts")  # the same file under the export's name
    assert script.main([str(own_run), "-o", str(tmp_path / "model.ts")]) == 2
    assert "is the run's checkpoint" in one_line(capsys.readouterr().err)
    assert checkpoint.read_bytes() == original


# ------------------------------------------------------------------ script.py: folders that cannot be written

def test_script_read_only_out_is_one_line_before_the_model_loads(demo_run, tmp_path, capsys, unwritable,
                                                                 no_model):
    out = tmp_path / "ro"
    out.mkdir()
    out = unwritable(out)
    for target in (out, out / "new" / "deeper"):
        assert script.main([str(demo_run), "-o", str(target)]) == 2
        line = one_line(capsys.readouterr().err)
        assert line == (f"script.py: -o {target}: cannot write in {out} (read-only or not yours); choose a folder "
                        f"you can write with -o")
    assert files_under(out) == []


def test_script_read_only_run_without_o_names_the_folder_and_suggests_o(own_run, capsys, unwritable, no_model):
    before = files_under(own_run)
    unwritable(own_run)
    assert script.main([str(own_run)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "None" not in line and f"the default output folder {own_run}" in line and "with -o" in line
    assert files_under(own_run) == before


def test_script_read_only_disk_is_one_line_before_the_model_loads(demo_run, tmp_path, capsys, unwritable,
                                                                   no_model):
    out = unwritable(tmp_path, errno.EROFS)
    assert script.main([str(demo_run), "-o", str(out / "exports")]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"script.py: -o {out / 'exports'}: cannot write in {out}")
    assert list(tmp_path.iterdir()) == []


def test_script_out_that_is_a_file_is_one_line(demo_run, tmp_path, capsys, no_model):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert script.main([str(demo_run), "-o", str(notes)]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"script.py: -o {notes} is an existing file, not a folder")
    assert notes.read_text() == "keep me"


def test_script_write_refused_in_the_default_folder_suggests_o(own_run, capsys, monkeypatch):
    """Root writes where the permission bits say no, but a folder can still refuse (a read-only mount that
    os.access did not see, an ACL): the write's own EACCES, without -o."""
    real_mkstemp = tempfile.mkstemp

    def refused(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == own_run:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(own_run / ".demo.ts.tmp"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    before = files_under(own_run)
    assert script.main([str(own_run), "--buffers", "2048"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line == (f"script.py: cannot write {own_run / 'demo.ts'}: Permission denied; choose a folder you can "
                    f"write with -o ({own_run / 'demo.ts'} not written)")
    assert files_under(own_run) == before


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_script_write_that_fails_is_one_line(code, demo_run, tmp_path, capsys, monkeypatch):
    """What the check beforehand cannot see (root's permissions, a disk that fills up) fails at the write."""
    import torch

    def failing(module, where, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(where))

    monkeypatch.setattr(torch.jit, "save", failing)
    out = tmp_path / "out"
    assert script.main([str(demo_run), "-o", str(out), "--buffers", "2048"]) == 1
    line = one_line(capsys.readouterr().err)
    path = out / "demo.ts"
    assert line.startswith(f"script.py: cannot write {path}: {os.strerror(code)}; ")
    assert line.endswith(f"({path} not written)")
    assert not out.exists()  # its folder, made for the export, removed again: nothing partial


def test_script_disk_full_is_one_line(demo_run, tmp_path, capsys, monkeypatch):
    import vschaos.io

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(vschaos.io, "write_bytes", full)
    previous = tmp_path / "model.ts"
    previous.write_text("an earlier export")
    assert script.main([str(demo_run), "-o", str(previous), "--buffers", "2048"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"script.py: disk full: cannot write {previous} (")
    assert line.endswith("; free some space or choose another -o")
    assert previous.read_text() == "an earlier export" and files_under(tmp_path) == ["model.ts"]


def test_script_interrupted_export_is_one_line_and_leaves_the_file_unchanged(demo_run, tmp_path, capsys,
                                                                             monkeypatch):
    import vschaos.host

    def interrupted(*args, **kwargs):  # Ctrl-C while the saved temporary is being verified
        raise KeyboardInterrupt

    monkeypatch.setattr(vschaos.host, "verify_model", interrupted)
    previous = tmp_path / "model.ts"
    previous.write_text("an earlier export")
    assert script.main([str(demo_run), "-o", str(previous), "--buffers", "2048"]) == 130
    assert one_line(capsys.readouterr().err) == f"script.py: interrupted; {previous} unchanged"
    assert previous.read_text() == "an earlier export"
    assert files_under(tmp_path) == ["model.ts"]  # no temporary left beside it
    new = tmp_path / "new" / "deep"
    assert script.main([str(demo_run), "-o", str(new), "--buffers", "2048"]) == 130
    assert one_line(capsys.readouterr().err) == f"script.py: interrupted; {new / 'demo.ts'} unchanged"
    assert files_under(tmp_path) == ["model.ts"]


def test_reconstruct_reads_and_names_a_file_whose_name_is_not_utf8(demo_run, tmp_path, capsys):
    name = os.fsdecode(b"caf\xe9.wav")  # a valid WAV named in Latin-1, as on drives from older systems
    (tmp_path / "in").mkdir()
    import soundfile as sf

    sf.write(os.fsencode(tmp_path / "in" / name), harmonic_tone(220.0, 0.5, RATE), RATE)  # soundfile takes bytes
    assert generate(["reconstruct", str(demo_run), "--files", str(tmp_path / "in" / name),
                     "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "reconstructions" / name).is_file()
    out = capsys.readouterr().out
    assert "caf\\xe9.wav" in out and "\udce9" not in out  # printable on a strict UTF-8 terminal
    metrics = (tmp_path / "out" / "reconstructions" / "metrics.csv").read_text(encoding="utf-8")
    assert "caf\\xe9.wav" in metrics


@pytest.mark.parametrize("value", ["id:1_0", "id:\u0663", "id:+1"])
def test_a_typed_class_id_is_ascii_digits_only(value):
    from vschaos.generation.labels import user_label_to_id

    with pytest.raises(ValueError, match=r"must be followed by an integer class id \(ids 0\.\.11\)"):
        user_label_to_id("pitch", value, 12, {i: str(i) for i in range(12)})
    assert user_label_to_id("pitch", "id:10", 12, {i: str(i) for i in range(12)}) == 10
