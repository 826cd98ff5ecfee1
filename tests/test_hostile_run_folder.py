"""A stranger's run folder and checkpoint cannot write or delete outside the version folder, nor run code.

Every test puts a "victim" file or folder beside the run (outside its version folder), hands the commands a run
folder or checkpoint crafted against it, and checks both that the victim is untouched and that the error (or
warning) names the field or file at fault. One tiny demo run is trained once per module and copied into each test
that writes to it; the tests that must train again (a resume that saves checkpoints) are marked slow.
"""
import logging
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Dict

import pytest
import torch
from omegaconf import OmegaConf

from vschaos.cli import generate, script
from vschaos.cli.train import compose_config, main
from vschaos.models import lightning as module_file
from vschaos.models.lightning import SpectralVAEModule
from vschaos.models.vae import ConfigurationError
from vschaos.training.checkpoints import BestCheckpoint, LastCheckpoint, restored_checkpoint_state
from vschaos.training.run import CONFIG_NAME, RunFolderError, open_run
from vschaos.training.trust import (ALLOWED_TARGETS, OPTIMIZER_NAMES, UnsafePathError, bare_name_problem,
                                    check_links, check_paths)

FAST = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "data.batch_size=32",
        "callbacks.progress=null", "callbacks.reconstructions=null", "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false"]
PRESETS = ["demo", "dgt_low", "dgt_mid", "dgt_high", "dgt_harmonic", "dgt_live", "dgt_pitch_cond", "dgt_pitch_prediction"]
PRECIOUS = "precious"


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory) -> Path:
    """``version_0`` of a one-epoch demo run (2 steps): config.yaml, checkpoints/{best,last}.ckpt, logs."""
    rundir = tmp_path_factory.mktemp("hostile")
    assert main(["--config-name", "demo", "name=r", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=1", *FAST]) == 0
    return rundir / "r" / "version_0"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained version folder: ``tmp/runs/r/version_0`` (tmp itself is outside the run)."""
    target = tmp_path / "runs" / "r" / "version_0"
    shutil.copytree(trained, target)
    return target


def victim_file(tmp_path: Path, name: str = "victim.txt") -> Path:
    victim = tmp_path / name
    victim.write_text(PRECIOUS)
    return victim


def edit_config(version: Path, **fields) -> None:
    """Set dotted ``fields`` of the version's config.yaml (``callbacks__checkpoint__filename`` style keys)."""
    cfg = OmegaConf.load(version / CONFIG_NAME)
    for key, value in fields.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
    (version / CONFIG_NAME).write_text(OmegaConf.to_yaml(cfg))


def snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("train_model.py:")]
    assert len(lines) == 1, err
    return lines[0]


def traversal(version: Path, name: str) -> str:
    """A path that starts in the version's checkpoints/ and climbs out of the run to ``tmp/name``."""
    return str(version / "checkpoints" / ".." / ".." / ".." / ".." / name)


# ----------------------------------------------------------------------------- config fields that name a file

@pytest.mark.parametrize("filename", ["../../../../victim", "ABSOLUTE"])
def test_a_checkpoint_file_name_cannot_leave_the_run(run, tmp_path, capsys, filename):
    victim = victim_file(tmp_path, "victim.ckpt")
    if filename == "ABSOLUTE":
        filename = str(tmp_path / "victim")
    # save_top_k=-1 saves every epoch: without the check, each resumed epoch writes the victim
    edit_config(run, callbacks__checkpoint__filename=filename, callbacks__checkpoint__save_top_k=-1)
    before = snapshot(run)
    assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 2
    line = one_line_error(capsys)
    assert f"{run / CONFIG_NAME}: refused callbacks.checkpoint.filename={filename!r}" in line
    assert "nothing was written" in line
    assert victim.read_text() == PRECIOUS and snapshot(run) == before
    with pytest.raises(UnsafePathError, match=r"callbacks\.checkpoint\.filename"):
        open_run(run)  # generate.py and script.py read run folders through open_run
    assert script.main([str(run), "-o", str(tmp_path / "out")]) == 2
    assert "refused callbacks.checkpoint.filename=" in capsys.readouterr().err
    assert generate.main(["trajectories", str(run), "--trajectories", "line", "-b", "1", "-s", "4",
                          "--out", str(tmp_path / "out")]) != 0
    assert "refused callbacks.checkpoint.filename=" in capsys.readouterr().err
    assert victim.read_text() == PRECIOUS and not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value, problem", [
    ("callbacks.checkpoint.filename", "sub/best", "no folder separator"),
    ("callbacks.checkpoint.filename", "..", "no '..'"),
    ("callbacks.extra_best.filename", "..\\..\\victim", "no folder separator"),
    ("logger.sub_dir", "../../../../victim_dir", "may not leave the version folder"),
    ("logger.sub_dir", "ABSOLUTE", "must be a relative path"),
    ("logger.sub_dir", "~/victim_dir", "must be a relative path"),
    ("logger.filename_suffix", "/../../../../../victim", "no folder separator"),
    ("trainer.model_registry", "someone/model", "a run folder may not set it"),
    ("trainer.ckpt_path", "ABSOLUTE", "does not check"),  # any other field named like a path
    ("callbacks.progress.console_kwargs.file", "ABSOLUTE", "does not check"),
])
def test_every_field_that_names_a_file_is_checked_before_anything_is_written(run, tmp_path, capsys, field, value,
                                                                              problem):
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    if value == "ABSOLUTE":
        value = str(victim_dir / "victim")
    edit_config(run, **{field.replace(".", "__"): value})
    before = snapshot(run)
    assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 2
    line = one_line_error(capsys)
    assert f"{run / CONFIG_NAME}: refused {field}={value!r} (" in line and problem in line
    assert list(victim_dir.iterdir()) == [] and snapshot(run) == before
    with pytest.raises(UnsafePathError, match=field.replace(".", r"\.")):
        open_run(run)


def test_a_reference_is_checked_once_resolved(run, tmp_path):
    edit_config(run, evil="../../victim", callbacks__checkpoint__filename="${evil}")
    with pytest.raises(UnsafePathError, match=r"callbacks\.checkpoint\.filename='\.\./\.\./victim'"):
        open_run(run)


@pytest.mark.slow  # trains one epoch
def test_the_folders_a_resume_derives_itself_ignore_the_config(run, tmp_path):
    """rundir, name, the logger's save_dir/name/version, the trainer's default_root_dir and the checkpoint
    callbacks' dirpath name the run's own folders: resume takes them from the folder on disk."""
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    edit_config(run, rundir=str(victim_dir), name="../../victim_dir", logger__save_dir=str(victim_dir),
                logger__name="../victim_dir", logger__version="../../../victim_dir",
                trainer__default_root_dir=str(victim_dir), callbacks__checkpoint__dirpath=str(victim_dir),
                callbacks__last__dirpath=str(victim_dir))
    assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 0
    assert list(victim_dir.iterdir()) == []
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "victim_dir"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_the_path_check(preset, tmp_path):
    check_paths(compose_config(preset, [f"rundir={tmp_path}", f"data.dataset.root={tmp_path}",
                                        f"data.cache_dir={tmp_path}"]), preset)


def test_bare_names():
    for name in ("best", "best.ckpt", "{epoch}-{step}", "epoch=3-step=9.ckpt"):
        assert bare_name_problem(name) is None, name
    for name in ("", "a/b", "a\\b", "/abs", "..", "x..y", None, 3):
        assert bare_name_problem(name) is not None, name


# ----------------------------------------------------------------------------- links inside a version folder

def test_a_checkpoints_folder_linked_outside_the_run_is_refused(run, tmp_path, capsys):
    outside = tmp_path / "victim_dir"
    shutil.move(str(run / "checkpoints"), outside)  # main's resume would write last.ckpt in there
    (run / "checkpoints").symlink_to(outside)
    before = snapshot(outside)
    assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 2
    line = one_line_error(capsys)
    assert f"{run / 'checkpoints'} is a link to {outside}, outside {run}" in line
    assert snapshot(outside) == before and not (run / "resumes").exists()


def test_a_dangling_link_is_refused_and_a_link_inside_is_not(run, tmp_path):
    (run / "best_copy.ckpt").symlink_to(run / "checkpoints" / "best.ckpt")  # stays inside: allowed
    check_links(run)
    (run / "hparams.yaml").unlink()
    (run / "hparams.yaml").symlink_to(tmp_path / "nothing_yet.txt")  # a writer would create the target
    with pytest.raises(UnsafePathError, match=r"hparams\.yaml is a link to .*nothing_yet\.txt"):
        open_run(run)
    assert not (tmp_path / "nothing_yet.txt").exists()


# ----------------------------------------------------------------------------- checkpoint callback state

def best_state_key(run: Path) -> str:
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    return next(key for key in state["callbacks"] if key.startswith("BestCheckpoint"))


@pytest.mark.slow  # trains one epoch: the deletion happens when the resumed epoch saves a new best
def test_a_best_checkpoint_state_pointing_outside_is_dropped_on_resume(run, tmp_path, caplog):
    victim = victim_file(tmp_path)
    path = traversal(run, "victim.txt")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    state = checkpoint["callbacks"][best_state_key(run)]
    del state["dirpath"]
    state.update(best_model_path=path, kth_best_model_path=path, best_k_models={path: torch.tensor(1e9)},
                 kth_value=torch.tensor(1e9), best_model_score=torch.tensor(1e9))
    torch.save(checkpoint, last)
    with caplog.at_level(logging.WARNING, logger="vschaos.training.checkpoints"):
        assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 0
    assert victim.read_text() == PRECIOUS
    assert (run / "checkpoints" / "best.ckpt").is_file()  # the run's own best was written again, not deleted
    warning = next(r.getMessage() for r in caplog.records if "not restored from" in r.getMessage())
    assert str(last) in warning and f"best_model_path={path!r}" in warning and "best_k_models[" in warning


@pytest.mark.slow  # trains one epoch
def test_lightning_checkpoint_callbacks_and_last_checkpoint_restore_no_outside_path(run, tmp_path, caplog):
    """Lightning's own ModelCheckpoint (allowed in a config; also the one Lightning adds when a config has none)
    deletes the previous ``best_model_path`` after each save without a monitor: restored from the file, it must
    be re-rooted too. LastCheckpoint keeps no state: a saved one changes nothing."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    victim = victim_file(tmp_path)
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    edit_config(run, callbacks__mc={"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "filename": "mc"})
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    path = traversal(run, "victim.txt")
    checkpoint["callbacks"][ModelCheckpoint(filename="mc").state_key] = {
        "monitor": None, "best_model_score": None, "best_model_path": path, "kth_best_model_path": path,
        "kth_value": torch.tensor(float("inf")), "best_k_models": {}, "last_model_path": path}
    checkpoint["callbacks"]["LastCheckpoint"] = {"dirpath": str(victim_dir), "every_n_train_steps": 1}
    torch.save(checkpoint, last)
    with caplog.at_level(logging.WARNING, logger="vschaos.training.checkpoints"):
        assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 0
    assert victim.read_text() == PRECIOUS and list(victim_dir.iterdir()) == []
    assert (run / "checkpoints" / "mc.ckpt").is_file()
    assert any(f"best_model_path={path!r}" in r.getMessage() for r in caplog.records)


def test_restored_paths_are_re_rooted_or_dropped(tmp_path, caplog):
    here = str(tmp_path / "new" / "checkpoints")
    old = str(tmp_path / "old" / "checkpoints")
    state = {"dirpath": old, "best_model_path": os.path.join(old, "best.ckpt"),
             "kth_best_model_path": os.path.join(old, "..", "..", "victim.ckpt"),
             "last_model_path": "/etc/last.ckpt",
             "best_k_models": {os.path.join(old, "best.ckpt"): torch.tensor(0.5),
                               os.path.join(old, "epoch=1.ckpt"): torch.tensor(0.7),
                               "C:\\x\\..\\victim.ckpt": torch.tensor(0.1), "/etc/passwd": torch.tensor(0.2),
                               os.path.join(old, "odd.ckpt"): "not a score"}}
    with caplog.at_level(logging.WARNING, logger="vschaos.training.checkpoints"):
        safe = restored_checkpoint_state(state, here, "min", source="x/last.ckpt")
    assert safe["dirpath"] == here and safe["best_model_path"] == os.path.join(here, "best.ckpt")
    assert safe["last_model_path"] == ""  # last.ckpt belongs to LastCheckpoint: never a ModelCheckpoint's
    assert set(safe["best_k_models"]) == {os.path.join(here, "best.ckpt"), os.path.join(here, "epoch=1.ckpt")}
    assert safe["kth_best_model_path"] == os.path.join(here, "epoch=1.ckpt")  # the worst kept one, mode min
    assert float(safe["kth_value"]) == pytest.approx(0.7)
    warning = caplog.records[-1].getMessage()
    assert warning.startswith("not restored from x/last.ckpt:") and "/etc/passwd" in warning
    assert restored_checkpoint_state(state, None)["best_k_models"] == {}  # no folder: nothing can be restored


@pytest.mark.parametrize("filename", ["../victim", "/tmp/victim", "sub/best", ".."])
def test_best_checkpoint_takes_bare_file_names_only(filename):
    with pytest.raises(ValueError, match=r"BestCheckpoint: filename=.*no folder separator and no '\.\.'"):
        BestCheckpoint(monitor="val/loss", filename=filename)


def test_best_checkpoint_never_writes_or_deletes_outside_its_folder(tmp_path):
    victim = victim_file(tmp_path)
    callback = BestCheckpoint(dirpath=str(tmp_path / "checkpoints"), monitor="val/loss", filename="best")
    for action in (callback._remove_checkpoint, callback._save_checkpoint):
        with pytest.raises(UnsafePathError, match=f"refused to write or delete {tmp_path / 'checkpoints'}/../"):
            action(None, str(tmp_path / "checkpoints" / ".." / "victim.txt"))
    assert victim.read_text() == PRECIOUS


def test_last_checkpoint_keeps_no_state():
    last = LastCheckpoint(dirpath="x")
    assert last.state_dict() == {}
    last.load_state_dict({"dirpath": "/elsewhere", "every_n_train_steps": 1})
    assert last.dirpath == "x" and last.every_n_train_steps == 0


# ----------------------------------------------------------------------------- code in hyper_parameters

def hostile_checkpoint(trained: Path, tmp_path: Path, edit) -> Path:
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    edit(checkpoint["hyper_parameters"])
    path = tmp_path / "shared.ckpt"
    torch.save(checkpoint, path)
    return path


def test_load_from_checkpoint_still_rebuilds_a_trained_module(trained):
    module = SpectralVAEModule.load_from_checkpoint(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert type(module.vae).__name__ == "SpectralVAE" and bool(module.normalisation_fitted)


@pytest.mark.parametrize("case", ["open", "touch", "system", "interpolation"])
def test_load_from_checkpoint_runs_no_code_from_hyper_parameters(trained, tmp_path, case):
    victim = tmp_path / "victim.txt"
    if case == "open":
        victim.write_text(PRECIOUS)
        field, config = "optimizer", {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    elif case == "touch":
        field, config = "vae", {"_target_": "vschaos.models.vae.SpectralVAE",
                                "transform": {"_target_": "pathlib.Path.touch", "_args_": [str(victim)]}}
    elif case == "system":
        field, config = "loss", {"_target_": "os.system", "_args_": [f"touch {victim}"]}
    else:  # a resolver that builds a _target_ when instantiate resolves the config
        field, config = "optimizer", {"_target_": "torch.optim.Adam", "_partial_": True,
                                      "lr": f"${{oc.create:{{_target_: pathlib.Path.touch, _args_: [{victim}]}}}}"}
    path = hostile_checkpoint(trained, tmp_path, lambda hparams: hparams.update({field: config}))
    with pytest.raises(ConfigurationError) as info:
        SpectralVAEModule.load_from_checkpoint(path, weights_only=True)
    message = str(info.value)
    expected = {"open": "optimizer._target_='builtins.open'", "touch": "vae.transform._target_='pathlib.Path.touch'",
                "system": "loss._target_='os.system'", "interpolation": "optimizer.lr='${oc.create:"}[case]
    assert message.startswith("SpectralVAEModule: refused ") and expected in message
    assert "nothing was instantiated" in message
    assert (victim.read_text() == PRECIOUS) if case == "open" else not victim.exists()


def test_an_hparams_file_is_checked_too(trained, tmp_path):
    """``load_from_checkpoint(..., hparams_file=RUN/version_0/hparams.yaml)`` takes the module's arguments from a
    run folder's YAML (as OmegaConf configs): the same check applies."""
    victim = victim_file(tmp_path)
    hparams = OmegaConf.load(trained / "hparams.yaml")
    hparams.optimizer = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}
    yaml_path = tmp_path / "hparams.yaml"
    yaml_path.write_text(OmegaConf.to_yaml(hparams))
    with pytest.raises(ConfigurationError, match=r"refused optimizer\._target_='builtins\.open'"):
        SpectralVAEModule.load_from_checkpoint(trained / "checkpoints" / "last.ckpt", hparams_file=yaml_path,
                                               weights_only=True)
    assert victim.read_text() == PRECIOUS

def test_load_from_checkpoint_refuses_a_foreign_instantiator(trained, tmp_path):
    victim = tmp_path / "victim.txt"
    path = hostile_checkpoint(trained, tmp_path, lambda hparams: hparams.update(
        _instantiator="os.system", vae=f"touch {victim}"))
    with pytest.raises(ValueError, match="instantiator 'os.system'"):  # Lightning's own allow-list
        SpectralVAEModule.load_from_checkpoint(path, weights_only=True)
    assert not victim.exists()


def test_the_module_allow_list_is_part_of_the_run_folder_allow_list():
    assert set(module_file.OPTIMIZER_NAMES) == set(OPTIMIZER_NAMES)
    for targets in module_file.CONFIG_TARGETS.values():
        assert targets <= ALLOWED_TARGETS


@pytest.mark.parametrize("preset", PRESETS)
def test_every_presets_hyper_parameters_name_only_what_the_module_builds(preset):
    from vschaos.training.hparams import module_hyperparameters

    hparams = module_hyperparameters(compose_config(preset, []))
    for name, targets in module_file.CONFIG_TARGETS.items():
        assert module_file._config_problems(hparams.get(name), targets, name) == [], (preset, name)


# ----------------------------------------------------------------------------- empty and garbage checkpoints

class _Touch:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# random bytes after a pickle header, seeded so that torch's weights-only unpickler raises each of its errors
GARBAGE_SEEDS = {"IndexError": 2, "struct.error": 120, "UnicodeDecodeError": 195}


@pytest.mark.parametrize("case", ["empty", "pickle", *GARBAGE_SEEDS])
def test_an_unloadable_checkpoint_is_one_line_naming_the_file(run, tmp_path, capsys, case):
    victim = tmp_path / "victim.txt"
    last = run / "checkpoints" / "last.ckpt"
    if case in GARBAGE_SEEDS:
        content = b"\x80\x02" + random.Random(GARBAGE_SEEDS[case]).randbytes(8)
    else:
        content = {"empty": b"", "pickle": pickle.dumps(_Touch(str(victim)))}[case]
    last.write_bytes(content)
    with pytest.raises(RunFolderError) as info:
        open_run(run)
    message = str(info.value)
    assert message.startswith(f"cannot load the model from {last}: ") and "\n" not in message
    if case == "empty":
        assert "EOFError: the file is empty (0 bytes)" in message
    if case in GARBAGE_SEEDS:
        assert f": {case}: " in message
    assert not message.split(f"{last}: ", 1)[1].startswith(("EOFError:  ", "EOFError: ("))
    before = snapshot(run)
    assert main(["resume", str(run.parent), "trainer.max_epochs=2"]) == 2
    assert f"cannot resume from {last}: " in one_line_error(capsys)
    assert not victim.exists() and snapshot(run) == before
