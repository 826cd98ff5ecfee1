"""Training loses no work and never finishes broken; a run folder cannot run code (issue 14, items 1-6).

One short plateau run (learning rate 0: the validation metric never improves after the first epoch) is trained
once per module and copied into each test that writes to it.
"""
import errno
import logging
import os
import pickle
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import pytest
import torch
from omegaconf import OmegaConf

from vschaos.cli import generate, script
from vschaos.cli.train import compose_config, main
from vschaos.models.lightning import NonFiniteTrainingError
from vschaos.models.losses import SpectralVAELoss
from vschaos.training import checkpoints as checkpoints_module
from vschaos.training import fit as fit_module
from vschaos.training.checkpoints import BestCheckpoint, LastCheckpoint
from vschaos.training.fit import build_objects, claim_version
from vschaos.training.resume import parse_resume_arguments
from vschaos.training.run import (ALLOWED_TARGETS, CONFIG_NAME, ForbiddenTargetError, RunFolderError, build_model,
                                  check_targets, open_run)

FAST = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "data.batch_size=32",
        "callbacks.progress=null", "callbacks.reconstructions=null", "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false"]
PRESETS = ["demo", "dgt_low", "dgt_mid", "dgt_high", "dgt_harmonic", "dgt_live", "dgt_pitch_cond", "dgt_pitch_prediction"]


@pytest.fixture(scope="module")
def plateau_run(demo_root, tmp_path_factory) -> Path:
    """``version_0`` of a 3-epoch demo run (2 steps per epoch) with learning rate 0."""
    rundir = tmp_path_factory.mktemp("plateau")
    assert main(["--config-name", "demo", "name=plateau", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 "module.optimizer.lr=0.0", "trainer.max_epochs=3", *FAST]) == 0
    return rundir / "plateau" / "version_0"


@pytest.fixture
def run_copy(plateau_run, tmp_path) -> Path:
    """A private copy of the plateau run's version folder (``tmp/runs/plateau/version_0``)."""
    target = tmp_path / "runs" / "plateau" / "version_0"
    shutil.copytree(plateau_run, target)
    return target


def _checkpoint(path: Path) -> Dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- 1. last.ckpt every epoch

def test_last_checkpoint_is_the_final_step_when_the_metric_stops_improving(plateau_run):
    folder = plateau_run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    last, best = _checkpoint(folder / "last.ckpt"), _checkpoint(folder / "best.ckpt")
    assert last["global_step"] == 6 and last["epoch"] == 2  # 3 epochs of 2 steps
    assert best["global_step"] == 2  # the metric never improved after the first epoch


def test_last_checkpoint_every_n_steps_is_written_mid_epoch(demo_root, tmp_path, monkeypatch):
    saved_steps = []
    original = checkpoints_module.LastCheckpoint._save

    def recording_save(self, trainer, pl_module):
        original(self, trainer, pl_module)
        saved_steps.append(_checkpoint(self.path)["global_step"])

    monkeypatch.setattr(checkpoints_module.LastCheckpoint, "_save", recording_save)
    assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=3", "callbacks.last.every_n_train_steps=2",
                 *FAST[1:]]) == 0
    assert saved_steps == [2, 3]  # step 2 mid-epoch, then the end of the epoch


def test_an_old_config_without_a_last_callback_still_gets_last_every_epoch(tmp_path):
    cfg = compose_config("demo", ["callbacks.last=null"])
    callbacks = fit_module._callbacks(cfg, tmp_path)
    lasts = [c for c in callbacks if isinstance(c, LastCheckpoint)]
    bests = [c for c in callbacks if isinstance(c, BestCheckpoint)]
    assert len(lasts) == 1 and lasts[0].path == tmp_path / "last.ckpt"
    assert len(bests) == 1 and bests[0].save_last is False  # Lightning's improvement-only last.ckpt is off


# ----------------------------------------------------------------------------- 2. NaN/Inf guard

def _nan_loss_from(monkeypatch, first_step: int, last_step: int = 10 ** 9) -> None:
    """Make the loss NaN (so are its gradients) for training/validation steps with ``first <= step <= last``."""
    original = SpectralVAELoss.forward

    def forward(self, magnitude, estimate, mean, std, step):
        terms = original(self, magnitude, estimate, mean, std, step)
        if first_step <= step <= last_step:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(SpectralVAELoss, "forward", forward)


def test_nonfinite_steps_are_skipped_with_a_warning_and_training_goes_on(demo_root, tmp_path, monkeypatch, caplog):
    _nan_loss_from(monkeypatch, 1, 2)
    with caplog.at_level(logging.WARNING, logger="vschaos.models.lightning"):
        assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                     "trainer.max_epochs=2", "module.max_nonfinite_steps=3", *FAST]) == 0
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert [m.split()[1] for m in skipped] == ["1", "2"]
    last = _checkpoint(tmp_path / "demo" / "version_0" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point())
    assert all(torch.isfinite(t).all() for state in last["optimizer_states"][0]["state"].values()
               for t in state.values() if torch.is_tensor(t) and t.is_floating_point())


def test_training_stops_after_k_nonfinite_steps_in_a_row_with_exit_1(demo_root, tmp_path, monkeypatch, capsys):
    _nan_loss_from(monkeypatch, 2)
    assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=5", "module.max_nonfinite_steps=2", *FAST]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("train_model.py:")]
    assert len(lines) == 1 and "NonFiniteTrainingError" in lines[0] and "2 steps in a row" in lines[0]
    assert "module.max_nonfinite_steps=2" in lines[0] and "Traceback" not in err
    folder = tmp_path / "demo" / "version_0" / "checkpoints"
    # the first epoch (steps 0, 1) was finite: its checkpoints are kept, nothing later was written
    assert _checkpoint(folder / "last.ckpt")["global_step"] == 2 and _checkpoint(folder / "best.ckpt")["global_step"] == 2


def test_the_guard_drops_nonfinite_gradients_and_counts_steps_in_a_row(demo_root):
    _, _, module = build_objects(compose_config("demo", [f"data.dataset.root={demo_root}",
                                                         "module.max_nonfinite_steps=2"]))
    parameters = list(module.parameters())

    def set_gradients(value: float) -> None:
        for parameter in parameters:
            parameter.grad = torch.full_like(parameter, value)

    set_gradients(1.0)
    parameters[3].grad[0] = float("inf")  # one bad gradient is enough
    module.on_before_optimizer_step(None)
    assert all(p.grad is None for p in parameters) and module.nonfinite_in_a_row == 1
    set_gradients(1.0)
    module.on_before_optimizer_step(None)  # a finite step resets the count and keeps the gradients
    assert module.nonfinite_in_a_row == 0 and all(p.grad is not None for p in parameters)
    set_gradients(float("nan"))
    module.on_before_optimizer_step(None)
    set_gradients(float("nan"))
    with pytest.raises(NonFiniteTrainingError, match="2 steps in a row"):
        module.on_before_optimizer_step(None)
    assert module.skipped_steps == 3


def _fake_trainer(module: torch.nn.Module, step: int = 7) -> SimpleNamespace:
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)
    return SimpleNamespace(lightning_module=module, strategy=strategy, global_step=step, fast_dev_run=False,
                           sanity_checking=False, saved=[], save_checkpoint=None)


def test_best_checkpoint_never_takes_a_nonfinite_metric_or_weights():
    module = torch.nn.Linear(2, 2)
    trainer = _fake_trainer(module)
    best = BestCheckpoint(monitor="val/spectral_convergence", mode="min", save_top_k=1)
    assert best.check_monitor_top_k(trainer, torch.tensor(0.5)) is True  # no best yet
    assert best.check_monitor_top_k(trainer, torch.tensor(float("nan"))) is False
    assert best.check_monitor_top_k(trainer, torch.tensor(float("inf"))) is False
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    assert best.check_monitor_top_k(trainer, torch.tensor(0.5)) is False


def test_last_checkpoint_is_not_written_from_nonfinite_weights(tmp_path):
    module = torch.nn.Linear(2, 2)
    trainer = _fake_trainer(module)
    trainer.save_checkpoint = lambda path, weights_only=False: trainer.saved.append(Path(path))
    last = LastCheckpoint(dirpath=str(tmp_path))
    last.on_train_epoch_end(trainer, module)
    assert trainer.saved == [tmp_path / "last.ckpt"]
    with torch.no_grad():
        module.bias[1] = float("inf")
    last.on_train_epoch_end(trainer, module)
    assert trainer.saved == [tmp_path / "last.ckpt"]  # not rewritten


# ----------------------------------------------------------------------------- 3. resume rules

@pytest.mark.parametrize("override, key", [("model.latent_dim=32", "model"), ("transform.hop=128", "transform"),
                                           ("data.dataset.tasks=[pitch]", "data.dataset.tasks"),
                                           ("+model.conditioning.pitch.dim=12", "model"),
                                           ("module.optimizer._target_=torch.optim.SGD", "module.optimizer._target_")])
def test_resume_refuses_a_model_change_before_writing_anything(run_copy, capsys, override, key):
    before = _snapshot(run_copy.parent)
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=9", override]) == 2
    err = capsys.readouterr().err
    assert f"resume cannot change {key} " in err and "nothing was written" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(run_copy.parent) == before  # no config rewrite, no events file, no resume record


def test_resume_keeps_each_resumes_overrides_and_the_previous_config(run_copy, capsys):
    original = (run_copy / CONFIG_NAME).read_text()
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=4", "module.optimizer.lr=1e-4"]) == 0
    assert _checkpoint(run_copy / "checkpoints" / "last.ckpt")["global_step"] == 8  # continued, not restarted
    record = run_copy / "resumes" / "1"
    assert (record / "config_before.yaml").read_text() == original
    assert OmegaConf.load(record / "resume.yaml").overrides == ["trainer.max_epochs=4", "module.optimizer.lr=1e-4"]
    saved = OmegaConf.load(run_copy / CONFIG_NAME)
    assert saved.trainer.max_epochs == 4 and saved.module.optimizer.lr == 1e-4
    assert saved.model == OmegaConf.load(record / "config_before.yaml").model
    optimiser = _checkpoint(run_copy / "checkpoints" / "last.ckpt")["optimizer_states"][0]
    assert optimiser["param_groups"][0]["lr"] == 1e-4  # the override took effect (Lightning restores the old lr)
    assert main(["resume", str(run_copy), "trainer.max_epochs=4"]) == 0  # nothing left to train: still recorded
    assert OmegaConf.load(run_copy / "resumes" / "2" / "resume.yaml").overrides == ["trainer.max_epochs=4"]


def test_resume_arguments_take_a_checkpoint_anywhere():
    assert parse_resume_arguments(["runs/x", "a=1", "--checkpoint", "best", "b=2"]) == ("runs/x", "best", ["a=1", "b=2"])
    assert parse_resume_arguments(["runs/x", "-n", "epoch=3"]) == ("runs/x", "epoch=3", [])
    assert parse_resume_arguments(["runs/x", "--checkpoint=best"]) == ("runs/x", "best", [])
    with pytest.raises(SystemExit, match="--checkpoint needs a value"):
        parse_resume_arguments(["runs/x", "--checkpoint"])


# ----------------------------------------------------------------------------- 4. broken checkpoints, full disk

class _Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


@pytest.mark.parametrize("content, reason", [
    (b"", "EOFError"), (b"PK\x03\x04 truncated zip", "RuntimeError"),
    (pickle.dumps(_Payload()), "more than tensors and plain data")])
def test_a_broken_last_checkpoint_is_one_line_offering_best(run_copy, capsys, content, reason):
    last = run_copy / "checkpoints" / "last.ckpt"
    last.write_bytes(content)
    before = _snapshot(run_copy)
    assert main(["resume", str(run_copy.parent)]) == 2
    captured = capsys.readouterr()
    assert "payload ran" not in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"cannot resume from {last}" in err and reason in err
    assert f"train_model.py resume {run_copy} --checkpoint best" in err
    assert _snapshot(run_copy) == before  # in particular no new, empty TensorBoard events file


def test_resume_from_best_after_a_broken_last(run_copy):
    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert main(["resume", str(run_copy.parent), "--checkpoint", "best", "trainer.max_epochs=4"]) == 0
    # best was step 2 (end of epoch 0): epochs 1, 2, 3 are trained again, last.ckpt is whole again
    assert _checkpoint(run_copy / "checkpoints" / "last.ckpt")["global_step"] == 8
    assert OmegaConf.load(run_copy / "resumes" / "1" / "resume.yaml").checkpoint.endswith("best.ckpt")


def test_no_usable_checkpoint_says_so(run_copy, capsys):
    for name in ("last.ckpt", "best.ckpt"):
        (run_copy / "checkpoints" / name).write_bytes(b"")
    assert main(["resume", str(run_copy)]) == 2
    assert "no other usable checkpoint in" in capsys.readouterr().err


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(run_copy, capsys, monkeypatch):
    last = run_copy / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoints_module, "atomic_torch_save", full_disk)
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=4"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("train_model.py:")]
    assert len(lines) == 1 and "disk full while writing" in lines[0] and "No space left on device" in lines[0]
    assert f"train_model.py resume {run_copy}" in lines[0] and "Traceback" not in err
    assert last.read_bytes() == before


# ----------------------------------------------------------------------------- 5. version folders

def test_concurrent_launches_claim_distinct_version_folders(tmp_path):
    run_root = tmp_path / "runs" / "name"
    n_launches = 8
    barrier = threading.Barrier(n_launches)
    claimed = []

    def launch():
        barrier.wait()
        claimed.append(claim_version(run_root, {}))

    threads = [threading.Thread(target=launch) for _ in range(n_launches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(n_launches))
    assert sorted(p.name for p in run_root.iterdir()) == sorted(f"version_{n}" for n in range(n_launches))


def test_a_version_taken_between_listing_and_mkdir_is_skipped(tmp_path, monkeypatch):
    run_root = tmp_path / "name"
    (run_root / "version_0").mkdir(parents=True)
    stale = iter([0, 0])  # what a launch that listed the folder before another claimed version_0 would pick

    monkeypatch.setattr(fit_module, "choose_version", lambda root, environ: next(stale, 1))
    assert claim_version(run_root, {}) == 1
    assert claim_version(run_root, {"LOCAL_RANK": "1", fit_module.RUN_VERSION_ENV: "1"}) == 1  # DDP child: no mkdir


# ----------------------------------------------------------------------------- 6. allow-list of _target_s

def _write_run(folder: Path, cfg) -> Path:
    version = folder / "version_0"
    version.mkdir(parents=True)
    (version / CONFIG_NAME).write_text(OmegaConf.to_yaml(cfg) if not isinstance(cfg, str) else cfg)
    state = {f"vae.{k}": v for k, v in build_model(compose_config("demo", [])).state_dict().items()}
    (version / "checkpoints").mkdir()
    torch.save({"state_dict": state}, version / "checkpoints" / "last.ckpt")
    return version


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_names_only_allowed_targets(preset):
    check_targets(compose_config(preset, []), preset)  # raises otherwise


def test_every_target_in_the_config_folder_and_readme_is_allowed():
    import re

    from vschaos.cli.train import CONFIG_DIR

    texts = [p.read_text(encoding="utf-8") for p in sorted(Path(CONFIG_DIR).rglob("*.yaml"))]
    repo = Path(__file__).resolve().parents[1]
    texts += [p.read_text(encoding="utf-8") for p in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]]
    named = {m for text in texts for m in re.findall(r"_target_[\"']?\s*[:=]\s*[\"']?([\w.]+)", text)}
    assert len(named) >= 10 and named <= ALLOWED_TARGETS, sorted(named - ALLOWED_TARGETS)


def test_a_run_folder_naming_torch_load_is_refused_before_anything_runs(tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Touch(str(marker))))
    cfg = OmegaConf.create(OmegaConf.to_yaml(compose_config("demo", []), resolve=True))
    cfg.transform = {"_target_": "torch.load", "f": str(evil), "weights_only": False}
    version = _write_run(tmp_path / "run", cfg)
    with pytest.raises(ForbiddenTargetError, match=r"transform\._target_='torch\.load'"):
        open_run(version)
    assert script.main([str(version), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refused transform._target_='torch.load'" in err and "nothing was instantiated" in err
    assert main(["resume", str(version)]) == 2
    assert "refused transform._target_='torch.load'" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_run_folder_opening_a_file_is_refused_by_generate(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cfg = OmegaConf.create(OmegaConf.to_yaml(compose_config("demo", []), resolve=True))
    cfg.model.encoder = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    cfg.callbacks.extra = {"_target_": {"nested": "os.system"}}
    version = _write_run(tmp_path / "run", cfg)
    assert generate.main(["trajectories", str(version), "--trajectories", "line", "-b", "1", "-s", "4",
                          "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "model.encoder._target_='builtins.open'" in err and "callbacks.extra._target_={'nested'" in err
    assert victim.read_text() == "precious"


def test_an_interpolation_in_a_run_config_is_refused(tmp_path):
    text = OmegaConf.to_yaml(compose_config("demo", []), resolve=True)
    text += "sneaky: \"${oc.create:'{_target_: builtins.exec, _args_: [print(1)]}'}\"\n"
    version = _write_run(tmp_path / "run", text)
    with pytest.raises(ForbiddenTargetError, match=r"sneaky=.*\(a resolver interpolation\)"):
        open_run(version)


def test_key_references_are_allowed_but_an_interpolated_target_is_not(tmp_path):
    cfg = compose_config("demo", [])  # unresolved: ${rundir}, ${name} in logger
    check_targets(cfg, "demo")
    OmegaConf.set_struct(cfg, False)
    cfg.evil = "torch.load"
    cfg.transform._target_ = "${evil}"
    with pytest.raises(ForbiddenTargetError, match=r"transform\._target_='\$\{evil\}'"):
        check_targets(cfg, "demo")


def test_the_allow_list_names_importable_classes():
    import importlib

    for target in sorted(ALLOWED_TARGETS):
        module_name, _, name = target.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module_name), name), type), target


class _Touch:
    """A pickle that creates a file when unpickled (what a malicious run folder would carry)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_forbidden_target_error_is_a_run_folder_error():
    assert issubclass(ForbiddenTargetError, RunFolderError)


def test_a_moved_run_keeps_its_best_score_on_resume(tmp_path, recwarn):
    """Lightning forgets best_model_score when the checkpoint folder changed (it warns): after moving a run, the
    next epoch would replace best.ckpt however bad. BestCheckpoint re-roots the saved paths instead."""
    from vschaos.training.checkpoints import BestCheckpoint

    old, new = str(tmp_path / "old" / "checkpoints"), str(tmp_path / "new" / "checkpoints")
    saved = BestCheckpoint(dirpath=old, monitor="val/spectral_convergence", filename="best")
    saved.best_model_score = torch.tensor(0.25)
    saved.best_model_path = saved.kth_best_model_path = os.path.join(old, "best.ckpt")
    saved.best_k_models = {os.path.join(old, "best.ckpt"): torch.tensor(0.25)}
    resumed = BestCheckpoint(dirpath=new, monitor="val/spectral_convergence", filename="best")
    resumed.load_state_dict(saved.state_dict())
    assert float(resumed.best_model_score) == 0.25
    assert resumed.best_model_path == os.path.join(new, "best.ckpt")
    assert resumed.best_k_models == {os.path.join(new, "best.ckpt"): torch.tensor(0.25)}
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]
