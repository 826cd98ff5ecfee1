"""A source-filter model's forward keeps the input's voicing: a periodic input it never heard (a sawtooth, a voice)
comes out periodic at its measured pitch, in a timbre of the model, instead of the noise (or the lone high partial)
an out-of-distribution latent decodes to. ``voicing`` attribute: ``follow`` (default) or ``model``."""
import math

import pytest
import torch

from vschaos.cli.train import compose_config
from vschaos.export.export import script_model
from vschaos.training.run import build_model

F0 = 220.0


def harmonic_vae_answering(gain_bias: float, noise_bias: float, strongest_partial: int = 0):
    """An untrained dgt_harmonic whose decoder answers every latent alike: its partials' total log-amplitude and
    its noise bands' at these biases, the partial ``strongest_partial`` (1-based; 0: none) the strongest of
    their distribution."""
    torch.manual_seed(0)
    vae = build_model(compose_config("dgt_harmonic", [])).eval()
    decoder = vae.decoder
    with torch.no_grad():
        last = decoder.mlp.net[-1]
        last.weight.mul_(0.01)
        last.bias[0] = gain_bias
        last.bias[1:1 + decoder.n_harmonics] = 0.0
        if strongest_partial:
            last.bias[strongest_partial] = 3.0
        last.bias[1 + decoder.n_harmonics:] = noise_bias
    vae.fit_typical_timbre()
    return vae


@pytest.fixture(scope="module")
def noisy_harmonic_vae():
    """A decoder that answers everything with noise: partials at the floor, noise bands loud, the second partial
    the strongest of the typical timbre (what a trained model does with a sound unlike its training set)."""
    return harmonic_vae_answering(-30.0, -3.0, strongest_partial=2)


@pytest.fixture(scope="module")
def silent_harmonic_vae():
    """A decoder that answers everything with silence: partials and noise at their floor (what a trained model
    may do with a pitch far above its training set's)."""
    return harmonic_vae_answering(-100.0, -100.0)


def decoder_inputs_at_f0(vae, n: int) -> torch.Tensor:
    """The decoder's input for ``n`` frames at the mean latent and the pitch F0."""
    z = torch.zeros(n, vae.latent_dim)
    z[:, 0] = vae.pitch_coordinate.coordinate(torch.full((n,), F0))
    return vae._decoder_input(z, {})


def played(vae, scripted, audio: torch.Tensor):
    """``audio`` (samples,) streamed through ``scripted.forward`` at B = 2048 from a reset, its steady middle
    against the input's: (level error in dB, median voicing at F0)."""
    delay = int(scripted.forward_delay[0])
    x = torch.cat([audio[None, None], torch.zeros(1, 1, 8192)], dim=-1)
    x = x[..., : x.shape[-1] // 2048 * 2048]
    scripted.reset()
    with torch.no_grad():
        out = torch.cat([scripted.forward(x[..., i:i + 2048]) for i in range(0, x.shape[-1], 2048)], -1)
    out = out[0, 0, delay + 4096: delay + audio.shape[-1] - 4096]
    reference = audio[4096: audio.shape[-1] - 4096]
    level_db = 20 * math.log10(float(out.pow(2).mean().sqrt()) / float(reference.pow(2).mean().sqrt()) + 1e-30)
    magnitude = vae.transform.magnitude(out[None])[0]
    return level_db, float(vae.decoder.voicing(magnitude, torch.full((magnitude.shape[0],), F0)).median())


def sawtooth(rate: int, seconds: float = 1.5, f0: float = F0) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    k = torch.arange(1, int(rate / 2 / f0) + 1, dtype=torch.float64)
    return (0.1 * (torch.sin(2 * math.pi * f0 * t[:, None] * k) / k).sum(-1)).float()


def test_voicing_reads_one_for_partials_and_zero_for_noise(noisy_harmonic_vae):
    decoder, rate = noisy_harmonic_vae.decoder, noisy_harmonic_vae.transform.sample_rate
    generator = torch.Generator().manual_seed(0)
    f0 = torch.full((4,), F0)
    partials = decoder.comb(f0, torch.rand(4, decoder.n_harmonics, generator=generator) / decoder.n_harmonics)
    noise = torch.rand(4, decoder.n_bins, generator=generator)
    assert decoder.voicing(partials, f0).min() > 0.9
    assert decoder.voicing(noise, f0).max() < 0.15
    # the same frames read at a wrong f0 (a fifth off) are not voiced there
    assert decoder.voicing(partials, f0 * 1.5).max() < 0.5
    magnitude = noisy_harmonic_vae.transform.magnitude(sawtooth(rate)[None])[0]
    assert float(decoder.voicing(magnitude, torch.full((magnitude.shape[0],), F0))[4:-4].median()) > 0.9


def test_voiced_keeps_the_asked_share_in_partials_at_the_f0_and_the_frames_energy(noisy_harmonic_vae):
    vae = noisy_harmonic_vae
    decoder = vae.decoder
    voicing = torch.tensor([0.0, 0.5, 0.9])
    with torch.no_grad():
        h = decoder_inputs_at_f0(vae, 3)
        plain, voiced = decoder(h), decoder.voiced(h, voicing)
    f0 = torch.full((3,), F0)
    assert float(decoder.voicing(plain, f0).max()) < 0.05  # the decoder alone: noise
    assert float(decoder.voicing(voiced[0:1], f0[:1])) < 0.05  # voicing 0 asks for nothing
    torch.testing.assert_close(voiced[0], plain[0], rtol=1e-5, atol=1e-9)
    assert float(decoder.voicing(voiced[2:3], f0[:1])) > 0.75
    torch.testing.assert_close(voiced.pow(2).sum(-1), plain.pow(2).sum(-1), rtol=1e-4, atol=0.0)  # energy kept
    # the added partials are distributed as the typical timbre at that f0: its strongest partial is strongest
    row = int(round(12 * math.log2(F0 / decoder.typical_fmin)))
    strongest = int(decoder.typical_weights[row].argmax()) + 1
    assert strongest == 2
    bin_of = lambda k: int(round(k * F0 / decoder.bin_hz))
    peaks = {k: float(voiced[2, bin_of(k)]) for k in range(1, 9)}
    assert max(peaks, key=peaks.get) == strongest


def test_forward_follows_the_voicing_of_a_sawtooth_and_model_does_not(noisy_harmonic_vae):
    # the phase rebuilt from the magnitudes: the input's own phase (a source-filter model's default) would make even
    # the decoder's noise periodic, and this is about the magnitudes
    scripted = script_model(noisy_harmonic_vae, phase="pghi")
    audio = sawtooth(scripted.sample_rate)
    assert scripted.get_voicing() == ("follow",)
    assert played(noisy_harmonic_vae, scripted, audio)[1] > 0.8
    assert scripted.set_voicing("model") == 0
    assert played(noisy_harmonic_vae, scripted, audio)[1] < 0.2


def test_set_voicing_refuses_another_value_and_a_model_without_a_pitch_latent(noisy_harmonic_vae):
    scripted = script_model(noisy_harmonic_vae)
    assert scripted.set_voicing("loud") == -1 and scripted.get_voicing() == ("follow",)
    torch.manual_seed(0)
    plain = script_model(build_model(compose_config("demo", [])).eval())
    assert plain.set_voicing("model") == -1
    assert "voicing" not in plain.get_attributes() and "voicing" in scripted.get_attributes()


def test_voiced_holds_its_share_of_the_energy_floor_and_is_unchanged_above_it(noisy_harmonic_vae):
    vae = noisy_harmonic_vae
    decoder = vae.decoder
    voicing = torch.tensor([0.0, 0.5, 0.9])
    with torch.no_grad():
        h = decoder_inputs_at_f0(vae, 3)
        plain, without = decoder(h), decoder.voiced(h, voicing)
        energy = plain.pow(2).sum(-1, keepdim=True)
        # a floor under the decoder's energy changes no bit; one above it lifts the frame to voicing * floor
        assert torch.equal(decoder.voiced(h, voicing, 0.5 * energy), without)
        lifted = decoder.voiced(h, voicing, 1e4 * energy)
        energy = energy[:, 0]
    torch.testing.assert_close(lifted[0], plain[0])  # voicing 0: nothing to lift
    torch.testing.assert_close(lifted[1:].pow(2).sum(-1), voicing[1:] * 1e4 * energy[1:], rtol=1e-4, atol=0.0)
    assert float(decoder.voicing(lifted[2:3], torch.full((1,), F0))) > 0.9


def test_forward_plays_a_sawtooth_the_decoder_leaves_silent_at_its_level_and_pitch(silent_harmonic_vae):
    # level follow raises a frame by 40 dB at most: without the energy floor this decoder (partials and noise at
    # -260 dB) stayed silent whatever the voicing, as a trained model did above ~480 Hz on a sawtooth glide
    scripted = script_model(silent_harmonic_vae)
    audio = sawtooth(scripted.sample_rate)
    level_db, voicing = played(silent_harmonic_vae, scripted, audio)
    assert abs(level_db) < 1.0 and voicing > 0.8, (level_db, voicing)
    assert scripted.set_voicing("model") == 0
    assert played(silent_harmonic_vae, scripted, audio)[0] < -100.0  # its own silence, raised by 40 dB at most
