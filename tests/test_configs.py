"""Every config composes and instantiates; the CLI's argument handling."""
from pathlib import Path

import pytest
from hydra.utils import instantiate

from vschaos.cli.train import UserError, compose_config, normalise_override, split_command_line
from vschaos.configs import CONFIG_DIR, preset_names
from vschaos.training.fit import build_objects

PRESETS = preset_names()
GROUP_OPTIONS = sorted((p.parent.name, p.stem) for p in CONFIG_DIR.glob("*/*.yaml"))


def test_expected_presets_exist():
    assert {"dgt_low", "dgt_mid", "dgt_high", "dgt_harmonic", "dgt_pitch_cond", "dgt_pitch_prediction", "demo"} <= set(PRESETS)


def _instantiate_all(cfg, tmp_path: Path) -> None:
    vae, datamodule, module = build_objects(cfg)
    assert module.vae is vae and datamodule.transform is vae.transform
    assert vae.n_bins == cfg.transform.n_fft // 2 + 1
    logger = instantiate(cfg.logger, save_dir=str(tmp_path), name="x")
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    return instantiate(cfg.trainer, logger=logger, callbacks=callbacks)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_instantiates(preset, tmp_path):
    cfg = compose_config(preset, [f"data.dataset.root={tmp_path}"])
    assert cfg.data.dataset.root == str(tmp_path) and cfg.name and cfg.rundir and "seed" in cfg
    trainer = _instantiate_all(cfg, tmp_path)
    assert trainer.max_epochs == cfg.trainer.max_epochs and not trainer.fast_dev_run and trainer.overfit_batches == 0


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes_and_instantiates(group, option, tmp_path):
    cfg = compose_config("demo", [f"data.dataset.root={tmp_path}", f"{group}={option}"])
    _instantiate_all(cfg, tmp_path)


@pytest.mark.parametrize("preset", PRESETS)
def test_debug_options_set_what_they_promise_in_every_preset(preset, tmp_path):
    fast = _instantiate_all(compose_config(preset, [f"data.dataset.root={tmp_path}", "debug=fast_dev_run"]), tmp_path)
    # one training and one validation batch, no sanity check, no real logger
    assert fast.fast_dev_run == 1 and fast.max_epochs == 1 and fast.max_steps == 1
    assert fast.limit_train_batches == 1 and fast.limit_val_batches == 1 and fast.num_sanity_val_steps == 0
    assert type(fast.logger).__name__ == "DummyLogger"
    # overfit: 4 batches for 50 epochs, even in presets that set their own max_epochs (demo: 12)
    overfit = _instantiate_all(compose_config(preset, [f"data.dataset.root={tmp_path}", "debug=overfit"]), tmp_path)
    assert overfit.overfit_batches == 4 and overfit.max_epochs == 50 and not overfit.fast_dev_run
    assert overfit.limit_train_batches == 4 and overfit.limit_val_batches == 4


def test_best_checkpoint_monitors_a_metric_without_the_beta_warmup(tmp_path):
    cfg = compose_config("demo", [f"data.dataset.root={tmp_path}"])
    checkpoint = instantiate(cfg.callbacks.checkpoint)
    # val/loss holds beta(step) * KL with beta warming up from 0: early epochs would look best
    assert checkpoint.monitor == "val/spectral_convergence" and checkpoint.mode == "min"


def test_pitch_presets_condition_in_config_order(tmp_path):
    cfg = compose_config("dgt_pitch_prediction", [f"data.dataset.root={tmp_path}"])
    vae, _, _ = build_objects(cfg)
    assert vae.decoder_tasks == ["pitch", "octave"] and vae.predicted_tasks == ["pitch", "octave"]
    assert vae.task_dims == {"pitch": 12, "octave": 11}


def test_both_dataset_root_spellings_compose(tmp_path):
    plus = compose_config("dgt_mid", [f"+data.dataset.root={tmp_path}", "+data.dataset.n_files=3", "+check=1"])
    plain = compose_config("dgt_mid", [f"data.dataset.root={tmp_path}"])
    assert plus.data.dataset.root == plain.data.dataset.root == str(tmp_path)
    assert plus.data.dataset.n_files == 3 and plus.check == 1


def test_command_line_split_normalises_plus_overrides_and_keeps_hydra_flags():
    name, dirs, overrides, argv = split_command_line(
        ["--config-name", "dgt_low", "name=a", "+data.dataset.root=d", "++x=1", "-m", "--cfg", "job", "-cd", "extra"])
    assert name == "dgt_low" and dirs == [Path("extra")] and overrides == ["name=a", "++data.dataset.root=d", "++x=1"]
    assert argv == ["--config-name", "dgt_low", "name=a", "++data.dataset.root=d", "++x=1", "-m", "--cfg", "job",
                    "-cd", "extra"]
    assert split_command_line(["--config-name=demo.yaml"])[0] == "demo"
    assert normalise_override("trainer.max_epochs=3") == "trainer.max_epochs=3"
    with pytest.raises(UserError, match="--config-name needs a value"):
        split_command_line(["--config-name"])


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"base"}))
def test_each_preset_is_the_base_with_its_experiment_over_it(preset, tmp_path):
    by_name = compose_config(preset, [f"data.dataset.root={tmp_path}"])
    template_style = compose_config("base", [f"experiment={preset}", f"data.dataset.root={tmp_path}"])
    assert by_name == template_style and by_name.name == preset


def test_presets_override_only_what_they_change(tmp_path):
    base = compose_config("base", [f"data.dataset.root={tmp_path}"])
    assert compose_config("dgt_mid", [f"data.dataset.root={tmp_path}"]) == base  # the base is dgt_mid
    demo = compose_config("demo", [f"data.dataset.root={tmp_path}"])
    assert (demo.transform.n_fft, demo.transform.sample_rate, demo.model.latent_dim) == (1024, 22050, 16)
    assert demo.model.encoder.channels == [] and demo.model.decoder.hidden_dims == 256  # small model under it
    assert demo.module.loss.beta == base.module.loss.beta and demo.trainer.max_epochs == 12
    high = compose_config("dgt_high", [f"data.dataset.root={tmp_path}"])
    assert high.model.encoder.channels == [16, 32, 64, 64] and high.transform.n_fft == 8192
    prediction = compose_config("dgt_pitch_prediction", [f"data.dataset.root={tmp_path}"])
    cond = compose_config("dgt_pitch_cond", [f"data.dataset.root={tmp_path}"])
    assert prediction.model.conditioning == cond.model.conditioning and set(prediction.model.prediction) == {"pitch", "octave"}
    # the input pitch shift is on in both pitch presets (spectrum predictors read the unshifted frames), off elsewhere
    assert cond.module.input_pitch_shift.probability == 0.5 and cond.module.input_pitch_shift.max_semitones == 12.0
    assert prediction.module.input_pitch_shift == cond.module.input_pitch_shift and base.module.input_pitch_shift is None
    # whole-semitone note augmentation: on in both pitch presets, off where there are no note labels
    assert cond.module.augment_note_semitones == prediction.module.augment_note_semitones == 2
    assert base.module.augment_note_semitones == 0
    # the source-filter preset recolours its training frames; the base config does not
    harmonic = compose_config("dgt_harmonic", [f"data.dataset.root={tmp_path}"])
    assert harmonic.module.augment_timbre_db == 6.0 and base.module.augment_timbre_db == 0.0
    assert {task: spec.type for task, spec in prediction.model.prediction.items()} == {
        "pitch": "SpectrumNotePredictor", "octave": "SpectrumNotePredictor"}
