"""bench/older_libtorch_check.py: the portability check users run in another torch install."""
import importlib.util
from pathlib import Path

import pytest

from host_models import Gain, NaNModel, RMSCodec, save

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "older_libtorch_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("older_libtorch_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_good_models_pass_every_method_and_attribute(check, tmp_path, capsys):
    assert check([save(Gain(), tmp_path / "gain.ts")]) == 0
    assert check([save(RMSCodec(), tmp_path / "codec.ts"), "--buffer", "1024"]) == 0
    out = capsys.readouterr().out
    assert "PASS encode batch 4: output (4, 4, 2)" in out and "PASS attribute gain = [0.5]" in out
    assert "FAIL" not in out


def test_wrong_shape_or_nan_fails(check, tmp_path, capsys):
    assert check([save(RMSCodec(short_frame=True), tmp_path / "short.ts")]) == 1
    assert "FAIL encode batch 1" in capsys.readouterr().out
    # NaN output counts as a failure even with the right shape (the 0.5-rms test signal exceeds 0.4)
    assert check([save(NaNModel(), tmp_path / "nan.ts")]) == 1


def test_not_torchscript_fails_cleanly(check, tmp_path, capsys):
    bogus = tmp_path / "bogus.ts"
    bogus.write_bytes(b"not a model")
    assert check([str(bogus)]) == 1
    assert "FAIL load" in capsys.readouterr().out
