"""A pitch latent read from a longer window than the model's frames (``transform.pitch_window``, the dgt_live
preset): the window's alignment, the f0s the cache stores and batches carry, encode, augmentation and streaming."""
import math
import warnings

import numpy as np
import pytest
import torch

from vschaos.cli.train import compose_config
from vschaos.data.audio import load_audio
from vschaos.data.cache import load_or_build_cache
from vschaos.data.dataset import load_index
from vschaos.dsp.f0 import HarmonicF0, window_f0
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export.export import script_model
from vschaos.models.augment import augment_batch
from vschaos.training.fit import build_objects
from vschaos.training.run import build_model

SR = 44100


def live_transform(**kwargs) -> SpectralTransform:
    return SpectralTransform(sample_rate=SR, n_fft=512, hop=128, pitch_window=2048, **kwargs)


def live_vae():
    torch.manual_seed(0)
    return build_model(compose_config("dgt_live", ["model.encoder.hidden_dims=32",
                                                   "model.decoder.hidden_dims=32"])).eval()


def test_a_pitch_frame_ends_where_the_frame_of_the_same_index_ends():
    transform = live_transform()
    for t in (0, 300, 1000, 2047, 2500):
        audio = torch.zeros(1, 4096)
        audio[0, t] = 1.0
        short, long = transform.magnitude(audio)[0], transform.pitch_magnitude(audio)[0]
        assert short.shape[0] == long.shape[0] == transform.num_frames(4096)
        assert long.shape[1] == transform.pitch_bins == 1025
        # the first frame that holds the impulse is the first whose end (j + 1) * hop lies past it, in both
        first = [int(torch.nonzero(m.amax(dim=1) > 1e-30)[0]) for m in (short, long)]
        assert first == [t // 128, t // 128]
        # the pitch window reaches 2048 samples back from that end, the frame 512
        last = [int(torch.nonzero(m.amax(dim=1) > 1e-30)[-1]) for m in (short, long)]
        assert last == [min(t // 128 + 3, short.shape[0] - 1), min(t // 128 + 15, short.shape[0] - 1)]


def test_without_a_pitch_window_the_pitch_frames_are_the_frames_and_bad_windows_are_refused():
    transform = SpectralTransform(sample_rate=SR, n_fft=512, hop=128)
    audio = torch.randn(2, 3000, generator=torch.Generator().manual_seed(0))
    assert transform.pitch_bins == transform.n_bins and transform.pitch_window == 0
    assert torch.equal(transform.pitch_magnitude(audio), transform.magnitude(audio))
    for bad in (512, 256, 2000, 2050, 2 ** 17, None, True, "2048", float("inf"), float("nan")):
        with pytest.raises(ValueError, match="pitch_window must be 0 or an even multiple of hop"):
            SpectralTransform(sample_rate=SR, n_fft=512, hop=128, pitch_window=bad)
    # derived from the config, not stored: a checkpoint of a transform without one loads into either
    assert set(live_transform().state_dict()) == set(transform.state_dict())


def test_the_pitch_window_reads_low_notes_the_frames_cannot(synth):
    transform = live_transform()
    audio = torch.from_numpy(synth.harmonic_tone(110.0, 1.0, SR))[None]
    steady = slice(20, -20)
    from_window = HarmonicF0(2048, SR)(transform.pitch_magnitude(audio)[0])[steady]
    from_frames = HarmonicF0(512, SR)(transform.magnitude(audio)[0])[steady]
    cents = lambda f0: 1200 * torch.log2(f0 / 110.0).abs()  # noqa: E731
    assert float((cents(from_window) < 50).float().mean()) == 1.0
    assert float((cents(from_frames) < 50).float().mean()) < 0.5  # 110 Hz partials share a 512-point lobe


def test_the_cache_stores_each_frames_f0_and_batches_carry_it(tmp_path, synth):
    root = tmp_path / "ds"
    for i, freq in enumerate((110.0, 165.0, 247.0)):
        synth.write_wav(root / f"data/n{i}.wav", synth.harmonic_tone(freq, 0.6 + 0.2 * i, SR), SR)
    transform, tracker = live_transform(), HarmonicF0(2048, SR)
    files = load_index(root).files
    plain = load_or_build_cache(transform, files, root, progress=False)
    cache = load_or_build_cache(transform, files, root, progress=False, pitch_tracker=tracker)
    assert plain.f0 is None and cache.built and cache.directory != plain.directory
    for i, f in enumerate(files):
        audio = load_audio(f.path, SR)
        expected = tracker(transform.pitch_magnitude(audio[None])[0])
        stored = cache.f0[cache.offsets[i]:cache.offsets[i + 1]]
        np.testing.assert_allclose(stored, expected.numpy(), rtol=1e-6)
        np.testing.assert_allclose(stored, window_f0(transform, tracker, audio, chunk_frames=7).numpy(), rtol=1e-6)
    again = load_or_build_cache(transform, files, root, progress=False, pitch_tracker=tracker)
    assert not again.built and np.array_equal(again.f0, cache.f0)
    # another tracker range is another cache
    other = load_or_build_cache(transform, files, root, progress=False, pitch_tracker=HarmonicF0(2048, SR, fmin=60.0))
    assert other.built and other.directory != cache.directory
    # damage to f0.npy is caught and the cache rebuilt
    path = cache.directory / "f0.npy"
    data = bytearray(path.read_bytes())
    data[-4:] = np.float32(-1.0).tobytes()
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="f0.npy: fails its checksum"):
        rebuilt = load_or_build_cache(transform, files, root, progress=False, pitch_tracker=tracker)
    assert rebuilt.built and np.array_equal(rebuilt.f0, cache.f0)


def test_a_dgt_live_training_batch_carries_the_f0_of_its_frames(tmp_path, synth):
    root = tmp_path / "ds"
    for i, freq in enumerate((110.0, 220.0, 330.0, 440.0)):
        synth.write_wav(root / f"data/n{i}.wav", synth.harmonic_tone(freq, 0.5, SR), SR)
    cfg = compose_config("dgt_live", [f"data.dataset.root={root}", "data.batch_size=4096", "data.val_fraction=0.25",
                                      "model.encoder.hidden_dims=32", "model.decoder.hidden_dims=32"])
    vae, datamodule, _ = build_objects(cfg)
    assert vae.pitch_from_window and datamodule.pitch_tracker is vae.window_pitch_tracker()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["f0"].shape == (batch["magnitude"].shape[0],)
    # the loudest frames are the notes' steady parts: their f0s are the notes'
    loud = batch["magnitude"].sum(dim=1) > 0.5 * batch["magnitude"].sum(dim=1).max()
    nearest = torch.tensor([110.0, 220.0, 330.0, 440.0])[
        (batch["f0"][loud, None] / torch.tensor([110.0, 220.0, 330.0, 440.0])).log2().abs().argmin(dim=1)]
    assert float((1200 * (batch["f0"][loud] / nearest).log2().abs() < 20).float().mean()) > 0.95


def test_encode_reads_the_f0_it_is_given_and_refuses_to_guess():
    vae = live_vae()
    features = torch.randn(5, vae.n_bins, generator=torch.Generator().manual_seed(0))
    f0 = torch.tensor([55.0, 110.0, 220.0, 440.0, 880.0])
    mean, std = vae.encode(features, {}, f0)
    assert torch.allclose(mean[:, 0], vae.pitch_coordinate.coordinate(f0))
    with pytest.raises(ValueError, match="reads its f0 from the transform's pitch window: pass f0_hz"):
        vae.encode(features, {})
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    assert vae.audio_f0(audio).shape == (2, vae.transform.num_frames(4000))
    assert build_model(compose_config("dgt_harmonic", [])).audio_f0(audio) is None


def test_augmentation_moves_a_batchs_f0_with_its_frames():
    magnitude = torch.rand(64, 257, generator=torch.Generator().manual_seed(0))
    f0 = torch.full((64,), 200.0)
    batch = {"magnitude": magnitude, "labels": {}, "f0": f0}
    moved = augment_batch(batch, 0, 2.0, 0.0, 0.0, generator=torch.Generator().manual_seed(3))
    shifts = (torch.rand(64, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 2.0  # the same draws
    assert torch.allclose(moved["f0"], 200.0 * torch.pow(2.0, shifts / 12.0))
    assert torch.equal(batch["f0"], f0)  # the caller's batch is left alone
    notes = augment_batch(batch, 3, 0.0, 0.0, 0.0, generator=torch.Generator().manual_seed(4))
    semitones = 12 * torch.log2(notes["f0"] / 200.0)
    assert torch.allclose(semitones, semitones.round(), atol=1e-4) and semitones.abs().max() <= 3 + 1e-4
    assert float(semitones.abs().max()) > 0


def test_streamed_f0s_equal_the_offline_ones_at_any_buffer(synth):
    vae = live_vae()
    audio = torch.from_numpy(np.concatenate([synth.harmonic_tone(f, 0.3, SR) for f in (98.0, 147.0, 392.0)]))
    audio = audio[: (audio.shape[0] // 1024) * 1024]
    offline = vae.audio_f0(audio[None])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = script_model(vae)
    for buffer in (128, 1024):
        module.reset()
        streamed = torch.cat([module.pitch_in(audio[None, None, i:i + buffer])
                              for i in range(0, audio.shape[0], buffer)])
        # streamed frame j ends at (j + 1) * hop, as offline frame j does
        assert torch.allclose(streamed, offline[: streamed.shape[0]], rtol=1e-4)
    module.reset()
    latents = module.encode(audio[None, None])[0, 0]
    assert torch.allclose(latents, vae.pitch_coordinate.coordinate(offline[: latents.shape[0]]), atol=1e-4)
    # each note lasts 103 frames; the pitch window's centre lies 768 samples (6 frames) before the frame's
    first, second = 1200 * torch.log2(offline[30:90] / 98.0).abs(), 1200 * torch.log2(offline[125:195] / 147.0).abs()
    assert math.isclose(float((first < 50).float().mean()), 1.0)
    assert math.isclose(float((second < 50).float().mean()), 1.0)


def test_a_pitch_window_model_refuses_an_input_pitch_shift_it_could_not_follow(tmp_path):
    cfg = compose_config("dgt_live", [f"data.dataset.root={tmp_path}",
                                      "+module.input_pitch_shift._target_=vschaos.models.pitch_shift.InputPitchShift"])
    with pytest.raises(Exception, match="module.input_pitch_shift cannot move the f0 a model reads from "
                                        "transform.pitch_window"):
        build_objects(cfg)
