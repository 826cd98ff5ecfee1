"""Training end to end on a tiny demo dataset: CLI, run folders, checkpoints, resume, open_run."""
import os
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from vschaos.cli.train import compose_config, main
from vschaos.data.datamodule import BatchIndexSampler
from vschaos.models.vae import ConfigurationError
from vschaos.training.fit import RUN_VERSION_ENV, build_objects, check_tasks, choose_version
from vschaos.training.run import RunFolderError, find_version_dir, open_run

FAST = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "data.batch_size=32", "callbacks.progress.refresh_rate=0", "trainer.log_every_n_steps=1", "trainer.enable_model_summary=false"]


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.parametrize("preset", ["demo", "dgt_harmonic", "dgt_live", "dgt_pitch_cond", "dgt_pitch_prediction"])
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


@pytest.mark.slow  # slow: kept out of the default suite (-m "not slow"); CI runs it
def test_cli_run_folder_both_spellings_resume_and_load(demo_root, tmp_path, capsys, monkeypatch):
    # a value left by an earlier run in this process must not make a new run reuse its version folder
    monkeypatch.setenv(RUN_VERSION_ENV, "7")
    rundir = tmp_path / "runs"
    common = ["--config-name", "demo", "name=my_training", f"rundir={rundir}", "callbacks.reconstructions.every_n_epochs=1",
              "callbacks.reconstructions.n_frames=16", *FAST]
    assert main([*common, f"+data.dataset.root={demo_root}"]) == 0
    monkeypatch.chdir(demo_root.parent)  # a root relative to the current directory is stored absolute
    assert main([*common, f"data.dataset.root={demo_root.name}"]) == 0
    monkeypatch.chdir(tmp_path)  # resume and load from elsewhere
    run = rundir / "my_training"
    assert sorted(p.name for p in run.iterdir()) == ["version_0", "version_1"]
    version = run / "version_1"
    assert (version / "config.yaml").is_file() and list(version.glob("events.out.tfevents*"))
    assert OmegaConf.load(version / "config.yaml").data.dataset.root == str(demo_root.resolve())
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
    assert os.environ[RUN_VERSION_ENV] == "1"  # what DDP ranks > 0 would have read
    callback_states = torch.load(best, map_location="cpu", weights_only=True)["callbacks"]
    assert [s["monitor"] for k, s in callback_states.items() if k.startswith("BestCheckpoint")] == [
        "val/spectral_convergence"]

    # resume: same version folder, global step continues
    assert main(["resume", str(run), "trainer.max_epochs=2"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["version_0", "version_1"]
    assert _step(last) == step + 2

    loaded = open_run(run, checkpoint="last")
    cfg, vae = loaded.cfg, loaded.vae
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


def test_open_run_names_the_bad_folder(tmp_path):
    with pytest.raises(RunFolderError, match=str(tmp_path)):
        open_run(tmp_path)
    (tmp_path / "version_0").mkdir()
    with pytest.raises(RunFolderError, match="config.yaml"):
        open_run(tmp_path)


@pytest.mark.slow
def test_short_demo_training_lowers_validation_loss(demo_root, tmp_path):
    import lightning as L

    L.seed_everything(0)  # the weights' draw decides how far 6 epochs get: not the other tests' RNG use
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


def _copy_dataset(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".vschaos_cache"))
    return target


def test_a_model_task_the_data_does_not_load_is_a_configuration_error(demo_root):
    cfg = compose_config("dgt_pitch_cond", [f"data.dataset.root={demo_root}", "data.dataset.tasks=[pitch]"])
    with pytest.raises(ConfigurationError, match=r"'octave'.*model\.conditioning\.octave\.dim=11.*data\.dataset\.tasks"):
        build_objects(cfg)


def test_more_classes_than_the_model_dim_is_reported_before_training(demo_root, tmp_path, capsys):
    rundir = tmp_path / "runs"
    assert main(["--config-name", "dgt_pitch_cond", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 "model.conditioning.pitch.dim=10"]) == 2
    err = capsys.readouterr().err
    assert "'pitch'" in err and "12 classes" in err and "model.conditioning.pitch.dim is 10" in err
    assert "metadata/pitch/classes.txt" in err and "Traceback" not in err
    assert not rundir.exists()  # nothing written before the check
    cfg = compose_config("demo", [f"data.dataset.root={demo_root}", "+model.prediction.instrument.dim=2"])
    vae, datamodule, _ = build_objects(cfg)
    n_instruments = datamodule.index.tasks["instrument"].n_classes
    with pytest.raises(ConfigurationError, match=rf"{n_instruments} classes.*model\.prediction\.instrument\.dim is 2"):
        check_tasks(vae, datamodule)


def test_null_tasks_load_the_model_tasks_only_and_check_still_shows_all(demo_root, tmp_path, capsys):
    root = _copy_dataset(demo_root, tmp_path / "data_root")
    junk = root / "metadata" / "junk"
    junk.mkdir()
    (junk / "metadata.txt").write_text("data/not_there.wav\t3\n", encoding="utf-8")
    _, datamodule, _ = build_objects(compose_config("demo", [f"data.dataset.root={root}"]))
    datamodule.setup("fit")  # an unconditioned model does not fail on the broken, unused 'junk' task
    assert datamodule.tasks == [] and datamodule.file_labels(datamodule.files[0].key) == {}
    _, datamodule, _ = build_objects(compose_config("dgt_pitch_prediction", [f"data.dataset.root={root}"]))
    assert datamodule.tasks == ["pitch", "octave"]  # the model's order, not sorted
    assert main(["--config-name", "demo", f"data.dataset.root={root}", "+check=1"]) == 0
    out = capsys.readouterr().out
    assert "task 'pitch'" in out and "task 'instrument'" in out and "task 'junk'" in out
    assert "metadata/junk/metadata.txt:1" in out and "not_there.wav" in out


def test_user_errors_exit_2_with_one_message_and_no_traceback(demo_root, tmp_path, capsys):
    root = _copy_dataset(demo_root, tmp_path / "broken")
    (root / "data" / "garbage.wav").write_bytes(b"not audio at all")
    pitch = root / "metadata" / "pitch" / "metadata.txt"
    pitch.write_text(pitch.read_text(encoding="utf-8") + "data/missing.wav\t3\n", encoding="utf-8")
    line = len(pitch.read_text(encoding="utf-8").splitlines())
    rundir = tmp_path / "runs"
    assert main(["--config-name", "dgt_pitch_cond", f"rundir={rundir}", f"data.dataset.root={root}", *FAST]) == 2
    err = capsys.readouterr().err
    # every problem at once, with file and line, before a run folder exists
    assert "DatasetError" in err and "garbage.wav: unreadable audio" in err and f"metadata.txt:{line}" in err
    assert "missing.wav" in err and "Traceback" not in err and not rundir.exists()

    assert main(["--config-name", "no_such_preset", f"data.dataset.root={root}"]) == 2
    err = capsys.readouterr().err
    assert "no_such_preset" in err and "Traceback" not in err
    assert main(["--config-name", "demo", "trainer.max_epochs=[oops"]) == 2  # override syntax error
    err = capsys.readouterr().err
    assert "OverrideParseException" in err and "[oops" in err and "Traceback" not in err
    assert main(["resume", str(tmp_path / "no_run")]) == 2
    assert "no_run does not exist" in capsys.readouterr().err


def test_version_is_chosen_once_by_the_launching_process(tmp_path):
    run_root = tmp_path / "runs" / "name"
    assert choose_version(run_root, {}) == 0  # no folder yet
    (run_root / "version_0").mkdir(parents=True)
    (run_root / "version_3").mkdir()
    (run_root / "notes").mkdir()
    assert choose_version(run_root, {}) == 4
    # rank 0 picks the next free number, whatever an earlier run left in the environment
    assert choose_version(run_root, {RUN_VERSION_ENV: "1", "LOCAL_RANK": "0"}) == 4
    # the launcher created version_4; a DDP child started afterwards takes 4, not the next free 5
    (run_root / "version_4").mkdir()
    for rank_key in ("LOCAL_RANK", "RANK", "SLURM_PROCID"):
        assert choose_version(run_root, {RUN_VERSION_ENV: "4", rank_key: "1"}) == 4
    assert choose_version(run_root, {"LOCAL_RANK": "1"}) == 5  # no launcher value (external launcher)


class _OrderRecorder(L.LightningModule):
    """Records the frame indices of every training batch, per epoch (the model learns nothing)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).append(batch.tolist())
        return (self.weight * batch.float()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        sampler = BatchIndexSampler(12, 4, shuffle=True, seed=3)
        return DataLoader(np.arange(100, 112), sampler=sampler, batch_size=None, collate_fn=torch.as_tensor)


def test_resumed_run_shuffles_like_a_fresh_run_at_the_same_epoch(tmp_path):
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    fresh = _OrderRecorder()
    L.Trainer(max_epochs=3, enable_checkpointing=False, **quiet).fit(fresh)
    assert fresh.seen[0] != fresh.seen[1] != fresh.seen[2]
    first = _OrderRecorder()
    trainer = L.Trainer(max_epochs=1, enable_checkpointing=False, default_root_dir=str(tmp_path), **quiet)
    trainer.fit(first)
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = _OrderRecorder()
    L.Trainer(max_epochs=3, enable_checkpointing=False, **quiet).fit(resumed, ckpt_path=tmp_path / "epoch1.ckpt")
    assert sorted(resumed.seen) == [1, 2]
    assert resumed.seen[1] == fresh.seen[1] and resumed.seen[2] == fresh.seen[2]


def test_fast_dev_run_keeps_nothing_as_it_says(demo_root, tmp_path, capsys):
    """Lightning prints "checkpointing is suppressed" in fast_dev_run: no run folder and no checkpoint appear."""
    rundir = tmp_path / "runs"
    assert main(["--config-name", "demo", "name=smoke", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 "debug=fast_dev_run"]) == 0
    out = capsys.readouterr().out
    assert "debug=fast_dev_run: one training and one validation batch ran; nothing was kept" in out
    assert "run folder:" not in out
    assert not rundir.exists() or not list(rundir.rglob("*"))


def test_progress_bar_off_in_the_trainer_means_no_bar(demo_root, tmp_path, capsys):
    """trainer.enable_progress_bar=false alone must work: Lightning must not refuse the configured TQDMProgressBar."""
    assert main(["--config-name", "demo", "name=quiet", f"rundir={tmp_path / 'runs'}", f"data.dataset.root={demo_root}",
                 "debug=fast_dev_run", "trainer.enable_progress_bar=false"]) == 0
    captured = capsys.readouterr()
    assert "nothing was kept" in captured.out and "it/s" not in captured.out + captured.err


def test_cpu_time_budget_stops_training_after_the_batch_that_spends_it(demo_root, tmp_path):
    """A budget far below one batch's CPU time stops the run after its first step (with validation
    and the last checkpoint written); max_epochs alone would have run 3 epochs of 2 batches."""
    rundir = tmp_path / "runs"
    overrides = [o for o in FAST if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=3"]
    assert main(["--config-name", "demo", "name=budget", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 *overrides, "+callbacks.cpu_budget._target_=vschaos.training.callbacks.CPUTimeBudget",
                 "+callbacks.cpu_budget.seconds=1e-6"]) == 0
    last = rundir / "budget" / "version_0" / "checkpoints" / "last.ckpt"
    assert _step(last) == 1
    from vschaos.training.callbacks import CPUTimeBudget

    with pytest.raises(ValueError, match="seconds must be > 0"):
        CPUTimeBudget(0)


LATENT_PREDICTORS = [f"{change}model.prediction.{task}.{key}" for task in ("pitch", "octave") for change, key in
                     (("", "type=MLPEncoder"), ("~", "args.fold"), ("~", "args.channels"))]


@pytest.mark.parametrize("predictors", ["latent", "spectrum"])
def test_input_pitch_shift_trains_the_decoder_on_shifted_frames_and_keeps_them_from_latent_predictors(
        demo_root, predictors):
    cfg = compose_config("dgt_pitch_prediction", [
        f"data.dataset.root={demo_root}", "data.batch_size=64", "model.encoder.hidden_dims=32",
        "model.decoder.hidden_dims=32", "module.predictor_frames=40",
        "module.input_pitch_shift={_target_:vschaos.models.pitch_shift.InputPitchShift,probability:1.0}"]
        + (LATENT_PREDICTORS if predictors == "latent" else []))
    vae, datamodule, module = build_objects(cfg)
    assert vae.spectrum_tasks == ([] if predictors == "latent" else ["pitch", "octave"])
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    known = batch["labels"]["pitch"] >= 0
    labelled = (known & (batch["labels"]["octave"] >= 0)).sum()
    assert labelled > 0
    torch.manual_seed(0)
    shifted_terms = module._shared_step(batch, sample=True)
    if predictors == "latent":  # every labelled frame was shifted: the latent predictors learnt from none of them
        assert shifted_terms["prediction/pitch/count"] == known.sum() - labelled
    else:  # the spectrum predictors read the unshifted frames: they learn from the first 40, shifted or not
        assert shifted_terms["prediction/pitch/count"] == known[:40].sum()
    plain_terms = module._shared_step(batch, sample=False)  # validation: never shifted, every frame scored
    assert plain_terms["prediction/pitch/count"] == known.sum()
    assert torch.isfinite(shifted_terms["loss"])


def test_note_augmentation_moves_training_frames_and_labels_and_validation_never(demo_root, monkeypatch):
    import vschaos.models.augment as augment

    cfg = compose_config("dgt_pitch_cond", [f"data.dataset.root={demo_root}", "data.batch_size=32",
                                            "model.encoder.hidden_dims=32", "model.decoder.hidden_dims=32",
                                            "module.augment_note_semitones=2", "module.input_pitch_shift=null"])
    _, datamodule, module = build_objects(cfg)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    seen = []
    monkeypatch.setattr(augment, "_shift_notes", lambda m, labels, n, generator: seen.append(n) or (
        m * 0, labels, torch.zeros(m.shape[0], dtype=torch.long)))
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    module.training_step(batch, 0)
    assert seen == [2]  # the training step moved the batch by up to 2 semitones (here: to silence)
    module.validation_step(batch, 0)
    assert seen == [2]
    with pytest.raises(Exception, match="module.augment_note_semitones must be a whole number >= 0, got 1.5"):
        build_objects(compose_config("dgt_pitch_cond", [f"data.dataset.root={demo_root}",
                                                        "module.augment_note_semitones=1.5"]))


def test_timbre_augmentation_recolours_training_frames_only(demo_root, monkeypatch):
    import vschaos.models.augment as augment

    cfg = compose_config("demo", [f"data.dataset.root={demo_root}", "data.batch_size=16",
                                  "module.augment_timbre_db=9"])
    _, datamodule, module = build_objects(cfg)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    seen, stepped = [], []
    real_recolour, real_step = augment.recolour, module._shared_step
    monkeypatch.setattr(augment, "recolour", lambda m, db, generator=None: seen.append(db) or real_recolour(m, db))
    monkeypatch.setattr(module, "_shared_step", lambda b, sample: stepped.append(b["magnitude"]) or real_step(b, sample))
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    module.training_step(batch, 0)
    module.validation_step(batch, 0)
    assert seen == [9.0]  # the training step, at the configured bound; validation never
    trained, validated = stepped
    ratio_db = 20 * torch.log10(trained / batch["magnitude"])
    # the training step learns from the recoloured frames: a curve per frame within +-9 dB, not the input
    assert float(ratio_db.abs().max()) <= 9.0 + 1e-3 and float(ratio_db.abs().max()) > 3.0
    assert torch.equal(validated, batch["magnitude"])
    for bad in ("-1", "nan", "inf", "61"):
        with pytest.raises(Exception, match=f"module.augment_timbre_db must lie in \\[0, 60\\] dB \\(0 = off\\), got {bad}"):
            build_objects(compose_config("demo", [f"data.dataset.root={demo_root}", f"module.augment_timbre_db={bad}"]))


def test_every_step_the_logger_writes_holds_every_training_term(demo_root):
    """The loss terms are logged only on the steps Lightning writes (log_every_n_steps): none may be missing there."""
    from lightning.pytorch.loggers import Logger

    class RecordingLogger(Logger):
        name, version = "recording", 0

        def __init__(self):
            super().__init__()
            self.written = {}

        def log_metrics(self, metrics, step=None):
            self.written.setdefault(step, {}).update(metrics)

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    class StopAfterFiveSteps(L.Callback):  # as the CPU budget or early stopping stop a run
        def on_train_batch_end(self, trainer, *args):
            trainer.should_stop = trainer.should_stop or trainer.global_step >= 5

    cfg = compose_config("demo", [f"data.dataset.root={demo_root}", "data.batch_size=32"])
    _, datamodule, module = build_objects(cfg)
    logger = RecordingLogger()
    trainer = L.Trainer(max_steps=20, logger=logger, log_every_n_steps=3, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[StopAfterFiveSteps()])
    trainer.fit(module, datamodule=datamodule)
    train_steps = {step: keys for step, keys in logger.written.items() if any(k.startswith("train/") for k in keys)}
    # Lightning writes steps 3 and 6 (0-based 2 and 5), and the step where a callback stops training
    assert sorted(train_steps) == [2, 4]
    for step, values in train_steps.items():
        assert {"train/loss", "train/spectral_convergence", "train/log_magnitude_l1", "train/kl", "train/beta"} <= set(values)
        # this step's values, not a previous step's left in Lightning's results (beta grows every step)
        assert values["train/beta"] == pytest.approx(module.loss.beta_at(step))


def test_spectrum_predictors_complete_only_the_unlabelled_training_frames(demo_root):
    cfg = compose_config("dgt_pitch_prediction", [f"data.dataset.root={demo_root}", "data.batch_size=64",
                                                  "model.encoder.hidden_dims=32", "model.decoder.hidden_dims=32"])
    _, datamodule, module = build_objects(cfg)
    datamodule.setup("fit")
    magnitude = next(iter(datamodule.train_dataloader()))["magnitude"]
    pitch = torch.arange(64) % 12
    pitch[::5] = -1  # every fifth frame unvoiced
    labels = {"pitch": pitch, "octave": torch.full((64,), 5)}
    with torch.no_grad():
        sparse = module._spectrum_completion_logits(magnitude, labels, every_frame=False)
        full = module._spectrum_completion_logits(magnitude, labels, every_frame=True)
    missing = pitch < 0
    for task in ("pitch", "octave"):
        torch.testing.assert_close(sparse[task][missing], full[task][missing])  # what completion reads
        assert bool((sparse[task][~missing] == 0).all())  # labelled frames: not computed
