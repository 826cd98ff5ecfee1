"""The host under hostile models, arguments and files: it never hangs, never accepts a bad argument, never writes
outside where it is told (issue 27, part D)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import sigint_as_at_a_terminal
from host_models import DelayLine, Forever, Gain, Mixer, save
from vschaos.host import HostError, load_model
from vschaos.host.__main__ import main
from vschaos.host.errors import ModelTimeoutError
from vschaos.host.guard import CallGuard

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def host_process(*args: str) -> subprocess.Popen:
    """``python -m vschaos.host ARGS`` as a user runs it, its output captured as text (strict UTF-8)."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONWARNINGS="ignore::FutureWarning")
    return subprocess.Popen([sys.executable, "-m", "vschaos.host", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=sigint_as_at_a_terminal)


@pytest.fixture
def gain_path(tmp_path):
    return save(Gain(0.5), tmp_path / "gain.ts")


@pytest.fixture
def forever_path(tmp_path):
    return save(Forever(), tmp_path / "forever.ts")


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ---- a model call that never returns ---------------------------------------------------------------------------
def test_a_call_that_never_returns_fails_naming_method_and_buffer(forever_path):
    start = time.monotonic()
    process = host_process("verify", forever_path, "--buffers", "512,2048", "--call-timeout", "1")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert err.strip() == ("FAIL: method 'forward' (buffer 2048, batch 1) did not return within 1 s; stopped "
                           "(raise --call-timeout if the model is only slow)")
    assert time.monotonic() - start < 60


def _stuck_in_a_call(pid: int) -> bool:
    """The main thread asleep (waiting for the call) while another thread of the process runs (the model)."""
    states = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states[int(task.name)] = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
    return states.get(pid) == "S" and any(state == "R" for tid, state in states.items() if tid != pid)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread states from /proc (Linux)")
@pytest.mark.parametrize("command", ["verify", "threaded render"])
def test_ctrl_c_stops_a_call_that_never_returns_in_one_line(command, forever_path, tmp_path):
    sf.write(tmp_path / "in.wav", np.zeros(8192, np.float32), 44100, subtype="FLOAT")
    argv = {"verify": ["verify", forever_path, "--buffers", "2048"],
            "threaded render": ["render", forever_path, "forward", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"),
                                "--buffer", "2048", "--threaded"]}[command]
    process = host_process(*argv, "--call-timeout", "600")
    deadline, steady = time.monotonic() + 90, 0
    while steady < 5 and time.monotonic() < deadline and process.poll() is None:
        steady = steady + 1 if _stuck_in_a_call(process.pid) else 0
        time.sleep(0.1)
    assert steady == 5, "the host never reached the model call"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert err.strip() == "vschaos-host: interrupted" and out == ""


def test_the_guard_times_out_refuses_later_calls_and_passes_results_and_errors_through():
    guard = CallGuard(0.2)
    assert guard.run("add", lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        guard.run("divide", lambda: 1 / 0)
    release = threading.Event()
    with pytest.raises(ModelTimeoutError, match=r"^method 'f' \(buffer 64\) did not return within 0.2 s; stopped$"):
        guard.run("method 'f' (buffer 64)", release.wait)
    with pytest.raises(ModelTimeoutError, match=r"an earlier call \(method 'f' \(buffer 64\)\) never returned"):
        guard.run("add", lambda a, b: a + b, 2, 3)
    release.set()  # the stuck call ends: the worker thread does not outlive the test
    with pytest.raises(ValueError, match="must be > 0"):
        CallGuard(0)


def test_calls_under_a_time_limit_give_the_same_output_and_time_the_model_alone(tmp_path):
    path = save(DelayLine(30, 30), tmp_path / "delay.ts")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 512)).astype(np.float32))
    plain, limited = load_model(path), load_model(path, call_timeout=30)
    assert limited.fresh().call_timeout == 30
    for _ in range(3):  # the state carried from call to call is the same
        assert torch.equal(plain.call("forward", x), limited.call("forward", x))
    assert 0 < limited.last_call_seconds < 30 and 0 < plain.last_call_seconds < 30
    limited.reset_state()  # reset() runs on the worker too
    plain.reset_state()
    assert torch.equal(plain.call("forward", x), limited.call("forward", x))
    gain = load_model(save(Gain(0.5), tmp_path / "gain.ts"), call_timeout=30)
    gain.set_attribute("gain", ["2"])
    assert gain.get_attribute("gain") == [2.0] and torch.equal(gain.call("forward", x), 2 * x)


# ---- arguments: refused while parsing, in one line, before any model is loaded --------------------------------
@pytest.mark.parametrize("argv, argument", [
    (["verify", "--tolerance", "nan"], "--tolerance"),
    (["verify", "--tolerance", "inf"], "--tolerance"),
    (["verify", "--tolerance", "0"], "--tolerance"),
    (["verify", "--tolerance", "-1e-3"], "--tolerance"),
    (["verify", "--tolerance", "2"], "--tolerance"),
    (["verify", "--batch-sizes", "0"], "--batch-sizes"),
    (["verify", "--batch-sizes", "1,65"], "--batch-sizes"),
    (["verify", "--batch-sizes", "-4"], "--batch-sizes"),
    (["verify", "--buffers", "300"], "--buffers"),
    (["verify", "--buffers", "0"], "--buffers"),
    (["verify", "--buffers", "131072"], "--buffers"),
    (["verify", "--methods", ","], "--methods"),
    (["verify", "--call-timeout", "0"], "--call-timeout"),
    (["verify", "--call-timeout", "nan"], "--call-timeout"),
    (["verify", "--call-timeout", "inf"], "--call-timeout"),
    (["describe", "--call-timeout", "-1"], "--call-timeout"),
    (["bench", "--threads", "-1"], "--threads"),
    (["bench", "--threads", "100000"], "--threads"),
    (["bench", "--batch", "0"], "--batch"),
    (["bench", "--seconds", "0"], "--seconds"),
    (["bench", "--seconds", "nan"], "--seconds"),
    (["bench", "--seconds", "1e9"], "--seconds"),
    (["bench", "--sample-rate", "0"], "--sample-rate"),
    (["bench", "--sample-rate", "10000000"], "--sample-rate"),
    (["bench", "--buffers", "100"], "--buffers"),
    (["bench", "--call-timeout", "inf"], "--call-timeout"),
    (["render", "forward", "IN", "OUT", "--buffer", "300"], "--buffer"),
    (["render", "forward", "IN", "OUT", "--buffer", "0"], "--buffer"),
    (["render", "forward", "IN", "OUT", "--vector", "3"], "--vector"),
    (["render", "forward", "IN", "OUT", "--batch", "65"], "--batch"),
    (["render", "forward", "IN", "OUT", "--call-timeout", "0"], "--call-timeout"),
])
def test_bad_numbers_are_refused_before_anything_runs(argv, argument, tmp_path, capsys):
    # a model that fails its checks, and does not even exist: nothing may get as far as loading it
    command, rest = argv[0], argv[1:]
    assert main([command, str(tmp_path / "missing.ts"), *rest]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"vschaos-host {command}: error: argument {argument}") and "missing.ts" not in line
    assert capsys.readouterr().out == ""


def test_a_failing_model_is_not_passed_by_a_nan_tolerance(tmp_path, capsys):
    broken = save(DelayLine(forget_state=True), tmp_path / "broken.ts")
    assert main(["verify", broken, "--buffers", "512"]) == 1
    assert "RESULT: FAILED" in capsys.readouterr().out
    for tolerance in ("nan", "inf"):
        assert main(["verify", broken, "--buffers", "512", "--tolerance", tolerance]) == 2
        assert "RESULT" not in capsys.readouterr().out


# ---- render: where it writes --------------------------------------------------------------------------------
@pytest.fixture
def stereo_input(tmp_path):
    x = (0.1 * np.random.default_rng(3).standard_normal((3000, 2))).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    return path, x


def test_render_under_a_file_names_the_path(gain_path, stereo_input, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    assert main(["render", gain_path, "forward", str(stereo_input[0]), str(tmp_path / "afile" / "o.wav")]) == 2
    assert one_error_line(capsys) == (f"error: cannot write {tmp_path / 'afile' / 'o.wav'}: {tmp_path / 'afile'} is "
                                      f"a file, not a folder")
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_render_into_a_folder_or_without_a_sound_extension_is_refused(gain_path, stereo_input, tmp_path, capsys):
    assert main(["render", gain_path, "forward", str(stereo_input[0]), str(tmp_path)]) == 2
    assert one_error_line(capsys) == f"error: cannot write {tmp_path}: it is a folder"
    assert main(["render", gain_path, "forward", str(stereo_input[0]), str(tmp_path / "o.xyz")]) == 2
    assert "'xyz' is not a sound file extension" in one_error_line(capsys)
    assert main(["render", gain_path, "forward", str(stereo_input[0]), str(tmp_path / "o.flac")]) == 2
    assert "FLAC files cannot hold FLOAT samples" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gain.ts", "in.wav"]


@pytest.mark.parametrize("spelling", ["same", "dotted", "link", "model"])
def test_render_never_overwrites_its_input_or_its_model(spelling, gain_path, stereo_input, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.wav").symlink_to(stereo_input[0])
    output = {"same": str(stereo_input[0]), "dotted": "./sub/../in.wav", "link": "link.wav", "model": gain_path}
    os.makedirs(tmp_path / "sub")
    before = {p: Path(p).read_bytes() for p in (stereo_input[0], gain_path)}
    assert main(["render", gain_path, "forward", "in.wav", output[spelling]]) == 2
    assert one_error_line(capsys).startswith(f"error: refusing to write {output[spelling]}: it is the command's own "
                                             f"input")
    assert {p: Path(p).read_bytes() for p in before} == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_render_into_a_read_only_folder_is_refused_in_one_line(gain_path, stereo_input, tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert main(["render", gain_path, "forward", str(stereo_input[0]), str(folder / "o.wav")]) == 2
        assert one_error_line(capsys) == f"error: cannot write {folder / 'o.wav'}: folder {folder} is not writable"
    finally:
        folder.chmod(0o755)


def test_a_failed_write_is_one_line_and_keeps_the_previous_output(gain_path, stereo_input, tmp_path, capsys,
                                                                   monkeypatch):
    """The write is atomic (a permission refused as root never is, a disk fills): nothing half-written is left."""
    output = tmp_path / "out.wav"
    output.write_bytes(b"previous render")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", full_disk)
    assert main(["render", gain_path, "forward", str(stereo_input[0]), str(output)]) == 2
    assert one_error_line(capsys) == f"error: cannot write {output}: No space left on device"
    assert output.read_bytes() == b"previous render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gain.ts", "in.wav", "out.wav"]


# ---- render: channels -----------------------------------------------------------------------------------------
def test_stereo_into_one_inlet_is_mixed_to_mono_and_said(gain_path, stereo_input, tmp_path, capsys):
    path, x = stereo_input
    out = tmp_path / "out.wav"
    assert main(["render", gain_path, "forward", str(path), str(out), "--buffer", "64", "--set", "gain=1"]) == 0
    assert one_error_line(capsys) == (f"note: {path}: 2 channels mixed to mono (their mean, as training does) for the "
                                      f"one inlet of method 'forward'")
    y, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(y, x.mean(axis=1), atol=1e-7)  # B = V = 64: no latency


def test_extra_or_missing_channels_of_a_multi_inlet_method_are_said(tmp_path, capsys):
    mixer = save(Mixer(), tmp_path / "mixer.ts")
    x = (0.1 * np.random.default_rng(5).standard_normal((1024, 3))).astype(np.float32)
    sf.write(tmp_path / "three.wav", x, 44100, subtype="FLOAT")
    sf.write(tmp_path / "one.wav", x[:, 0], 44100, subtype="FLOAT")
    assert main(["render", mixer, "forward", str(tmp_path / "three.wav"), str(tmp_path / "o3.wav"),
                 "--buffer", "64"]) == 0
    assert one_error_line(capsys).endswith("three.wav: channels 3..3 not used (method 'forward' has 2 inlets)")
    y, _ = sf.read(tmp_path / "o3.wav", dtype="float32")
    np.testing.assert_allclose(y[:, 2], x[:, 0] + 10 * x[:, 1], atol=1e-6)
    assert main(["render", mixer, "forward", str(tmp_path / "one.wav"), str(tmp_path / "o1.wav"),
                 "--buffer", "64"]) == 0
    assert one_error_line(capsys).endswith("one.wav: 1 channel(s) for 2 inlets of method 'forward': inlets 2..2 "
                                           "get silence")


# ---- render: names that are not UTF-8 -------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_a_file_name_that_is_not_utf8_renders_and_is_shown_readably(gain_path, tmp_path):
    folder = os.fsencode(tmp_path)
    source, target = folder + b"/caf\xe9.wav", folder + b"/caf\xe9-out.wav"
    x = (0.1 * np.random.default_rng(1).standard_normal(2000)).astype(np.float32)
    with open(source, "wb") as handle:  # soundfile is handed a file object: the test does not rely on the fix
        sf.write(handle, x, 44100, format="WAV", subtype="FLOAT")
    process = host_process("render", gain_path, "forward", os.fsdecode(source), os.fsdecode(target),
                           "--buffer", "64", "--set", "gain=2")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out.startswith(f"wrote {tmp_path}/caf\\xe9-out.wav: 1 channel(s), 2000 samples"), (out, err)
    with open(target, "rb") as handle:
        y, _ = sf.read(handle, dtype="float32")
    np.testing.assert_allclose(y, 2 * x, atol=1e-7)
    missing = host_process("render", gain_path, "forward", os.fsdecode(folder + b"/na\xefve.wav"),
                           os.fsdecode(target))
    out, err = missing.communicate(timeout=120)
    assert missing.returncode == 2 and err.strip() == f"error: input file not found: {tmp_path}/na\\xefve.wav", err


def test_library_render_refuses_its_input_with_a_host_error(gain_path, stereo_input):
    from vschaos.host import render

    with pytest.raises(HostError, match="it is the command's own input"):
        render(gain_path, "forward", str(stereo_input[0]), str(stereo_input[0]))


def test_a_threaded_render_of_a_call_that_never_returns_fails_too(forever_path, tmp_path):
    x = (0.1 * np.random.default_rng(2).standard_normal(8192)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    process = host_process("render", forever_path, "forward", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                           "--buffer", "2048", "--threaded", "--call-timeout", "1")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert err.strip().startswith("FAIL: method 'forward' (buffer 2048, batch 1) did not return within 1 s")
    assert not (tmp_path / "out.wav").exists()
