"""Run-folder and checkpoint lookup (``vschaos.training.run.open_run``) and the commands that use it.

Run folders are written as training writes them (resolved ``config.yaml``, ``checkpoints/*.ckpt`` holding
``{"state_dict": {"vae.<key>": tensor}}``), from the demo preset. Each version and checkpoint gets its
own weights (an integer "mark" times ``MARK_UNIT`` added to every parameter) so a test can tell which one
was loaded; the unit is small so that the marked models still decode to finite sound.
"""
import fractions
import pickle
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vschaos.cli import generate, script
from vschaos.cli.train import compose_config
from vschaos.io import atomic_torch_save, atomic_write_text
from vschaos.training.run import (CONFIG_NAME, LoadedRun, RunFolderError, build_model, find_checkpoint,
                                  find_version_dir, open_run)

PROBE = "encoder.mlp.net.0.bias"  # a parameter of the demo model, used to tell weights apart
MARK_UNIT = 1e-3


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The demo preset's resolved config text and a state dict with random (seeded) weights."""
    cfg = compose_config("demo", ["name=run", f"rundir={tmp_path_factory.mktemp('unused')}"])
    torch.manual_seed(0)
    vae = build_model(cfg)
    return OmegaConf.to_yaml(cfg, resolve=True), vae.state_dict(), {name for name, _ in vae.named_parameters()}


def marked_state(template, mark: int) -> Dict[str, torch.Tensor]:
    """The template's weights with ``mark * MARK_UNIT`` added to every parameter, ``vae.``-prefixed as saved."""
    _, state, parameters = template
    return {f"vae.{key}": value + mark * MARK_UNIT if key in parameters else value.clone()
            for key, value in state.items()}


def write_version(run: Path, number: int, template, checkpoints: Dict[str, int]) -> Path:
    """``run/version_<number>`` with the config and one checkpoint per ``{file name: mark}``."""
    version = run / f"version_{number}"
    atomic_write_text(version / CONFIG_NAME, template[0])
    for name, mark in checkpoints.items():
        atomic_torch_save({"state_dict": marked_state(template, mark)}, version / "checkpoints" / name)
    return version


def mark_of(loaded: LoadedRun, template) -> int:
    """Which mark the loaded weights carry (from the offset of the probe parameter to the template's)."""
    offset = loaded.vae.state_dict()[PROBE] - template[1][PROBE]
    return round(float(offset.mean()) / MARK_UNIT)


@pytest.fixture
def run(tmp_path, template):
    """``runs/my_run`` with versions 0, 2 and 10 (10 is the latest: the order is numeric, not by name).

    Marks: version N's last.ckpt is 10 N, its best.ckpt 10 N + 5; version 2 also has epoch=3.ckpt (22)."""
    folder = tmp_path / "runs" / "my_run"
    write_version(folder, 0, template, {"last.ckpt": 0, "best.ckpt": 5})
    write_version(folder, 2, template, {"last.ckpt": 20, "best.ckpt": 25, "epoch=3.ckpt": 22})
    write_version(folder, 10, template, {"last.ckpt": 100, "best.ckpt": 105})
    return folder


# ----------------------------------------------------------------------------- versions

def test_latest_version_is_picked_numerically(run, template):
    loaded = open_run(run)
    assert loaded.version_dir == run / "version_10" and loaded.run_dir == run
    assert loaded.checkpoint_path == run / "version_10" / "checkpoints" / "last.ckpt"
    assert mark_of(loaded, template) == 100
    assert not loaded.vae.training
    assert int(loaded.cfg.model.latent_dim) == int(OmegaConf.create(template[0]).model.latent_dim)


def test_latest_version_is_the_latest_with_a_checkpoint(run, template):
    """A training that failed before its first checkpoint (version_11: config only, empty checkpoints/; version_12:
    config only) does not hide version_10."""
    write_version(run, 11, template, {})
    (run / "version_11" / "checkpoints").mkdir()
    write_version(run, 12, template, {})
    assert find_version_dir(run) == run / "version_10"
    assert mark_of(open_run(run), template) == 100


def test_a_version_without_checkpoints_names_the_versions_that_have_one(run, template):
    write_version(run, 11, template, {})
    with pytest.raises(RunFolderError) as info:
        open_run(run, version=11)
    message = str(info.value)
    assert f"checkpoints in {run / 'version_11' / 'checkpoints'}: none" in message
    assert (f"versions with a checkpoint in {run}: version_0 (best.ckpt, last.ckpt), "
            f"version_2 (best.ckpt, epoch=3.ckpt, last.ckpt), version_10 (best.ckpt, last.ckpt)") in message


def test_trailing_slash_is_tolerated(run, template):
    assert open_run(str(run) + "/").version_dir == run / "version_10"
    loaded = open_run(str(run / "version_2") + "/")
    assert loaded.version_dir == run / "version_2" and mark_of(loaded, template) == 20


def test_version_flag_on_a_run_folder(run, template):
    loaded = open_run(run, version=0)
    assert loaded.version_dir == run / "version_0" and mark_of(loaded, template) == 0


def test_a_version_folder_given_directly(run, template):
    loaded = open_run(run / "version_0")
    assert loaded.version_dir == run / "version_0" and loaded.run_dir == run
    assert mark_of(loaded, template) == 0
    # -v naming the same version is accepted
    assert open_run(run / "version_0", version=0).version_dir == run / "version_0"


def test_a_version_folder_and_another_version_means_its_sibling(run, template):
    loaded = open_run(run / "version_0", version=2)
    assert loaded.version_dir == run / "version_2" and mark_of(loaded, template) == 20
    with pytest.raises(RunFolderError) as info:
        open_run(run / "version_0", version=7)
    message = str(info.value)
    assert str(run / "version_7") in message and "version_0, version_2, version_10" in message


def test_a_run_named_like_a_version_is_a_run_folder(tmp_path, template):
    """``rundir/version_3`` holding ``version_0``: its version folders decide, not its name."""
    folder = tmp_path / "version_3"
    write_version(folder, 0, template, {"last.ckpt": 0})
    assert open_run(folder).version_dir == folder / "version_0"


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("checkpoint, mark", [
    ("last", 20), ("best", 25), ("best.ckpt", 25), ("epoch=3", 22), ("epoch=3.ckpt", 22)])
def test_checkpoint_by_name(run, template, checkpoint, mark):
    loaded = open_run(run, version=2, checkpoint=checkpoint)
    assert loaded.checkpoint_path.parent == run / "version_2" / "checkpoints"
    assert mark_of(loaded, template) == mark


def test_checkpoint_by_path(run, template, tmp_path):
    elsewhere = tmp_path / "saved" / "kept.ckpt"
    atomic_torch_save({"state_dict": marked_state(template, 7)}, elsewhere)
    # the config comes from the version folder, the weights from the path
    loaded = open_run(run, version=0, checkpoint=str(elsewhere))
    assert loaded.version_dir == run / "version_0" and loaded.checkpoint_path == elsewhere
    assert mark_of(loaded, template) == 7
    assert mark_of(open_run(run, checkpoint=elsewhere), template) == 7  # a Path works too


def test_missing_checkpoint_lists_the_available_ones(run):
    with pytest.raises(RunFolderError) as info:
        open_run(run, version=2, checkpoint="epoch=9")
    message = str(info.value)
    assert str(run / "version_2" / "checkpoints" / "epoch=9.ckpt") in message
    assert "best.ckpt, epoch=3.ckpt, last.ckpt" in message
    with pytest.raises(RunFolderError, match="nowhere.ckpt"):
        open_run(run, checkpoint=str(run / "nowhere.ckpt"))


# ----------------------------------------------------------------------------- errors

def test_missing_folder(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(RunFolderError, match="does not exist") as info:
        open_run(missing)
    assert str(missing) in str(info.value)


def test_folder_without_versions(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="no version_N folder") as info:
        open_run(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)


def test_missing_version_lists_the_versions(run):
    with pytest.raises(RunFolderError) as info:
        open_run(run, version=5)
    assert str(run / "version_5") in str(info.value) and "version_0, version_2, version_10" in str(info.value)


def test_no_config(run):
    (run / "version_10" / CONFIG_NAME).unlink()
    with pytest.raises(RunFolderError) as info:
        open_run(run)
    assert str(run / "version_10" / CONFIG_NAME) in str(info.value)


def test_no_checkpoints_and_no_config_are_both_reported(tmp_path):
    version = tmp_path / "run" / "version_0"
    (version / "checkpoints").mkdir(parents=True)
    with pytest.raises(RunFolderError) as info:
        open_run(tmp_path / "run")
    message = str(info.value)
    assert str(version / CONFIG_NAME) in message and str(version / "checkpoints" / "last.ckpt") in message
    assert "none" in message  # no checkpoint to suggest instead


def test_no_checkpoints(run):
    for path in (run / "version_0" / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(RunFolderError) as info:
        open_run(run, version=0)
    assert str(run / "version_0" / "checkpoints" / "last.ckpt") in str(info.value)


@pytest.mark.parametrize("content, error_name", [
    (None, "RuntimeError"),  # the first half of a real checkpoint: torch's zip reader fails
    (b"", "EOFError"),
    (b"hello world\n", "KeyError"),  # what torch's legacy unpickler raises for this text
    # an object that is not plain data: refused by weights_only
    (pickle.dumps({"state_dict": {"vae.x": fractions.Fraction(1, 2)}}, protocol=2), "UnpicklingError"),
])
def test_corrupt_checkpoint(run, content, error_name):
    last = run / "version_10" / "checkpoints" / "last.ckpt"
    if content is None:
        content = last.read_bytes()[: last.stat().st_size // 2]
    last.write_bytes(content)
    with pytest.raises(RunFolderError) as info:
        open_run(run)
    message = str(info.value)
    assert message.startswith(f"cannot load the model from {last}") and error_name in message
    assert "best.ckpt" in message  # what else could be loaded
    assert "\n" not in message and "weights_only=False" not in message  # one line, no unsafe advice


def test_checkpoint_without_vae_weights(run):
    last = run / "version_10" / "checkpoints" / "last.ckpt"
    torch.save({"epoch": 3}, last)
    with pytest.raises(RunFolderError, match="no 'state_dict'"):
        open_run(run)
    torch.save({"state_dict": {"other.weight": torch.zeros(2)}}, last)
    with pytest.raises(RunFolderError, match="no 'vae.' weights"):
        open_run(run)


def test_weights_of_another_model(run, template):
    state = marked_state(template, 0)
    state[f"vae.{PROBE}"] = torch.zeros(3)  # wrong shape
    torch.save({"state_dict": state}, run / "version_10" / "checkpoints" / "last.ckpt")
    with pytest.raises(RunFolderError, match="do not fit the model") as info:
        open_run(run)
    assert str(run / "version_10" / CONFIG_NAME) in str(info.value)


def test_config_that_describes_no_model(run):
    (run / "version_10" / CONFIG_NAME).write_text("seed: 0\n")
    with pytest.raises(RunFolderError, match="does not describe a vschaos model"):
        open_run(run)
    (run / "version_10" / CONFIG_NAME).write_text("- a list\n")
    with pytest.raises(RunFolderError, match="not a mapping"):
        open_run(run)


# ----------------------------------------------------------------------------- the older helpers

def test_older_helpers_agree_with_open_run(run, template):
    assert find_version_dir(run) == run / "version_10"
    assert find_version_dir(run / "version_0", 2) == run / "version_2"
    assert find_checkpoint(run / "version_2", "best") == run / "version_2" / "checkpoints" / "best.ckpt"
    loaded = open_run(str(run) + "/", 0, "best")
    cfg, vae = loaded.cfg, loaded.vae
    expected = open_run(run, 0, "best")
    assert torch.equal(vae.state_dict()[PROBE], expected.vae.state_dict()[PROBE])
    assert OmegaConf.to_container(cfg) == OmegaConf.to_container(expected.cfg)


# ----------------------------------------------------------------------------- the commands

def trajectory(out: Path) -> np.ndarray:
    """The decoded ``sin_0`` of a ``generate.py trajectories`` run (as written, the wav's bytes)."""
    return np.frombuffer((out / "trajectories" / "sin_0.wav").read_bytes(), dtype=np.uint8)


def test_generate_with_a_version_folder_and_another_version(run, tmp_path, capsys):
    common = ["--trajectories", "sin", "-s", "8", "--phase", "random", "--seed", "3"]
    assert generate.main(["trajectories", str(run / "version_0") + "/", "-v", "2", *common,
                          "--out", str(tmp_path / "sibling")]) == 0
    assert generate.main(["trajectories", str(run), "-v", "2", *common, "--out", str(tmp_path / "direct")]) == 0
    assert generate.main(["trajectories", str(run / "version_0"), *common, "--out", str(tmp_path / "zero")]) == 0
    sibling = trajectory(tmp_path / "sibling")
    assert np.array_equal(sibling, trajectory(tmp_path / "direct"))  # same model: version_2
    assert not np.array_equal(sibling, trajectory(tmp_path / "zero"))  # not version_0's
    # -n is the checkpoint in generate.py, as in script.py
    assert generate.main(["trajectories", str(run), "-v", "2", "-n", "best", *common,
                          "--out", str(tmp_path / "best")]) == 0
    assert not np.array_equal(sibling, trajectory(tmp_path / "best"))
    capsys.readouterr()
    assert generate.main(["trajectories", str(run / "version_0"), "-v", "4", *common,
                          "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(run / "version_4") in err and "Traceback" not in err


def _script_choice(run: Path, *argv: str):
    """``(checkpoint, output_name, note)`` that script.py's options give for ``run``'s latest version."""
    args = script.parse_args([str(run), *argv])
    note = script.resolve_name_option(args, find_version_dir(run, args.version))
    return args.checkpoint, args.output_name, note


def test_script_flags_match_generate(run):
    args = script.parse_args(["run", "-v", "3", "-n", "best"])
    assert (args.version, args.name_or_checkpoint) == (3, "best")
    assert _script_choice(run, "-v", "2", "-n", "best")[:2] == ("best", None)
    assert script.parse_args(["run", "--checkpoint", "epoch=3"]).checkpoint == "epoch=3"
    assert _script_choice(run, "--name", "best")[:2] == ("best", None)
    assert script.parse_args(["run"]).checkpoint == "last"
    generate_args = generate.build_parser().parse_args(["trajectories", "run", "--trajectories", "sin", "--out",
                                                        "o", "-v", "3", "-n", "best"])
    assert (generate_args.version, generate_args.checkpoint) == (3, "best")


def test_script_n_is_a_checkpoint_when_one_has_that_name_else_the_output_name(run, tmp_path):
    # checkpoints: last, best, a file of checkpoints/ (with or without .ckpt), a path
    assert _script_choice(run, "-v", "2", "-n", "epoch=3") == ("epoch=3", None, None)
    assert _script_choice(run, "-n", "last") == ("last", None, None)
    assert _script_choice(run, "-n", "old.ckpt") == ("old.ckpt", None, None)  # reported missing by open_run
    path = str(run / "version_0" / "checkpoints" / "best.ckpt")
    assert _script_choice(run, "-n", path) == (path, None, None)
    # anything else: vschaos2's meaning, the output name, and the command says so
    checkpoint, name, note = _script_choice(run, "-n", "my_model")
    assert (checkpoint, name) == ("last", "my_model")
    assert note.startswith("note: -n my_model: no checkpoint of that name in ") and "my_model.ts" in note
    assert _script_choice(run, "-n", "my_model", "--checkpoint", "best")[:2] == ("best", "my_model")
    with pytest.raises(ValueError, match="--output-name other is given too"):
        _script_choice(run, "-n", "my_model", "--output-name", "other")
    with pytest.raises(ValueError, match="give one"):
        _script_choice(run, "-n", "best", "--checkpoint", "last")


def test_script_buffers_accept_commas_or_spaces():
    for spelling in (["512,2048"], ["512", "2048"]):
        assert script.parse_args(["run", "--buffers", *spelling]).buffers == [512, 2048]


def test_script_reports_a_bad_run_folder(run, tmp_path, capsys):
    out = tmp_path / "exports"
    assert script.main([str(run / "version_0"), "-v", "4", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("script.py: ") and str(run / "version_4") in err and "version_10" in err
    assert not out.exists()
