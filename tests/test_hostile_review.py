"""A second hostile pass over the run-folder, generation and host guarantees: each test is an attack that got
through (a hang, a traceback, a multi-line fault) and must now be one line, non-zero, nothing written."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from torch import Tensor

from host_models import Gain, NNModel, save
from vschaos.host import load_model
from vschaos.host.__main__ import main as host_main
from vschaos.host.errors import ModelLoadError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def host(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m vschaos.host ARGS`` in a child process: a hang fails the test instead of stopping the suite."""
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "vschaos.host", *args], capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if line.strip()]
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- host

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("command", ["describe", "render", "verify"])
def test_host_refuses_a_fifo_named_like_a_model_without_waiting(tmp_path, command):
    fifo = tmp_path / "model.ts"
    os.mkfifo(fifo)
    audio = tmp_path / "in.wav"
    sf.write(audio, np.zeros(512, np.float32), 44100)
    args = {"describe": [str(fifo)], "render": [str(fifo), "forward", str(audio), str(tmp_path / "o.wav")],
            "verify": [str(fifo)]}[command]
    result = host(command, *args)  # opening a FIFO for reading waited for a writer forever
    text = one_line_error(result)
    assert "not a regular file" in text or "FIFO" in text
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_render_refuses_a_fifo_input_without_waiting(tmp_path):
    model = save(Gain(), tmp_path / "gain.ts")
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    result = host("render", model, "forward", str(fifo), str(tmp_path / "o.wav"))
    text = one_line_error(result)
    assert text.count("\n") == 0 and "in.wav" in text and "FIFO" in text
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_model_link_to_a_device_is_refused_unread(tmp_path):
    link = tmp_path / "model.ts"
    link.symlink_to("/dev/zero")  # read() of it never ends: memory, not an answer
    with pytest.raises(ModelLoadError, match="model.ts: it is a device, not a file"):
        load_model(str(link))


class HugeRatio(NNModel):
    """forward declared as (1, 2**40, 1, 1): the host would allocate a 2**40-sample ring per inlet."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1 << 40, 1, 1])

    def forward(self, x: Tensor) -> Tensor:
        return x


class HugeChannels(HugeRatio):
    def __init__(self):
        NNModel.__init__(self)
        self.register_method("forward", [1 << 30, 1, 1, 1])


@pytest.mark.parametrize("model_class", [HugeRatio, HugeChannels])
def test_method_params_beyond_any_nn_buffer_are_one_line(tmp_path, capsys, model_class):
    model = save(model_class(), tmp_path / "huge.ts")
    audio = tmp_path / "in.wav"
    sf.write(audio, np.zeros(512, np.float32), 44100)
    # was numpy's ArrayMemoryError traceback ("Unable to allocate 4.00 TiB")
    assert host_main(["render", model, "forward", str(audio), str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'forward_params'" in err and "<= 65536" in err
    assert not (tmp_path / "o.wav").exists()
