"""The exported ``prior`` and ``generate`` methods of a run with a latent prior (export/prior.py), checked with our
host: streams equal at every buffer size for a seed, different for another, bounded temperature, batch rows and
reset, ordered latent axes, label-conditioned models, the host's verdict. The VAEs are presets with random (seeded)
weights and the priors random (seeded) GRUs: none of this depends on training.
"""
import dataclasses

import pytest
import torch

from vschaos.cli.train import compose_config
from vschaos.export.export import script_model, streaming_module
from vschaos.export.latent_axes import LatentAxes
from vschaos.export.prior import with_prior
from vschaos.host import verify_model
from vschaos.models.prior import LatentPrior, sample_latents
from vschaos.training.run import build_model

DEMO_RATE = 22050
DEMO_HOP = 256
SMALL_PITCH = ["transform=demo", "model=small"]  # the pitch presets on the demo front end, to stay fast


def _stream(method, x: torch.Tensor, step: int) -> torch.Tensor:
    return torch.cat([method(x[..., i:i + step]) for i in range(0, x.shape[-1], step)], dim=-1)


# ----------------------------------------------------------------------------- the export
@pytest.fixture(scope="module")
def random_prior(normalised_demo_vae):
    torch.manual_seed(3)
    prior = LatentPrior(normalised_demo_vae.latent_dim, hidden=16).eval()
    prior.set_normalisation(torch.randn(100, normalised_demo_vae.latent_dim) * 0.5)
    return prior


@pytest.fixture(scope="module")
def prior_export(normalised_demo_vae, random_prior):
    return script_model(normalised_demo_vae, prior=random_prior)


def _generated(model, method: str, buffer: int, seed: int, samples: int = 8192, temperature: float = 1.0,
               batch: int = 1):
    model.reset()
    assert model.set_seed(seed) == 0
    return _stream(getattr(model, method), torch.full((batch, 1, samples), temperature), buffer)


def test_export_has_prior_and_generate_only_with_a_prior(normalised_demo_vae, prior_export):
    assert prior_export.get_methods() == ["forward", "encode", "decode", "prior", "generate"]
    assert prior_export.prior_params.tolist() == [1, 1, normalised_demo_vae.latent_dim, DEMO_HOP]
    assert prior_export.generate_params.tolist() == [1, 1, 1, 1]
    assert "prior" not in script_model(normalised_demo_vae).get_methods()


def test_prior_stream_is_bit_identical_at_any_buffer_size(prior_export):
    streams = [_generated(prior_export, "prior", buffer, seed=5) for buffer in (256, 2048, 4096)]
    assert streams[0].shape == (1, prior_export.latent_dim, 8192 // DEMO_HOP)
    for other in streams[1:]:
        assert torch.equal(streams[0], other)
    assert bool(torch.isfinite(streams[0]).all())
    assert not torch.equal(streams[0], _generated(prior_export, "prior", 2048, seed=6))


def test_generate_is_the_same_stream_at_any_buffer_size(prior_export):
    streams = [_generated(prior_export, "generate", buffer, seed=5) for buffer in (256, 512, 2048, 4096)]
    assert streams[0].shape == (1, 1, 8192)
    assert bool(torch.isfinite(streams[0]).all()) and float(streams[0].abs().max()) > 0
    for other in streams[1:]:  # the same bits: decoded frames and the overlap-add's summation order alike
        assert torch.equal(other, streams[0])
    assert torch.equal(streams[1], _generated(prior_export, "generate", 2048, seed=5))
    other_seed = _generated(prior_export, "generate", 2048, seed=6)
    assert float((other_seed - streams[1]).abs().max()) > 1e-4


def test_temperature_inlet_zero_nan_and_negative_are_the_most_likely_path(prior_export):
    zero = _generated(prior_export, "prior", 2048, seed=1, temperature=0.0)
    assert torch.equal(zero, _generated(prior_export, "prior", 2048, seed=2, temperature=0.0))
    assert torch.equal(zero, _generated(prior_export, "prior", 2048, seed=1, temperature=-3.0))
    assert torch.equal(zero, _generated(prior_export, "prior", 2048, seed=1, temperature=float("nan")))
    hot = _generated(prior_export, "generate", 2048, seed=1, temperature=1e9)  # clamped to MAX_TEMPERATURE
    assert bool(torch.isfinite(hot).all())


def test_batch_rows_are_independent_streams_and_reset_restarts(prior_export):
    both = _generated(prior_export, "prior", 1024, seed=4, batch=2, samples=4096)
    assert not torch.equal(both[0], both[1])
    again = _generated(prior_export, "prior", 1024, seed=4, batch=2, samples=4096)
    assert torch.equal(both, again)


def test_offline_latents_are_the_exported_prior_stream(normalised_demo_vae, random_prior, prior_export):
    offline = sample_latents(random_prior, 32, temperature=0.7, seed=9)[0][0]
    streamed = _generated(prior_export, "prior", 512, seed=9, temperature=0.7)[0].T
    torch.testing.assert_close(streamed, offline, rtol=0, atol=1e-5)


def test_prior_outlets_follow_ordered_latent_axes(normalised_demo_vae, random_prior):
    identity = LatentAxes.identity(normalised_demo_vae.latent_dim, 0, "test")
    kept = dataclasses.replace(identity, kept=4)
    vae = streaming_module(normalised_demo_vae).vae  # a frozen float32 copy, as the export makes
    module = torch.jit.script(with_prior(vae, random_prior, torch.float32, axes=kept))
    assert module.prior_params.tolist() == [1, 1, 4, DEMO_HOP]
    out = _generated(module, "prior", 2048, seed=1, samples=2048)
    assert out.shape == (1, 4, 8)
    full = _generated(torch.jit.script(with_prior(vae, random_prior, torch.float32)), "prior", 2048, seed=1,
                      samples=2048)
    torch.testing.assert_close(out, full[:, :4], rtol=0, atol=1e-6)  # identity axes: the first four entries


def test_export_with_a_prior_verifies(prior_export):
    prior_export.reset()  # as save_verified does: the file holds no stream's state
    report = verify_model(prior_export, buffers=[256, 2048], batch_sizes=(1, 2), methods=["prior", "generate"])
    assert report.ok, report.format()
    text = report.format()
    assert "[generate] streaming" in text and "[prior] determinism" in text


def test_a_prior_of_another_latent_size_is_refused(normalised_demo_vae):
    with pytest.raises(ValueError, match="the prior models 3 latent entries"):
        with_prior(streaming_module(normalised_demo_vae).vae, LatentPrior(3), torch.float32)



@pytest.mark.slow
def test_ten_minutes_of_streamed_generate_stay_finite_and_never_silent(prior_export):
    """10 minutes of ``generate`` at B = 2048 (temperature 1): every sample finite and within the soft clip, and no
    2-second stretch silent (the demo model's output, random weights, is never silent offline either)."""
    from vschaos.dsp.bounds import OUTPUT_LIMIT

    prior_export.reset()
    prior_export.set_seed(0)
    block = torch.ones(1, 1, 2048)
    window = 2 * DEMO_RATE
    energies, pending = [], torch.zeros(0)
    for _ in range(10 * 60 * DEMO_RATE // 2048):
        out = prior_export.generate(block)[0, 0]
        assert bool(torch.isfinite(out).all()) and float(out.abs().max()) <= OUTPUT_LIMIT
        pending = torch.cat([pending, out])
        while pending.numel() >= window:
            energies.append(float(pending[:window].pow(2).mean()))
            pending = pending[window:]
    assert len(energies) >= 299
    assert min(energies) > 1e-12, min(energies)



# ----------------------------------------------------------------------------- models conditioned on labels

@pytest.fixture(scope="module")
def pitch_export():
    torch.manual_seed(0)
    vae = build_model(compose_config("dgt_pitch_cond", SMALL_PITCH)).eval()
    torch.manual_seed(1)
    dims = [int(vae.task_dims[t]) for t in vae.decoder_tasks]
    prior = LatentPrior(vae.latent_dim, hidden=16, label_dims=dims).eval()
    return vae, script_model(vae, prior=prior)


def test_a_conditioned_model_s_prior_draws_decoder_labels(pitch_export):
    vae, model = pitch_export
    n_dec = len(vae.decoder_tasks)
    assert n_dec == 2 and model.prior_params.tolist()[2] == vae.latent_dim + n_dec
    streams = [_generated(model, "prior", buffer, seed=2) for buffer in (256, 2048, 4096)]
    for other in streams[1:]:
        assert torch.equal(streams[0], other)
    for i, task in enumerate(vae.decoder_tasks):
        ids = streams[0][0, vae.latent_dim + i]
        assert torch.equal(ids, ids.round()) and 0 <= float(ids.min()) and float(ids.max()) < vae.task_dims[task]
    cold = [_generated(model, "prior", 2048, seed=s, temperature=0.0) for s in (1, 2)]
    assert torch.equal(cold[0], cold[1])  # temperature 0: the most likely classes, whatever the seed
    audio = [_generated(model, "generate", buffer, seed=2) for buffer in (256, 4096)]
    torch.testing.assert_close(audio[1], audio[0], rtol=0, atol=1e-6)
    model.reset()
    report = verify_model(model, buffers=[256, 2048], batch_sizes=(1,), methods=["prior", "generate"])
    assert report.ok, report.format()


def test_rotated_prior_outlets_are_the_same_bits_one_frame_per_call(normalised_demo_vae, random_prior):
    """With ordered axes the outlets go through one product per call; a call of one frame (the buffer = the hop)
    must round like a call of many, so the rows are padded (1-3 row float32 products round differently)."""
    vae = streaming_module(normalised_demo_vae).vae
    torch.manual_seed(2)
    rotation, _ = torch.linalg.qr(torch.randn(vae.latent_dim, vae.latent_dim))
    axes = LatentAxes(torch.randn(vae.latent_dim) * 0.3, rotation.T.contiguous(), torch.ones(vae.latent_dim),
                      torch.full((vae.latent_dim,), 1.0 / vae.latent_dim), 0, "test", kept=5)
    module = torch.jit.script(with_prior(vae, random_prior, torch.float32, axes=axes))
    streams = [_generated(module, "prior", buffer, seed=3, samples=4096) for buffer in (DEMO_HOP, 2 * DEMO_HOP, 4096)]
    assert streams[0].shape == (1, 5, 4096 // DEMO_HOP)
    for other in streams[1:]:
        assert torch.equal(other, streams[0])
    audio = [_generated(module, "generate", buffer, seed=3, samples=4096) for buffer in (DEMO_HOP, 4096)]
    assert torch.equal(audio[0], audio[1])


def test_a_mixture_prior_exports_streams_the_same_bits_and_verifies(normalised_demo_vae):
    """A prior of several Gaussians draws its component per frame from counter noise too: one frame per call
    or many give the same stream, and the host's checks pass."""
    torch.manual_seed(4)
    prior = LatentPrior(normalised_demo_vae.latent_dim, hidden=16, components=3).eval()
    prior.set_normalisation(torch.randn(100, normalised_demo_vae.latent_dim) * 0.5)
    module = script_model(normalised_demo_vae, prior=prior)
    streams = [_generated(module, "generate", buffer, seed=2, samples=4096) for buffer in (DEMO_HOP, 4096)]
    assert torch.equal(streams[0], streams[1]) and bool(torch.isfinite(streams[0]).all())
    offline = sample_latents(prior, 16, temperature=1.0, seed=2)[0][0]
    streamed = _generated(module, "prior", 1024, seed=2, samples=4096)[0].T
    torch.testing.assert_close(streamed, offline, rtol=0, atol=1e-5)
    module.reset()
    report = verify_model(module, buffers=[256, 2048], batch_sizes=(1,), methods=["prior", "generate"])
    assert report.ok, report.format()
