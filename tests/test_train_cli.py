"""train_model.py as a Hydra application (sweeps, --cfg, hydra.run.dir), preset errors, the thread policy and
commands whose --help loads no torch."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from vschaos.cli.train import main
from vschaos.data.demo import make_demo_dataset
from vschaos import threads as threads_module
from vschaos.threads import THREAD_ENV_VARIABLES, apply_thread_policy

REPO = Path(__file__).resolve().parents[1]
FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "data.batch_size=32",
        "callbacks.progress.refresh_rate=0", "trainer.enable_model_summary=false", "callbacks.reconstructions=null",
        "trainer.log_every_n_steps=1"]


def test_a_misspelt_preset_lists_the_presets_that_exist(capsys):
    assert main(["--config-name", "dgt_mdi", "data.dataset.root=x"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'dgt_mdi'" in err and "dgt_mid" in err and "dgt_pitch_prediction" in err and "demo" in err
    assert "Traceback" not in err


def test_cfg_job_prints_the_composed_config_and_trains_nothing(tmp_path, capsys):
    rundir = tmp_path / "runs"
    assert main(["--config-name", "demo", f"rundir={rundir}", "data.dataset.root=somewhere", "+data.dataset.n_files=3",
                 "--cfg", "job"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["name"] == "demo" and printed["transform"]["n_fft"] == 1024
    assert printed["data"]["dataset"] == {**printed["data"]["dataset"], "root": "somewhere", "n_files": 3}
    assert printed["threads"] == "auto" and "hydra" not in printed and not rundir.exists()


def test_hydra_help_shows_the_vschaos2_command_lines(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "+data.dataset.root=my_data" in out and "resume my_path/my_training" in out and "experiment:" in out


@pytest.mark.slow
def test_sweep_writes_one_version_per_job_and_hydra_run_dir_moves_the_run(tmp_path, capsys):
    root = make_demo_dataset(tmp_path / "demo", sample_rate=22050, minutes=0.2, files_per_instrument=2)
    rundir = tmp_path / "runs"
    common = ["--config-name", "demo", f"rundir={rundir}", f"+data.dataset.root={root}", *FAST]
    assert main([*common, "module.optimizer.lr=1e-3,2e-3", "-m"]) == 0
    run = rundir / "demo"
    assert sorted(p.name for p in run.iterdir()) == ["multirun.yaml", "version_0", "version_1"]
    rates = [yaml.safe_load((run / f"version_{n}" / "config.yaml").read_text())["module"]["optimizer"]["lr"]
             for n in (0, 1)]
    assert rates == [1e-3, 2e-3]
    assert all((run / f"version_{n}" / "checkpoints" / "last.ckpt").is_file() for n in (0, 1))
    assert "[sweep] job 0" in capsys.readouterr().out

    # hyperparameters: the module reloads from a checkpoint alone (weights_only), hparams.yaml and HPARAMS are filled
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vschaos.models.lightning import SpectralVAEModule

    version = run / "version_1"
    last = version / "checkpoints" / "last.ckpt"
    module = SpectralVAEModule.load_from_checkpoint(last, map_location="cpu", weights_only=True)
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert module.vae.latent_dim == 16 and state["hyper_parameters"]["optimizer"]["lr"] == 2e-3
    assert module.optimizer_factory.keywords["lr"] == 2e-3 and module.loss.beta == state["hyper_parameters"]["loss"]["beta"]
    assert torch.equal(module.vae.transform.norm_mean, state["state_dict"]["vae.transform.norm_mean"])
    assert yaml.safe_load((version / "hparams.yaml").read_text())["vae"]["transform"]["n_fft"] == 1024
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(version))
    events.Reload()
    hparams_tags = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams_tags)
    content = plugin_data_pb2.HParamsPluginData.FromString(hparams_tags["_hparams_/experiment"])
    assert [m.name.tag for m in content.experiment.metric_infos] == ["val/spectral_convergence"]
    assert "module/optimizer/lr" in {h.name for h in content.experiment.hparam_infos}

    elsewhere = tmp_path / "elsewhere" / "my_run"
    assert main([*common, f"hydra.run.dir={elsewhere}"]) == 0
    assert (elsewhere / "version_0" / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((elsewhere / "version_0" / "config.yaml").read_text())
    assert Path(saved["rundir"]) / saved["name"] == elsewhere
    assert sorted(p.name for p in run.iterdir()) == ["multirun.yaml", "version_0", "version_1"]  # untouched


def test_thread_policy_sets_torch_and_the_environment(monkeypatch):
    previous = torch.get_num_threads()
    for name in THREAD_ENV_VARIABLES + ("OMP_WAIT_POLICY",):
        monkeypatch.delenv(name, raising=False)
    try:
        assert apply_thread_policy(2) == 2 and torch.get_num_threads() == 2
        assert all(os.environ[name] == "2" for name in THREAD_ENV_VARIABLES)
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # threads sleep instead of spinning at barriers
        assert apply_thread_policy(1) == 1 and torch.get_num_threads() == 1
        assert torch.get_num_interop_threads() == 1
        with pytest.raises(ValueError, match="threads must be >= 0"):
            apply_thread_policy(-1)
    finally:
        torch.set_num_threads(previous)


def test_threads_auto_takes_the_idle_cores_and_at_least_one(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    for idle, expected in ((1.97, 2), (1.8, 2), (1.0, 1), (0.6, 1), (0.0, 1), (7.9, 2)):
        monkeypatch.setattr(threads_module, "idle_cores", lambda seconds=0.25, idle=idle: idle)
        assert threads_module.resolve_threads("auto") == expected, idle
    assert threads_module.resolve_threads(3) == 3 and threads_module.resolve_threads(None) == 0
    assert threads_module.threads_argument("AUTO") == "auto" and threads_module.threads_argument("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match="'auto', got 'two'"):
        threads_module.threads_argument("two")
    with pytest.raises(ValueError, match="or 'auto', got 'many'"):
        threads_module.resolve_threads("many")


@pytest.mark.parametrize("value", ["abc", "-2"])
def test_a_bad_threads_value_is_one_line_before_anything_runs(value, tmp_path, capsys):
    assert main(["--config-name", "demo", f"threads={value}", f"data.dataset.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert f"threads={value}: threads must be" in err and "'auto'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_idle_cores_counts_what_other_processes_leave(monkeypatch):
    """/proc/stat's idle share over the probe, times the cores; this process sleeps meanwhile."""
    readings = iter([(1000, 4000), (1150, 4200)])  # (idle, total) jiffies: 150 of 200 idle
    monkeypatch.setattr(threads_module, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 2)
    assert threads_module.idle_cores(seconds=0.0) == pytest.approx(1.5)
    monkeypatch.setattr(threads_module, "_cpu_times", lambda: None)  # no /proc (macOS): the load average
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (0.5, 0.0, 0.0))
    assert threads_module.idle_cores(seconds=0.0) == pytest.approx(1.5)


@pytest.mark.parametrize("command", ["train_model.py", "script.py", "generate.py", "extract_pitch.py",
                                     "-m vschaos.host", "data_tools/check_dataset.py",
                                     "data_tools/make_demo_dataset.py", "data_tools/make_sampled_dataset.py",
                                     "data_tools/folders_to_metadata.py"])
def test_help_loads_neither_torch_nor_lightning(command):
    run = (f"runpy.run_module({command[3:]!r}, run_name='__main__', alter_sys=True)" if command.startswith("-m ")
           else f"runpy.run_path({str(REPO / command)!r}, run_name='__main__')")
    probe = (f"import runpy, sys; sys.argv = [{command!r}, '--help']\n"
             f"try:\n    {run}\n"
             f"except SystemExit:\n    pass\n"
             f"heavy = sorted(m for m in ('torch', 'lightning') if m in sys.modules)\n"
             f"print('HEAVY', heavy)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower() or "train_model.py" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
