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


# ------------------------------------------------------------------------------------------------ run folders

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A demo run folder (random weights) to copy and spoil."""
    from test_generation_cli import make_run
    return make_run(tmp_path_factory.mktemp("runs"), "demo", "demo")


def spoiled_copy(demo_run, tmp_path, edit_config=None) -> Path:
    import shutil
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    if edit_config is not None:
        config = run / "version_0" / "config.yaml"
        config.write_text(edit_config(config.read_text()))
    return run


def test_a_yaml_alias_bomb_in_config_is_refused_before_it_expands(demo_run, tmp_path):
    from vschaos.training.run import RunFolderError, open_run
    bomb = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 5)]  # 10**5 leaves; 9 levels hung
    run = spoiled_copy(demo_run, tmp_path, lambda text: text + "\n".join(bomb) + "\n")
    lines = len((run / "version_0" / "config.yaml").read_text().splitlines())
    with pytest.raises(RunFolderError) as caught:
        open_run(run)
    assert str(caught.value) == (f"{run}/version_0/config.yaml, line {lines - 3}: refused the YAML alias *l0: a run "
                                 f"config holds plain values only")


def test_a_python_tag_in_config_is_one_line_naming_the_line(demo_run, tmp_path):
    from vschaos.training.run import RunFolderError, open_run
    victim = tmp_path / "victim"
    run = spoiled_copy(demo_run, tmp_path,
                       lambda text: text + f"evil: !!python/object/apply:os.system ['touch {victim}']\n")
    lines = len((run / "version_0" / "config.yaml").read_text().splitlines())
    with pytest.raises(RunFolderError) as caught:
        open_run(run)
    message = str(caught.value)
    assert "\n" not in message and f"config.yaml, line {lines}: could not determine a constructor" in message
    assert not victim.exists()


def test_a_config_too_large_to_be_ours_is_refused_unparsed(demo_run, tmp_path):
    from vschaos.training.run import MAX_CONFIG_BYTES, RunFolderError, open_run
    run = spoiled_copy(demo_run, tmp_path, lambda text: text + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(RunFolderError, match=f"config.yaml is larger than {MAX_CONFIG_BYTES} bytes"):
        open_run(run)


def test_weights_that_do_not_fit_the_config_are_one_line(demo_run, tmp_path):
    import torch
    from vschaos.io import atomic_torch_save
    from vschaos.training.run import RunFolderError, open_run
    run = spoiled_copy(demo_run, tmp_path)
    checkpoint = run / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    weights = state["state_dict"]
    first = next(iter(weights))
    weights[first] = torch.zeros(3, 5, 7)  # a shape the model does not have
    weights.update({f"vae.extra_{i}": torch.zeros(1) for i in range(2000)})  # and keys it does not know
    atomic_torch_save(state, checkpoint)
    with pytest.raises(RunFolderError) as caught:
        open_run(run)
    message = str(caught.value)
    # torch's text spans lines (one per problem) and lists every key: one line, cut
    assert "\n" not in message and "do not fit the model" in message and "vae.extra_1999" not in message
    assert message.endswith("...")


def test_a_config_whose_model_cannot_be_built_is_one_line(demo_run, tmp_path):
    import re
    from vschaos.training.run import RunFolderError, open_run
    run = spoiled_copy(demo_run, tmp_path, lambda text: re.sub(r"(?m)^  latent_dim: .*$", "  latent_dim: abc", text))
    with pytest.raises(RunFolderError) as caught:
        open_run(run)
    message = str(caught.value)
    assert "\n" not in message and "does not describe a vschaos model" in message and "abc" in message


def test_a_dropped_call_guard_has_ended_its_worker_when_it_is_collected():
    """A command that fails right after loading a model drops the guard and returns; a worker still ending
    while the interpreter finalised aborted the process after the one-line error (exit 134, "terminate called
    without an active exception")."""
    import threading

    from vschaos.host.guard import CallGuard

    before = set(threading.enumerate())  # workers of earlier tests' hung models stay stuck: not this guard's
    guard = CallGuard(30.0)
    assert guard.run("a call", lambda: 7) == 7
    workers = [t for t in threading.enumerate() if t.name == "vschaos-host-call" and t.is_alive() and t not in before]
    assert len(workers) == 1
    del guard  # collected here (no cycle): its finalizer runs now, in this thread
    assert not any(worker.is_alive() for worker in workers)


# ------------------------------------------------------------------------------------------- resume's checkpoint

FAST = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "data.batch_size=32",
        "callbacks.progress=null", "callbacks.reconstructions=null", "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false", "threads=1"]


def test_resume_from_weights_that_do_not_fit_the_model_is_one_line(demo_root, tmp_path, capsys):
    import torch
    from vschaos.cli.train import main as train_main
    from vschaos.io import atomic_torch_save
    assert train_main(["--config-name", "demo", "name=run", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                       "trainer.max_epochs=1", *FAST]) == 0
    checkpoint = tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    first = next(key for key in state["state_dict"] if key.startswith("vae."))
    state["state_dict"][first] = torch.zeros(3, 5, 7)
    state["state_dict"]["vae.extra"] = torch.zeros(1)
    atomic_torch_save(state, checkpoint)
    capsys.readouterr()
    # was torch's "Error(s) in loading state_dict" traceback, exit 1
    assert train_main(["resume", str(tmp_path / "run"), "trainer.max_epochs=2"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train_model.py")]
    assert len(err) == 1 and "the checkpoint does not fit this run's model: unexpected weight vae.extra; weight " \
                             f"{first} is (3, 5, 7), the model's" in err[0]


def test_an_optimizer_state_for_other_parameters_is_named():
    import torch
    from vschaos.models.lightning import checkpoint_fit_problems
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    checkpoint = {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}
    assert checkpoint_fit_problems(model, checkpoint) == []
    checkpoint["optimizer_states"][0]["state"][0]["exp_avg"] = torch.zeros(7)  # Adam failed at its first step
    assert checkpoint_fit_problems(model, checkpoint) == [
        "optimizer state 0: exp_avg of parameter 0 is (7,), the parameter's (2, 3)"]
    checkpoint["optimizer_states"][0]["param_groups"][0]["params"] = [0]
    assert checkpoint_fit_problems(model, checkpoint) == ["optimizer state 0 is for 1 parameters, the model has 2"]


@pytest.mark.parametrize("name", ["resumes", "checkpoints", "prior"])
def test_a_file_where_commands_write_a_folder_is_refused_before_anything_runs(demo_run, tmp_path, name):
    import shutil
    from vschaos.training.resume import plan_resume
    from vschaos.training.run import UnsafePathError
    run = spoiled_copy(demo_run, tmp_path)
    path = run / "version_0" / name
    if path.exists():
        shutil.rmtree(path)
    path.write_text("not a folder")  # resume's record_resume died on it with a FileExistsError traceback
    with pytest.raises(UnsafePathError, match=f"{path} is not a folder: commands write their files into {name}/"):
        plan_resume(str(run))
