"""``generate.py reconstruct`` and ``generate.py trajectories`` end to end, on real run folders.

The run folders are built once per module from the real presets (``demo``, and the pitch presets
on the demo front end) with randomly initialised weights, written exactly as training writes
them (resolved ``config.yaml`` + ``checkpoints/last.ckpt`` with ``vae.``-prefixed weights).
"""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from vschaos.cli.generate import main
from vschaos.cli.train import compose_config
from vschaos.io import atomic_torch_save, atomic_write_text
from vschaos.training.run import CONFIG_NAME, build_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEMO_RATE = 22050
DEMO_HOP = 256
# the pitch presets on the demo front end and the small model, to stay fast
SMALL_PITCH = ["transform=demo", "model=small"]


def make_run(rundir: Path, preset: str, name: str, overrides=(), dataset_root=None) -> Path:
    """A run folder ``rundir/name/version_0`` of ``preset`` with random (seeded) weights."""
    extra = [f"name={name}", f"rundir={rundir}"] + list(overrides)
    if dataset_root is not None:
        extra.append(f"data.dataset.root={dataset_root}")
    cfg = compose_config(preset, extra)
    torch.manual_seed(0)
    vae = build_model(cfg)
    version_dir = rundir / name / "version_0"
    atomic_write_text(version_dir / CONFIG_NAME, OmegaConf.to_yaml(cfg, resolve=True))
    state = {"state_dict": {f"vae.{key}": value for key, value in vae.state_dict().items()}}
    atomic_torch_save(state, version_dir / "checkpoints" / "last.ckpt")
    return rundir / name


def latent_dim_of(run_dir: Path) -> int:
    """The latent size the run's saved config asks for (presets change; tests must not hard-code it)."""
    return int(OmegaConf.load(run_dir / "version_0" / CONFIG_NAME).model.latent_dim)


def harmonic_tone(freq: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = sum(np.sin(2 * math.pi * k * freq * t) / k for k in range(1, 6))
    return (0.4 * tone / np.abs(tone).max()).astype(np.float32)


def chirp(f0: float, f1: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rate = math.log(f1 / f0) / seconds
    return (0.4 * np.sin(2 * math.pi * f0 * (np.exp(rate * t) - 1) / rate)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate)
    return path


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """Sound files: two at the demo rate in a nested folder, one at 44.1 kHz, one unreadable."""
    root = tmp_path_factory.mktemp("sounds")
    files = {
        "tone": write_wav(root / "folder" / "tone.wav", harmonic_tone(220.0, 0.5, DEMO_RATE), DEMO_RATE),
        "chirp": write_wav(root / "folder" / "sub" / "chirp.flac", chirp(100.0, 4000.0, 0.3, DEMO_RATE), DEMO_RATE),
        "hires": write_wav(root / "single" / "hires.wav", harmonic_tone(330.0, 0.25, 44100), 44100),
    }
    broken = root / "folder" / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    files["broken"] = broken
    return {**files, "root": root}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), "demo", "demo")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A tiny demo dataset tree (data/ + metadata/instrument, pitch, octave with classes.txt)."""
    from vschaos.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo_data"), sample_rate=DEMO_RATE, minutes=0.1,
                             files_per_instrument=1)


def read(path: Path):
    data, rate = sf.read(str(path), dtype="float32")
    return data, rate


def metrics_rows(out: Path):
    with open(out / "reconstructions" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- reconstruct

def test_reconstruct_file_and_folder(demo_run, sounds, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["reconstruct", str(demo_run), "--files", str(sounds["root"] / "folder"), str(sounds["hires"]),
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    recon = out / "reconstructions"
    # folder mirrored relative to itself (recursively), a single file by its name, always .wav
    tone, rate = read(recon / "tone.wav")
    chirp, _ = read(recon / "sub" / "chirp.wav")
    hires, hires_rate = read(recon / "hires.wav")
    assert rate == DEMO_RATE and hires_rate == DEMO_RATE  # default: the model's rate
    assert len(tone) == sf.info(str(sounds["tone"])).frames
    assert len(chirp) == sf.info(str(sounds["chirp"])).frames
    assert len(hires) == round(sf.info(str(sounds["hires"])).frames * DEMO_RATE / 44100)
    assert np.isfinite(tone).all() and np.abs(tone).max() > 0
    rows = metrics_rows(out)
    assert sorted(r["output"] for r in rows) == ["hires.wav", "sub/chirp.wav", "tone.wav"]
    for row in rows:
        for column in ("spectral_convergence", "log_spectral_distance_db", "model_spectral_convergence",
                       "model_log_spectral_distance_db"):
            assert math.isfinite(float(row[column])) and float(row[column]) >= 0
    # the unreadable file is listed, the others were still processed
    assert "broken.wav" in captured.out and "unreadable" in captured.out
    assert not (recon / "broken.wav").exists()


def test_reconstruct_at_another_rate_keeps_the_duration(demo_run, sounds, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(demo_run), "--files", str(sounds["tone"]), "--sr", "44100", "--out", str(out),
                 "--phase", "pghi"]) == 0
    audio, rate = read(out / "reconstructions" / "tone.wav")
    assert rate == 44100
    assert len(audio) == 2 * sf.info(str(sounds["tone"])).frames


def test_reconstruct_quality_is_phase_limited_for_an_identity_model(demo_run, sounds, identity_model):
    """With a decoder that returns its input magnitude, the metrics measure phase reconstruction
    alone: PGHI + Griffin-Lim must recover a harmonic tone's magnitude closely."""
    from vschaos.generation.reconstruct import reconstruct_audio
    from vschaos.data.audio import load_audio
    from vschaos.training.run import open_run

    vae = open_run(demo_run).vae

    audio = load_audio(sounds["tone"], DEMO_RATE)
    result = reconstruct_audio(identity_model(vae.transform), audio, {})
    metrics = result.metrics()
    assert metrics["model_spectral_convergence"] < 1e-4
    assert metrics["spectral_convergence"] < 0.05  # measured ~0.006 for this tone
    assert result.audio.shape == audio.shape
    random_phase = reconstruct_audio(identity_model(vae.transform), audio, {}, method="random").metrics()
    assert random_phase["spectral_convergence"] > 10 * metrics["spectral_convergence"]


def test_temperature_zero_is_deterministic_and_sampling_differs(demo_run, sounds, tmp_path):
    outs = []
    for name, temperature in (("a", "0"), ("b", "0"), ("c", "1.0")):
        out = tmp_path / name
        assert main(["reconstruct", str(demo_run), "--files", str(sounds["tone"]), "--out", str(out),
                     "--temperature", temperature, "--phase", "pghi"]) == 0
        outs.append((out / "reconstructions" / "tone.wav").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_reconstruct_nothing_readable_fails(demo_run, sounds, tmp_path, capsys):
    status = main(["reconstruct", str(demo_run), "--files", str(sounds["broken"]), str(tmp_path / "missing.wav"),
                   "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 1
    assert "broken.wav" in captured.out and "missing.wav" in captured.out
    assert "nothing was reconstructed" in captured.err
    assert not (tmp_path / "out" / "reconstructions" / "metrics.csv").exists()


def test_reconstruct_transpose_moves_the_pitch_latent_of_a_harmonic_model(tmp_path, sounds, capsys):
    from vschaos.generation.reconstruct import reconstruct_audio
    from vschaos.training.run import open_run

    run_dir = make_run(tmp_path / "runs", "demo", "harmonic", ["model=harmonic"])
    vae = open_run(run_dir).vae
    audio = torch.as_tensor(harmonic_tone(220.0, 0.5, DEMO_RATE))
    plain = reconstruct_audio(vae, audio, {}, method="pghi")
    fifth = reconstruct_audio(vae, audio, {}, method="pghi", transpose=7.0)
    # z[:, 0] is log2(f0 / 220 Hz) at one octave per unit: +7 semitones = +7/12; nothing else moves
    assert torch.allclose(fifth.latents[:, 0], plain.latents[:, 0] + 7 / 12, atol=1e-6)
    assert torch.equal(fifth.latents[:, 1:], plain.latents[:, 1:])
    out = tmp_path / "out"
    assert main(["reconstruct", str(run_dir), "--files", str(sounds["tone"]), "--out", str(out),
                 "--transpose", "-5"]) == 0, capsys.readouterr().err
    assert (out / "reconstructions" / "tone.wav").is_file()


def test_reconstruct_transpose_is_refused_without_a_pitch_latent(demo_run, sounds, tmp_path, capsys):
    status = main(["reconstruct", str(demo_run), "--files", str(sounds["tone"]), "--out", str(tmp_path / "out"),
                   "--transpose", "12"])
    assert status == 2 and "no pitch latent" in capsys.readouterr().err
    assert not (tmp_path / "out" / "reconstructions").exists()
    for bad in ("nan", "49", "up"):
        with pytest.raises(SystemExit):
            main(["reconstruct", str(demo_run), "--files", str(sounds["tone"]), "--out", str(tmp_path / "out"),
                  "--transpose", bad])
        assert "--transpose" in capsys.readouterr().err


def test_run_folder_without_checkpoint_is_a_clear_error(tmp_path, sounds, capsys):
    version = tmp_path / "empty_run" / "version_0"
    (version / "checkpoints").mkdir(parents=True)
    status = main(["reconstruct", str(tmp_path / "empty_run"), "--files", str(sounds["tone"]),
                   "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and "last.ckpt" in err and "Traceback" not in err
    assert main(["trajectories", str(tmp_path / "nowhere"), "--trajectories", "sin", "--out",
                 str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a truncated checkpoint
    (version / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    (version / "config.yaml").write_text("{}\n")
    assert main(["trajectories", str(tmp_path / "empty_run"), "--trajectories", "sin", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load the model from") and "Traceback" not in err


def test_non_finite_output_is_never_written(demo_run, tmp_path, sounds, capsys, monkeypatch):
    """The VAE bounds its own outputs; should any stage still yield NaN/Inf (a future model, a bug), the
    writers refuse it. Simulated by making the synthesis return NaN."""
    from vschaos.generation import reconstruct as reconstruct_module
    from vschaos.generation import synthesis

    real_reconstruct = reconstruct_module.reconstruct_audio

    def nan_reconstruct(*args, **kwargs):
        result = real_reconstruct(*args, **kwargs)
        result.audio[::7] = float("nan")
        return result

    monkeypatch.setattr(reconstruct_module, "reconstruct_audio", nan_reconstruct)
    monkeypatch.setattr(synthesis, "decode_latent_path",
                        lambda *args, **kwargs: torch.full((8 * DEMO_HOP,), float("inf")))
    out = tmp_path / "out"
    assert main(["reconstruct", str(demo_run), "--files", str(sounds["tone"]), "--out", str(out),
                 "--phase", "pghi"]) == 1
    captured = capsys.readouterr()
    assert "NaN/Inf" in captured.err and f"{sounds['tone']}: " in captured.out and "not written" in captured.out
    assert not list(out.rglob("*.wav"))
    assert main(["trajectories", str(demo_run), "--trajectories", "sin", "-s", "8", "--phase", "random",
                 "--out", str(out)]) == 2
    assert "sin_0: the model decoded" in capsys.readouterr().err and not list(out.rglob("*.wav"))


# ----------------------------------------------------------------------------- conditioned models

@pytest.fixture(scope="module")
def pitch_runs(tmp_path_factory, dataset):
    rundir = tmp_path_factory.mktemp("pitch_runs")
    decoder = make_run(rundir, "dgt_pitch_cond", "decoder_cond", SMALL_PITCH, dataset_root=dataset)
    encoder = make_run(rundir, "dgt_pitch_cond", "encoder_cond",
                       SMALL_PITCH + ["model.conditioning.pitch.target=[encoder,decoder]"], dataset_root=dataset)
    predicted = make_run(rundir, "dgt_pitch_prediction", "predicted", SMALL_PITCH)
    return {"decoder": decoder, "encoder": encoder, "predicted": predicted}


def test_conditioned_model_needs_labels_outside_the_training_tree(pitch_runs, sounds, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert "'pitch' conditions the encoder" in captured.out and "--labels pitch=" in captured.out
    # labels as a musician writes them: class names (from the dataset's classes.txt), so octave=4 is
    # octave 4 (id 5) and pitch=A the note A; raw ids only with the id: prefix
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out),
                 "--labels", "pitch=A", "octave=4"]) == 0
    by_name = (out / "reconstructions" / "tone.wav").read_bytes()
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out),
                 "--labels", "pitch=id:9", "octave=id:5"]) == 0
    assert (out / "reconstructions" / "tone.wav").read_bytes() == by_name
    # octave=5 is the octave named 5 (id 6), not id 5
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out),
                 "--labels", "pitch=A", "octave=5"]) == 0
    octave_five = (out / "reconstructions" / "tone.wav").read_bytes()
    assert octave_five != by_name
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out),
                 "--labels", "pitch=A", "octave=id:6"]) == 0
    assert (out / "reconstructions" / "tone.wav").read_bytes() == octave_five
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(sounds["tone"]), "--out", str(out),
                 "--labels", "pitch=D", "octave=4"]) == 0
    assert (out / "reconstructions" / "tone.wav").read_bytes() != by_name


def test_files_of_the_training_tree_use_their_metadata(pitch_runs, dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(pitch_runs["encoder"]), "--files", str(dataset / "data"), "--out", str(out),
                 "--phase", "pghi"]) == 0
    written = sorted(p.relative_to(out / "reconstructions").as_posix()
                     for p in (out / "reconstructions").rglob("*.wav"))
    expected = sorted(p.relative_to(dataset / "data").as_posix() for p in (dataset / "data").rglob("*.wav"))
    assert written == expected and len(written) >= 2


def test_dataset_root_option_points_a_run_at_its_moved_dataset(dataset, tmp_path, capsys):
    import shutil

    moved = Path(shutil.copytree(dataset, tmp_path / "moved", ignore=shutil.ignore_patterns(".vschaos_cache")))
    run = make_run(tmp_path / "runs", "dgt_pitch_cond", "moved_data",
                   SMALL_PITCH + ["model.conditioning.pitch.target=[encoder,decoder]"], dataset_root=tmp_path / "gone")
    sound = next((moved / "data").rglob("*.wav"))
    args = ["reconstruct", str(run), "--files", str(sound), "--out", str(tmp_path / "out"), "--phase", "pghi"]
    assert main(args) == 1  # the saved root no longer exists: no labels for the encoder
    assert "--labels pitch=" in capsys.readouterr().out
    assert main(args + ["--dataset-root", str(moved)]) == 0  # labels from the moved tree's metadata
    assert (tmp_path / "out" / "reconstructions" / sound.name).is_file()
    assert main(args + ["--dataset-root", str(tmp_path / "nowhere")]) == 2
    assert "--dataset-root" in capsys.readouterr().err


def test_predictor_supplies_decoder_labels(pitch_runs, sounds, tmp_path):
    out = tmp_path / "out"
    assert main(["reconstruct", str(pitch_runs["predicted"]), "--files", str(sounds["tone"]), "--out", str(out)]) == 0
    assert (out / "reconstructions" / "tone.wav").is_file()


@pytest.mark.parametrize("labels, message", [
    (["pitch=12"], "no pitch class is named '12'"),
    (["pitch=9"], "a raw class id is written pitch=id:N (ids 0..11)"),
    (["octave=10"], "no octave class is named '10'"),
    (["octave=id:11"], "out of range, task 'octave' has ids 0..10"),
    (["pitch=id:A"], "'id:' must be followed by an integer class id"),
    (["pitch=H"], "no pitch class is named 'H' (names: C, C#,"),
    (["timbre=3"], "unknown task 'timbre'"),
    (["pitch"], "task=value"),
])
def test_bad_labels_are_rejected(pitch_runs, sounds, tmp_path, capsys, labels, message):
    for command in (["reconstruct", "--files", str(sounds["tone"])], ["trajectories", "--trajectories", "sin"]):
        argv = [command[0], str(pitch_runs["decoder"])] + command[1:] + ["--out", str(tmp_path), "--labels"] + labels
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- trajectories

def test_trajectories_files_lengths_and_determinism(demo_run, tmp_path):
    argv = ["trajectories", str(demo_run), "--trajectories", "sin", "random", "line", "-b", "2", "-s", "40",
            "--seed", "7", "--phase", "pghi"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    folder = tmp_path / "a" / "trajectories"
    stems = [f"{kind}_{i}" for kind in ("sin", "random", "line") for i in range(2)]
    assert sorted(p.stem for p in folder.glob("*.wav")) == sorted(stems)
    for stem in stems:
        audio, rate = read(folder / f"{stem}.wav")
        assert rate == DEMO_RATE and len(audio) == 40 * DEMO_HOP
        assert np.isfinite(audio).all()
        latents = np.load(folder / f"{stem}.npy")
        assert latents.shape == (40, latent_dim_of(demo_run)) and latents.dtype == np.float32
        png = (folder / f"{stem}.png").read_bytes()
        assert png[:8] == PNG_SIGNATURE and len(png) > 10_000
        for suffix in (".wav", ".npy"):
            again = tmp_path / "b" / "trajectories" / f"{stem}{suffix}"
            assert (folder / f"{stem}{suffix}").read_bytes() == again.read_bytes()
    assert (folder / "sin_0.wav").read_bytes() != (folder / "sin_1.wav").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == set(stems) and all(e["seed"] == 7 for e in manifest["files"].values())


def test_a_second_trajectories_call_adds_to_the_manifest(demo_run, tmp_path):
    out = tmp_path / "out"
    argv = ["trajectories", str(demo_run), "-s", "12", "--phase", "random", "--out", str(out)]
    assert main(argv + ["--trajectories", "sin", "line", "--seed", "3"]) == 0
    assert main(argv + ["--trajectories", "circle", "line", "--seed", "4"]) == 0
    files = json.loads((out / "trajectories" / "manifest.json").read_text())["files"]
    assert sorted(files) == ["circle_0", "line_0", "sin_0"]
    # the first call's sin_0 keeps its seed; line_0 was made again by the second call
    assert (files["sin_0"]["seed"], files["line_0"]["seed"], files["circle_0"]["seed"]) == (3, 4, 4)
    assert files["sin_0"]["type"] == "sin" and files["sin_0"]["steps"] == 12
    # a manifest of the older layout (settings at the top) is carried over entry by entry
    (out / "trajectories" / "manifest.json").write_text(json.dumps(
        {"seed": 9, "steps": 5, "files": {"random_0": {"type": "random", "batch": 0, "labels": {}}}}))
    assert main(argv + ["--trajectories", "sin"]) == 0
    files = json.loads((out / "trajectories" / "manifest.json").read_text())["files"]
    assert files["random_0"] == {"seed": 9, "steps": 5, "type": "random", "batch": 0, "labels": {}}
    assert files["sin_0"]["seed"] == 0
    (out / "trajectories" / "manifest.json").write_text("{not json")
    assert main(argv + ["--trajectories", "sin"]) == 2  # refused before anything is written or lost
    assert (out / "trajectories" / "manifest.json").read_text() == "{not json"


def test_trajectories_other_seed_and_rate(demo_run, tmp_path):
    argv = ["trajectories", str(demo_run), "--trajectories", "circle", "-s", "20", "--phase", "random"]
    assert main(argv + ["--out", str(tmp_path / "a"), "--seed", "1", "--sr", "44100"]) == 0
    assert main(argv + ["--out", str(tmp_path / "b"), "--seed", "2"]) == 0
    a, rate = read(tmp_path / "a" / "trajectories" / "circle_0.wav")
    assert rate == 44100 and len(a) == 2 * 20 * DEMO_HOP
    assert not np.array_equal(np.load(tmp_path / "a" / "trajectories" / "circle_0.npy"),
                              np.load(tmp_path / "b" / "trajectories" / "circle_0.npy"))


def test_spread_from_training_sounds_maps_the_paths(demo_run, sounds, tmp_path):
    argv = ["trajectories", str(demo_run), "--trajectories", "line", "-s", "12", "--phase", "random"]
    assert main(argv + ["--out", str(tmp_path / "prior")]) == 0
    assert main(argv + ["--out", str(tmp_path / "data"), "--spread-from", str(sounds["root"] / "folder" / "sub"),
                        str(sounds["tone"])]) == 0
    manifest = json.loads((tmp_path / "data" / "trajectories" / "manifest.json").read_text())
    spread = manifest["files"]["line_0"]["spread"]
    mean, std = np.array(spread["mean"]), np.array(spread["std"])
    assert mean.shape == (latent_dim_of(demo_run),) and (std > 0).all()
    prior = np.load(tmp_path / "prior" / "trajectories" / "line_0.npy")
    mapped = np.load(tmp_path / "data" / "trajectories" / "line_0.npy")
    np.testing.assert_allclose(mapped, mean + std * prior, rtol=1e-5, atol=1e-5)


def test_unknown_trajectory_is_a_clear_error(demo_run, tmp_path, capsys):
    assert main(["trajectories", str(demo_run), "--trajectories", "sin", "spiral", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'spiral'" in err and "circle" in err and "interpolate" in err and "Traceback" not in err
    assert not (tmp_path / "trajectories").exists()


def test_interpolate_between_two_files(demo_run, sounds, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["trajectories", str(demo_run), "--trajectories", "interpolate", "--files", str(sounds["tone"]),
                 str(sounds["chirp"]), "-s", "30", "-b", "2", "--out", str(out), "--phase", "pghi"]) == 0
    folder = out / "trajectories"
    first, second = np.load(folder / "interpolate_0.npy"), np.load(folder / "interpolate_1.npy")
    assert first.shape == (30, latent_dim_of(demo_run)) and not np.array_equal(first, second)
    assert len(read(folder / "interpolate_0.wav")[0]) == 30 * DEMO_HOP
    assert main(["trajectories", str(demo_run), "--trajectories", "interpolate", "--files", str(sounds["tone"]),
                 "--out", str(out)]) == 2
    assert "exactly two" in capsys.readouterr().err


def test_decoder_conditioned_trajectories_use_seeded_default_labels(pitch_runs, tmp_path):
    argv = ["trajectories", str(pitch_runs["decoder"]), "--trajectories", "sin", "-b", "3", "-s", "16",
            "--phase", "random"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "trajectories" / "manifest.json").read_text())
    drawn = [manifest["files"][f"sin_{i}"]["labels"] for i in range(3)]
    for labels in drawn:
        assert 0 <= labels["pitch"] < 12 and 0 <= labels["octave"] < 11
    assert main(argv + ["--out", str(tmp_path / "b"), "--labels", "pitch=C#", "octave=3"]) == 0
    # same labels by id give the same sound (pitch C# is id 1, octave 3 is id 4); flats name the same class
    assert main(argv + ["--out", str(tmp_path / "c"), "--labels", "pitch=id:1", "octave=id:4"]) == 0
    assert main(argv + ["--out", str(tmp_path / "d"), "--labels", "pitch=Db", "octave=3"]) == 0
    assert ((tmp_path / "b" / "trajectories" / "sin_0.wav").read_bytes()
            == (tmp_path / "c" / "trajectories" / "sin_0.wav").read_bytes()
            == (tmp_path / "d" / "trajectories" / "sin_0.wav").read_bytes())
    manifest = json.loads((tmp_path / "b" / "trajectories" / "manifest.json").read_text())
    assert all(entry["labels"] == {"pitch": 1, "octave": 4} for entry in manifest["files"].values())


def test_conditioned_trajectory_plots_show_their_labels(pitch_runs, tmp_path, monkeypatch):
    from vschaos.generation import synthesis

    titles = {}
    real_plot = synthesis.plot_latents_and_spectrogram

    def recording_plot(path, *args, title=None, **kwargs):
        titles[Path(path).stem] = title
        return real_plot(path, *args, title=title, **kwargs)

    monkeypatch.setattr(synthesis, "plot_latents_and_spectrogram", recording_plot)
    argv = ["trajectories", "--trajectories", "sin", "-s", "16", "--phase", "random"]
    assert main([argv[0], str(pitch_runs["decoder"]), *argv[1:], "--out", str(tmp_path / "a"),
                 "--labels", "pitch=C#", "octave=3"]) == 0
    assert titles["sin_0"] == "sin_0 (seed 0) pitch=C# (1), octave=3 (4)"  # class names (ids) from classes.txt
    assert main([argv[0], str(pitch_runs["predicted"]), *argv[1:], "--out", str(tmp_path / "b")]) == 0
    assert titles["sin_0"].startswith("sin_0 (seed 0) pitch=")  # predicted labels are named too
    assert "pitch=" not in synthesis.labels_title({}) and synthesis.labels_title({"pitch": [1, 2]}) == "pitch=predicted"


# ----------------------------------------------------------------------------- a really trained run

@pytest.mark.slow
def test_generate_from_a_trained_demo_run(dataset, tmp_path, capsys):
    """One epoch of the real demo preset through train_model's entry point, then both commands."""
    from vschaos.cli.train import main as train_main

    assert train_main(["--config-name", "demo", "name=demo", f"rundir={tmp_path / 'runs'}",
                       f"data.dataset.root={dataset}", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
                       "callbacks.progress.refresh_rate=1000"]) == 0
    run = tmp_path / "runs" / "demo"
    out = tmp_path / "gen"
    assert main(["reconstruct", str(run), "--files", str(dataset / "data"), "--out", str(out), "-n", "best",
                 "-v", "0", "--phase", "pghi"]) == 0
    rows = metrics_rows(out)
    assert len(rows) == len(list((dataset / "data").rglob("*.wav")))
    for row in rows:
        source = dataset / "data" / row["output"]
        assert len(read(out / "reconstructions" / row["output"])[0]) == sf.info(str(source)).frames
        assert math.isfinite(float(row["spectral_convergence"]))
    assert main(["trajectories", str(run), "--trajectories", "sin", "circle", "-b", "1", "-s", "64",
                 "--out", str(out)]) == 0
    assert len(read(out / "trajectories" / "circle_0.wav")[0]) == 64 * DEMO_HOP
