"""vschaos/host/older_libtorch_check.py: the portability check users run in another torch install, as
``vschaos-host older-libtorch-check`` and as a file run by a Python that has torch and not vschaos."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from host_models import Gain, NaNModel, RMSCodec, save
from vschaos.host import older_libtorch_check
from vschaos.host.__main__ import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

MODULE = Path(older_libtorch_check.__file__)


def check(argv):
    return main(["older-libtorch-check", *argv])


def test_good_models_pass_every_method_and_attribute(tmp_path, capsys):
    assert check([save(Gain(), tmp_path / "gain.ts")]) == 0
    assert check([save(RMSCodec(), tmp_path / "codec.ts"), "--buffer", "1024"]) == 0
    out = capsys.readouterr().out
    assert "PASS encode batch 4: output (4, 4, 2)" in out and "PASS attribute gain = [0.5]" in out
    assert "FAIL" not in out


def test_wrong_shape_or_nan_fails(tmp_path, capsys):
    assert check([save(RMSCodec(short_frame=True), tmp_path / "short.ts")]) == 1
    assert "FAIL encode batch 1" in capsys.readouterr().out
    # NaN output counts as a failure even with the right shape (the 0.5-rms test signal exceeds 0.4)
    assert check([save(NaNModel(), tmp_path / "nan.ts")]) == 1


def test_not_torchscript_or_missing_fails_cleanly(tmp_path, capsys):
    bogus = tmp_path / "bogus.ts"
    bogus.write_bytes(b"not a model")
    assert check([str(bogus)]) == 1
    assert "FAIL load" in capsys.readouterr().out
    assert check([str(tmp_path / "missing.ts")]) == 1
    assert "FAIL load" in capsys.readouterr().out


@pytest.mark.parametrize("buffer", ["0", "-8", "1000", "two", str(1 << 17)])
def test_a_bad_buffer_is_refused_in_one_line(buffer, tmp_path, capsys):
    assert check([save(Gain(), tmp_path / "gain.ts"), "--buffer", buffer]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --buffer" in err[0] and "is not a power of two from 1 to 65536" in err[0]


def test_the_module_imports_only_torch_and_the_standard_library():
    """So that a Python without vschaos can run the file (the reason it is not built on the host's loader)."""
    tree = ast.parse(MODULE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    relative = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative and imported <= {"argparse", "os", "stat", "sys", "typing", "torch"}, imported


def test_runs_as_a_file_outside_the_package(tmp_path):
    model = save(Gain(), tmp_path / "gain.ts")
    done = subprocess.run([sys.executable, str(MODULE), model, "--buffer", "512"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "PASS forward batch 4: output (4, 1, 512) (expected (4, 1, 512))" in done.stdout


def test_every_call_into_the_model_goes_through_the_runner(tmp_path, capsys):
    calls = []

    def run(what, function, *args):
        calls.append(what)
        return function(*args)

    assert older_libtorch_check.check(save(Gain(), tmp_path / "gain.ts"), 256, run) == 0
    assert calls == ["get_methods()", "method 'forward' (buffer 256, batch 1)", "method 'forward' (buffer 256, batch 4)",
                     "get_attributes()", "get_gain()", "set_gain"]


def test_a_call_that_never_returns_fails_under_the_hosts_time_limit(tmp_path):
    from host_models import Forever
    from test_hostile_host import host_process

    process = host_process("older-libtorch-check", save(Forever(), tmp_path / "forever.ts"), "--call-timeout", "1")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert out.startswith("torch ")
    assert err.strip() == ("FAIL: method 'forward' (buffer 2048, batch 1) did not return within 1 s; stopped "
                           "(raise --call-timeout if the model is only slow)")


def test_a_fifo_given_as_the_model_fails_without_waiting_for_a_writer(tmp_path, capsys):
    import os

    from vschaos.host.older_libtorch_check import check

    fifo = tmp_path / "model.ts"
    os.mkfifo(fifo)
    assert check(str(fifo), 2048) == 1  # opening the FIFO to read would block forever
    assert f"FAIL load: {fifo} is not a regular file" in capsys.readouterr().out

