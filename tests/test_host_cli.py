"""The command line (`python -m vschaos.host` / `vschaos-host`) through main(argv) and its exit codes."""
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from host_models import DelayLine, Gain, RMSCodec, Raising, save  # noqa: E402
from vschaos.host.__main__ import main  # noqa: E402


@pytest.fixture
def gain_path(tmp_path):
    return save(Gain(0.5), tmp_path / "gain.ts")


def test_describe_text_json_yaml(gain_path, tmp_path, capsys):
    assert main(["describe", gain_path]) == 0
    assert "forward: 1 ins (ratio 1), 1 outs (ratio 1)" in capsys.readouterr().out
    assert main(["describe", gain_path, "--json", "--yaml", str(tmp_path / "m.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["methods"][0]["name"] == "forward"
    assert yaml.safe_load((tmp_path / "m.yaml").read_text())["methods"][0]["inDim"] == 1


def test_verify_exit_codes(gain_path, tmp_path, capsys):
    assert main(["verify", gain_path, "--buffers", "256,1024"]) == 0
    assert "RESULT: OK" in capsys.readouterr().out
    broken = save(DelayLine(forget_state=True), tmp_path / "broken.ts")
    assert main(["verify", broken, "--buffers", "512"]) == 1
    out = capsys.readouterr().out
    assert "FAIL [forward] streaming" in out and "RESULT: FAILED" in out
    assert main(["verify", gain_path, "--buffers", "512", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_render_cli(gain_path, tmp_path, capsys):
    x = (0.1 * np.random.default_rng(0).standard_normal(2000)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    out = str(tmp_path / "out.wav")
    assert main(["render", gain_path, "forward", str(tmp_path / "in.wav"), out, "--buffer", "256",
                 "--threaded", "--set", "gain=2"]) == 0
    y, _ = sf.read(out, dtype="float32")
    latency = 2 * 256 - 64
    np.testing.assert_allclose(y[latency:], 2 * x[:2000 - latency], atol=1e-7)
    codec = save(RMSCodec(), tmp_path / "codec.ts")
    assert main(["render", codec, "encode", str(tmp_path / "in.wav"), out, "--buffer", "512"]) == 0
    assert sf.read(out, dtype="float32")[0].shape == (2000, 4)  # control outputs as 4-channel audio


def test_bench_cli(gain_path, capsys):
    assert main(["bench", gain_path, "--buffers", "256,2048", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "forward" in out and "1/RTF" in out and "threaded" in out and "ms@44.1k" in out
    assert main(["bench", gain_path, "--buffers", "256", "--seconds", "0.02", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["buffer_size"] == 256 and rows[0]["median_ms"] > 0


@pytest.mark.parametrize("argv, message", [
    (["describe", "missing.ts"], "model file not found"),
    (["verify", "GAIN", "--buffers", "300"], "not a power of two"),
    (["render", "GAIN", "nope", "IN", "OUT"], "unknown method 'nope'"),
    (["render", "GAIN", "forward", "IN", "OUT", "--set", "volume=1"], "unknown attribute 'volume'"),
    (["render", "RAISING", "forward", "IN", "OUT", "--buffer", "2048"], "buffer too large"),
    (["describe", "NOT_TS"], "not a TorchScript file"),
])
def test_user_errors_give_one_message(argv, message, gain_path, tmp_path, capsys):
    sf.write(tmp_path / "in.wav", np.zeros(4096, np.float32), 44100)
    (tmp_path / "not.ts").write_text("not a model")
    names = {"GAIN": gain_path, "IN": str(tmp_path / "in.wav"), "OUT": str(tmp_path / "out.wav"),
             "RAISING": save(Raising(), tmp_path / "raising.ts"), "NOT_TS": str(tmp_path / "not.ts")}
    assert main([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


class _GainAt22k(Gain):
    """The gain model, exposing a 22.05 kHz sample rate as our exports do."""

    def __init__(self):
        super().__init__()
        self.sample_rate = 22050


def test_bench_measures_rtf_at_the_model_rate(tmp_path):
    from vschaos.host import bench_model

    path = save(_GainAt22k(), tmp_path / "gain22k.ts")
    own = bench_model(path, buffers=[2048], max_calls=5, seconds_per_case=0.01)
    forced = bench_model(path, buffers=[2048], max_calls=5, seconds_per_case=0.01, sample_rate=48000)
    plain = bench_model(save(Gain(), tmp_path / "gain.ts"), buffers=[2048], max_calls=5, seconds_per_case=0.01)
    assert (own.sample_rate, forced.sample_rate, plain.sample_rate) == (22050, 48000, 44100)
    assert "at 22050 Hz" in own.format()
