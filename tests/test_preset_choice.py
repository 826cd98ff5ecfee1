"""preset=auto: the material measures (vschaos/pitch/material.py), the recommendation and its bounded sample
(vschaos/pitch/recommend.py), and its wiring into train_model.py and check_dataset.py."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from vschaos.cli.dataset_tools import check_dataset_main
from vschaos.cli.train import UserError, compose_config, main, resolve_auto_preset
from vschaos.pitch import material
from vschaos.pitch.material import (MaterialMeasures, count_onsets, measure_signals, returning_jumps,
                                    sounding_frames)
from vschaos.pitch.recommend import (GENERAL, HARMONIC, MIN_PERIODICITY, MIN_VOICED_SHARE, RecommendError,
                                     read_excerpt, recommend, recommend_dataset, sample_plan)

SR = material.SAMPLE_RATE


def tone(seconds=2.0, f0=220.0, rate=SR, glide=1.0, vibrato=0.0):
    """A bright harmonic tone (partials 1/k) gliding from f0 to glide * f0, with vibrato (semitones)."""
    t = np.arange(int(seconds * rate)) / rate
    f = f0 * glide ** (t / t[-1]) * 2 ** (vibrato / 12 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    audio = sum(np.sin(k * phase) / k * (k * f < rate / 2) for k in range(1, 30))
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


def noise_bursts(seconds=2.0, rate=SR, seed=0):
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    for start in np.arange(0.1, seconds - 0.3, 0.45):
        n = int(0.2 * rate)
        s = int(start * rate)
        audio[s:s + n] = rng.normal(0, 0.1, n) * np.exp(-np.arange(n) / (0.05 * rate))
    return audio


def clicks(times, seconds=2.0, rate=SR):
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    for t in times:
        audio[int(t * rate): int(t * rate) + 8] = 0.5
    return audio


def dataset(root: Path, signals, rate=44100) -> Path:
    (root / "data" / "sub").mkdir(parents=True)
    for index, audio in enumerate(signals):
        sf.write(str(root / "data" / "sub" / f"f{index}.wav"), audio, rate, subtype="FLOAT")
    return root


def measures(**values) -> MaterialMeasures:
    base = dict(seconds=10.0, sounding_seconds=9.0, voiced_share=0.93, periodicity_median=0.91, jump_share=0.02,
                onsets_per_second=0.5, crest_db=9.0, signals=5)
    return MaterialMeasures(**{**base, **values})


# --- measures on synthesised material -------------------------------------------------------------------------

def test_a_harmonic_tone_with_glide_and_vibrato_is_voiced_confident_and_steady():
    m = measure_signals([tone(glide=2.0, vibrato=0.5), tone(f0=110.0)])
    assert m.signals == 2 and m.voiced_share > 0.95 and m.periodicity_median > MIN_PERIODICITY
    assert m.jump_share < 0.02  # a glide of an octave in 2 s and a 6 Hz vibrato never step 100 cents per hop
    assert recommend(m).preset == HARMONIC


def test_noise_bursts_and_clicks_are_unvoiced_and_percussive():
    bursts = measure_signals([noise_bursts(seed=s) for s in range(2)])
    assert bursts.voiced_share < 0.1 and bursts.periodicity_median < 0.5 and bursts.crest_db > 12
    assert recommend(bursts).preset == GENERAL
    hits = measure_signals([clicks([0.2, 0.5, 0.9, 1.3, 1.7])])
    assert hits.voiced_share < 0.1 and recommend(hits).preset == GENERAL
    assert hits.onsets_per_second > 5  # five clicks in well under a second of sounding audio


def test_onsets_are_counted_one_per_click_and_none_in_a_steady_tone():
    hop = material.hop_samples()
    audio = clicks([0.25, 0.6, 1.0, 1.45])
    assert count_onsets(audio, np.ones(audio.size // hop + 1, dtype=bool)) == 4
    steady = tone(seconds=2.0)[int(0.3 * SR):]  # cut from a held tone: its start is its one onset
    assert count_onsets(steady, np.ones(steady.size // hop + 1, dtype=bool)) == 1
    at_once = clicks([0.0, 1.0])  # a hit on the file's first sample counts
    assert count_onsets(at_once, np.ones(at_once.size // hop + 1, dtype=bool)) == 2


def test_a_melody_changes_notes_without_jumping_but_a_tracker_torn_between_two_notes_jumps():
    melody = np.repeat([6000.0, 6400.0, 6200.0, 6900.0], 5)  # cents: four notes of five frames
    assert returning_jumps(melody, np.ones(melody.size, dtype=bool)) == (0, melody.size - 1)
    torn = np.array([6000.0, 6000.0, 6700.0, 6000.0, 6000.0, 6700.0, 6700.0, 6000.0])  # back within 3 frames
    assert returning_jumps(torn, np.ones(torn.size, dtype=bool)) == (3, 7)
    voiced = np.array([True, True, True, False, True, True, True, True])  # unvoiced frames pair with nothing
    torn[~voiced] = np.nan  # as measure_signal leaves them
    assert returning_jumps(torn, voiced) == (2, 5)


def test_silence_and_the_quiet_tail_are_not_sounding():
    levels = np.array([-100.0, -70.0, -55.0, -20.0, -65.0, -75.0])
    assert sounding_frames(levels).tolist() == [False, False, True, True, False, False]
    assert sounding_frames(np.array([-30.0, -85.0, -45.0])).tolist() == [True, False, True]  # 50 dB under -30


# --- the decision -------------------------------------------------------------------------------------------------

def test_the_reason_quotes_the_measured_numbers():
    picked = recommend(measures())
    assert picked.preset == HARMONIC
    assert picked.reason.startswith("93% of frames voiced with median periodicity 0.91, 2.0% pitch jumps")
    assert picked.reason.endswith("one pitched source -> dgt_harmonic")
    assert picked.line().startswith("preset=auto -> dgt_harmonic: 93% of frames voiced")


@pytest.mark.parametrize("change,why", [
    (dict(voiced_share=MIN_VOICED_SHARE - 0.01, periodicity_median=0.4), "no single clear pitch"),
    (dict(voiced_share=MIN_VOICED_SHARE - 0.01), "pitch in only part of the sound"),
    (dict(periodicity_median=MIN_PERIODICITY - 0.01), "the pitch tracker is unsure"),
    (dict(jump_share=0.5), "the pitch jumps back and forth"),
])
def test_each_failed_test_picks_dgt_mid_and_says_why(change, why):
    picked = recommend(measures(**change))
    assert picked.preset == GENERAL and why in picked.reason and picked.reason.endswith("-> dgt_mid")


def test_silence_picks_dgt_mid():
    picked = recommend(measures(sounding_seconds=0.0, voiced_share=0.0))
    assert picked.preset == GENERAL and "silent" in picked.reason


# --- the bounded sample ---------------------------------------------------------------------------------------------

def test_a_big_folder_is_sampled_in_at_most_the_budget_spread_over_its_files():
    plan = sample_plan([3.0] * 1000, max_seconds=60.0, min_excerpt=2.0)
    assert len(plan) == 30 and sum(length for _, _, length in plan) == pytest.approx(60.0)
    assert plan[0][0] == 0 and plan[-1][0] == 999 and all(start == 0.0 for _, start, _ in plan)  # notes: attack
    assert sample_plan([600.0], 60.0) == [(0, 270.0, 60.0)]  # a long track: its middle
    assert sample_plan([1.0, 2.0], 60.0) == [(0, 0.0, 1.0), (1, 0.0, 2.0)]  # short files whole
    assert sample_plan([], 60.0) == []
    with pytest.raises(ValueError, match="max_seconds"):
        sample_plan([1.0], 0.0)


def test_a_big_folder_costs_the_headers_and_excerpts_of_the_sampled_files_only(tmp_path, monkeypatch):
    from vschaos.pitch import recommend as module

    root = dataset(tmp_path / "many", [tone(seconds=0.3, f0=110.0 * (1 + i % 7), rate=44100) for i in range(75)])
    headers, excerpts = [], []
    duration, read = module._duration, module.read_excerpt
    monkeypatch.setattr(module, "_duration", lambda path: headers.append(path.name) or duration(path))
    monkeypatch.setattr(module, "read_excerpt", lambda path, *a: excerpts.append(path.name) or read(path, *a))
    picked = recommend_dataset(root, max_seconds=20.0)  # 10 excerpts of at most 2 s
    # spread through the sorted list (f0, f1, f10, f11, ..., f9), its first and last files included
    assert headers == excerpts and len(headers) == 10 and headers[0] == "f0.wav" and headers[-1] == "f9.wav"
    assert picked.measures.signals == 10 and picked.measures.seconds <= 10 * 0.3 + 0.5


def test_an_excerpt_is_read_alone_in_mono_at_the_tracker_rate(tmp_path):
    rate = 44100
    stereo = np.stack([np.arange(10 * rate) / (10 * rate), np.zeros(10 * rate)], axis=1).astype(np.float32)
    sf.write(str(tmp_path / "ramp.wav"), stereo, rate, subtype="FLOAT")
    excerpt = read_excerpt(tmp_path / "ramp.wav", 4.0, 2.0)
    assert excerpt.shape == (2 * SR,)
    assert excerpt[SR] == pytest.approx(0.5 * 5.0 / 10.0, abs=1e-3)  # mid-excerpt = second 5 of the ramp, halved
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match="bad.wav: cannot read the audio"):
        read_excerpt(tmp_path / "bad.wav", 0.0, 1.0)


def test_unreadable_files_are_left_out_and_a_folder_without_sound_is_one_error(tmp_path):
    root = dataset(tmp_path / "d", [tone(rate=44100), tone(f0=330.0, rate=44100)])
    (root / "data" / "sub" / "broken.wav").write_bytes(b"RIFF nonsense")
    picked = recommend_dataset(root)
    assert picked.preset == HARMONIC and len(picked.skipped) == 1 and "broken.wav" in picked.line()
    with pytest.raises(RecommendError, match="no such folder"):
        recommend_dataset(tmp_path / "nothing")
    (tmp_path / "empty" / "data").mkdir(parents=True)
    with pytest.raises(RecommendError, match="no sound file"):
        recommend_dataset(tmp_path / "empty")


# --- wiring: train_model.py and check_dataset.py ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tone_root(tmp_path_factory):
    return dataset(tmp_path_factory.mktemp("tones"), [tone(f0=f, rate=44100, vibrato=0.3) for f in (110, 220, 440)])


@pytest.fixture(scope="module")
def noise_root(tmp_path_factory):
    return dataset(tmp_path_factory.mktemp("noise"), [noise_bursts(rate=44100, seed=s) for s in range(3)])


def test_auto_composes_dgt_harmonic_for_tones_and_dgt_mid_for_noise_bursts(tone_root, noise_root):
    name, overrides, picked = resolve_auto_preset("auto", [f"data.dataset.root={tone_root}"])
    cfg = compose_config(name, overrides)
    assert picked.preset == name == cfg.name == HARMONIC and cfg.model.decoder.type == "HarmonicDecoder"
    assert cfg.auto_preset.picked == HARMONIC and cfg.auto_preset.reason == picked.reason
    name, overrides, picked = resolve_auto_preset("base", [f"data.dataset.root={noise_root}", "experiment=auto"])
    cfg = compose_config(name, overrides)
    assert name == "base" and picked.preset == GENERAL == cfg.name and "experiment=dgt_mid" in overrides
    assert "decoder" not in cfg.model or cfg.model.decoder.get("type") != "HarmonicDecoder"
    assert cfg.auto_preset.reason.endswith("-> dgt_mid")


def test_a_named_preset_is_left_alone(tone_root):
    assert resolve_auto_preset("dgt_low", [f"data.dataset.root={tone_root}"]) == \
        ("dgt_low", [f"data.dataset.root={tone_root}"], None)


def test_the_command_prints_its_pick_and_stores_it_in_the_config(tone_root, tmp_path, capsys):
    # --cfg job: the composed config, exactly what config.yaml of the run would hold; resume reads that file, so
    # it trains the picked preset and never looks at the dataset again
    assert main(["--config-name", "auto", f"data.dataset.root={tone_root}", f"rundir={tmp_path}", "threads=1",
                 "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert first.startswith("preset=auto -> dgt_harmonic: ") and "frames voiced with median periodicity" in first
    printed = yaml.safe_load(rest)
    assert printed["name"] == HARMONIC and printed["model"]["decoder"]["type"] == "HarmonicDecoder"
    assert printed["auto_preset"]["picked"] == HARMONIC and "auto" not in str(printed["name"])
    from omegaconf import OmegaConf

    from vschaos.training.trust import check_paths, check_targets

    saved = OmegaConf.create(printed)
    check_targets(saved, "config.yaml")  # a run folder holding it passes every trust check of resume
    check_paths(saved, "config.yaml")


@pytest.mark.parametrize("argv,message", [
    (["--config-name", "auto"], "--config-name auto picks the preset from the dataset: set data.dataset.root=PATH"),
    (["--config-name", "base", "experiment=auto", "data.dataset.root=a,b", "-m"], "needs one dataset root"),
    (["--config-name", "auto", "data.dataset.root=/no/such/dataset"], "/no/such/dataset/data: no such folder"),
])
def test_auto_without_a_usable_dataset_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_check_dataset_prints_the_same_recommendation(noise_root, tmp_path, capsys):
    assert check_dataset_main([str(noise_root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == recommend_dataset(noise_root).line() and lines[0].startswith("preset=auto -> dgt_mid: ")
    assert lines[-1] == "OK"  # the report's verdict stays last
    assert check_dataset_main([str(noise_root), "--no-preset"]) == 0
    assert "preset=auto" not in capsys.readouterr().out
    (tmp_path / "data").mkdir()  # no sound: the report's problem, and one line instead of a recommendation
    assert check_dataset_main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("preset=auto: no recommendation: ") and "no sound file to look at" in out


@pytest.mark.slow
def test_a_resumed_auto_run_keeps_its_preset_even_when_the_dataset_changed(tmp_path, capsys):
    root = dataset(tmp_path / "tones", [tone(f0=f, rate=44100) for f in (110, 220, 330, 440)])
    fast = [f"rundir={tmp_path / 'runs'}", "name=auto_run", "threads=1", "trainer.max_epochs=1",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "data.batch_size=32",
            "callbacks.progress.refresh_rate=0", "trainer.enable_model_summary=false", "callbacks.reconstructions=null"]
    assert main(["--config-name", "auto", f"data.dataset.root={root}", *fast]) == 0
    assert capsys.readouterr().out.startswith("preset=auto -> dgt_harmonic: ")
    version = tmp_path / "runs" / "auto_run" / "version_0"
    for index, path in enumerate(sorted((root / "data" / "sub").glob("*.wav"))):  # now it would pick dgt_mid
        sf.write(str(path), noise_bursts(rate=44100, seed=index), 44100, subtype="FLOAT")
    assert recommend_dataset(root).preset == GENERAL
    assert main(["resume", str(version.parent), "trainer.max_epochs=2"]) == 0
    assert "preset=auto" not in capsys.readouterr().out
    saved = yaml.safe_load((version / "config.yaml").read_text())
    assert saved["auto_preset"]["picked"] == HARMONIC and saved["model"]["decoder"]["type"] == "HarmonicDecoder"
    assert (version / "resumes" / "1").is_dir()
