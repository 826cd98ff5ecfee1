"""Training end to end on a tiny demo dataset: CLI, run folders, checkpoints, resume, load_model."""
from pathlib import Path

import pytest
import torch

from vschaos.cli.train import compose_config, main
from vschaos.data.demo import make_demo_dataset
from vschaos.training.fit import build_objects
from vschaos.training.run import RunFolderError, find_version_dir, load_model

FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "data.batch_size=32", "callbacks.progress.refresh_rate=0", "trainer.log_every_n_steps=1", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """8 files of 1.5 s at 22.05 kHz with instrument, pitch and octave labels."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), sample_rate=22050, minutes=0.2, files_per_instrument=2)


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.parametrize("preset", ["demo", "dgt_pitch_cond", "dgt_pitch_prediction"])
def test_one_training_batch(preset, demo_root, tmp_path):
    cfg = compose_config(preset, [f"data.dataset.root={demo_root}", "data.batch_size=16",
                                  "model.encoder.hidden_dims=32", "model.decoder.hidden_dims=32"])
    vae, datamodule, module = build_objects(cfg)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    optimiser = module.configure_optimizers()
    before = [p.detach().clone() for p in vae.decoder.parameters()]
    terms = module._shared_step(batch, sample=True)
    optimiser.zero_grad()
    terms["loss"].backward()
    optimiser.step()
    assert torch.isfinite(terms["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, vae.decoder.parameters()))
    for task in vae.predicted_tasks:
        assert f"prediction/{task}/count" in terms


def test_cli_run_folder_both_spellings_resume_and_load(demo_root, tmp_path, capsys):
    rundir = tmp_path / "runs"
    common = ["--config-name", "demo", "name=my_training", f"rundir={rundir}", "callbacks.reconstructions.every_n_epochs=1",
              "callbacks.reconstructions.n_frames=16", *FAST]
    assert main([*common, f"+data.dataset.root={demo_root}"]) == 0
    assert main([*common, f"data.dataset.root={demo_root}"]) == 0
    run = rundir / "my_training"
    assert sorted(p.name for p in run.iterdir()) == ["version_0", "version_1"]
    version = run / "version_1"
    assert (version / "config.yaml").is_file() and list(version.glob("events.out.tfevents*"))
    last, best = version / "checkpoints" / "last.ckpt", version / "checkpoints" / "best.ckpt"
    assert not list(version.glob("checkpoints/*.tmp")) and not list(version.glob("checkpoints/.*"))
    step = _step(last)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(version), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"audio/original", "audio/reconstruction"} <= set(tags["audio"])
    assert "spectrogram/original_vs_reconstruction" in tags["images"]
    assert {"val/loss", "val/spectral_convergence", "train/loss"} <= set(tags["scalars"])
    assert step == 2 and _step(best) == 2  # both load with weights_only=True

    # resume: same version folder, global step continues
    assert main(["resume", str(run), "trainer.max_epochs=2"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["version_0", "version_1"]
    assert _step(last) == step + 2

    cfg, vae = load_model(run, checkpoint="last")
    assert not vae.training and cfg.trainer.max_epochs == 2
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(vae.transform.norm_mean, state["vae.transform.norm_mean"])
    assert not torch.all(vae.transform.norm_std == 1)  # normalisation fitted, saved and restored
    assert find_version_dir(run) == version and find_version_dir(run, 0) == run / "version_0"
    assert "run folder" in capsys.readouterr().out


def test_check_prints_counts_and_exits_without_a_run(demo_root, tmp_path, capsys):
    rundir = tmp_path / "runs"
    assert main(["--config-name", "dgt_pitch_prediction", f"rundir={rundir}", f"+data.dataset.root={demo_root}",
                 "+data.dataset.n_files=4", "+check=1"]) == 0
    out = capsys.readouterr().out
    assert "parameters per block" in out and "encoder" in out and "predictors" in out
    assert "4 files" in out and "task 'pitch'" in out
    assert not rundir.exists()


def test_load_model_names_the_bad_folder(tmp_path):
    with pytest.raises(RunFolderError, match=str(tmp_path)):
        load_model(tmp_path)
    (tmp_path / "version_0").mkdir()
    with pytest.raises(RunFolderError, match="config.yaml"):
        load_model(tmp_path)


@pytest.mark.slow
def test_short_demo_training_lowers_validation_loss(demo_root, tmp_path):
    import lightning as L

    cfg = compose_config("demo", [f"data.dataset.root={demo_root}", "data.batch_size=64"])
    vae, datamodule, module = build_objects(cfg)
    datamodule.setup("fit")
    mean, std = datamodule.normalisation()
    vae.transform.set_normalisation(mean, std)
    module.normalisation_fitted.fill_(True)
    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    before = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    trainer.fit(module, datamodule=datamodule)
    after = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    assert after["val/loss"] < 0.8 * before["val/loss"]
    assert after["val/spectral_convergence"] < before["val/spectral_convergence"]
