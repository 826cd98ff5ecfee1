"""The command line (`python -m vschaos.host` / `vschaos-host`) through main(argv) and its exit codes."""
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from host_models import DelayLine, Gain, IdentitySpectral, RMSCodec, Raising, save  # noqa: E402
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


class _HopForward(IdentitySpectral):
    """forward (ratio 1) through 256-sample frames: like our exports, it needs whole hops (minimum buffer 256)."""

    def __init__(self):
        super().__init__(ratio=256)
        self.register_method("forward", [1, 1, 1, 1])
        self.sample_rate = 22050


def test_bench_skips_and_names_buffers_below_the_model_minimum(tmp_path, capsys):
    path = save(_HopForward(), tmp_path / "hop.ts")
    assert main(["bench", path, "--methods", "forward", "--buffers", "128,2048", "--seconds", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "skipped: B=128: below the model's minimum buffer size 256" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("forward ") and "sync" not in line
            and "threaded" not in line] == ["2048"]
    assert main(["bench", path, "--buffers", "64,128", "--seconds", "0.02"]) == 2
    assert "every one is below the model's minimum buffer size 256" in capsys.readouterr().err


def test_latency_tables_use_the_model_sample_rate(tmp_path, capsys):
    from vschaos.host import describe_model, latency_table

    table = latency_table(describe_model(save(_HopForward(), tmp_path / "hop.ts")), 2048)
    header = table.splitlines()[1]
    assert "ms@22.05k" in header and "44.1k" not in header and "48k" not in header
    sync = next(line for line in table.splitlines() if line.startswith("forward") and " sync " in line).split()
    assert float(sync[-1]) == pytest.approx(1000 * int(sync[-2]) / 22050, abs=0.01)
    # a model that exposes no rate keeps both usual rates
    assert "ms@44.1k" in latency_table(describe_model(save(Gain(), tmp_path / "g.ts")), 2048)
    assert main(["bench", save(_HopForward(), tmp_path / "hop2.ts"), "--buffers", "2048", "--seconds", "0.02"]) == 0
    assert "ms@22.05k" in capsys.readouterr().out


@pytest.mark.parametrize("spelling", [["512,2048"], ["512", "2048"], ["512,", "2048"]])
def test_buffers_accept_commas_or_spaces(spelling, gain_path, capsys):
    from vschaos.host.__main__ import build_parser

    assert build_parser().parse_args(["verify", gain_path, "--buffers", *spelling]).buffers == [512, 2048]
    assert build_parser().parse_args(["bench", gain_path, "--buffers", *spelling]).buffers == [512, 2048]
    assert main(["verify", gain_path, "--buffers", *spelling, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["buffers"] == [512, 2048]


def test_render_refuses_a_file_at_another_rate_unless_resample(tmp_path, capsys):
    path = save(_GainAt22k(), tmp_path / "gain22k.ts")
    t = np.arange(4410) / 44100
    sf.write(tmp_path / "in44k.wav", (0.5 * np.sin(2 * np.pi * 441 * t)).astype(np.float32), 44100, subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert main(["render", path, "forward", str(tmp_path / "in44k.wav"), str(out)]) == 2
    err = capsys.readouterr().err
    assert "in44k.wav is at 44100 Hz but the model runs at 22050 Hz" in err and "--resample" in err
    assert not out.exists()
    assert main(["render", path, "forward", str(tmp_path / "in44k.wav"), str(out), "--resample",
                 "--compensate-delay", "--set", "gain=1"]) == 0
    y, rate = sf.read(out, dtype="float32")
    assert rate == 22050 and y.shape == (2205,)
    # still a 441 Hz tone: 10 periods in 0.1 s, now 50 samples per period
    np.testing.assert_allclose(y[200:2000], 0.5 * np.sin(2 * np.pi * 441 * np.arange(200, 2000) / 22050), atol=2e-3)


def test_render_never_writes_non_finite_samples(tmp_path, capsys):
    from host_models import NaNModel

    path = save(NaNModel(), tmp_path / "nan.ts")
    sf.write(tmp_path / "in.wav", np.linspace(0, 1, 4096, dtype=np.float32), 44100, subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert main(["render", path, "forward", str(tmp_path / "in.wav"), str(out), "--buffer", "512",
                 "--compensate-delay"]) == 1
    err = capsys.readouterr().err
    first_nan = int(np.argmax(np.linspace(0, 1, 4096, dtype=np.float32) > 0.4))
    assert f"non-finite sample(s) (NaN/Inf), the first at sample {first_nan} of outlet 0; nothing written" in err
    assert not out.exists()


def test_describe_yaml_is_refused_over_the_model_or_under_a_file(gain_path, tmp_path, capsys):
    before = open(gain_path, "rb").read()
    assert main(["describe", gain_path, "--yaml", gain_path]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: refusing to write {gain_path}: it is the command's own input {gain_path} " \
                          f"(choose another output file)"
    assert open(gain_path, "rb").read() == before
    (tmp_path / "afile").write_text("x")
    assert main(["describe", gain_path, "--yaml", str(tmp_path / "afile" / "m.yaml")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: cannot write {tmp_path / 'afile' / 'm.yaml'}: "
                                               f"{tmp_path / 'afile'} is a file, not a folder")


def test_help_lists_every_subcommand_and_bench_takes_the_shared_thread_spellings(gain_path, capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("describe", "verify", "render", "bench", "older-libtorch-check"))
    import torch

    try:
        for threads in ("0", "auto", "2"):
            assert main(["bench", gain_path, "--buffers", "256", "--seconds", "0.01", "--threads", threads,
                         "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["threads"] >= 1
    finally:
        torch.set_num_threads(1)  # the command set this process's threads (conftest's policy: one)
