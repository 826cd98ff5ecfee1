"""SpectralVAE, its components and losses on tiny synthetic tensors."""
import pytest
import torch

from vschaos.dsp.transforms import SpectralTransform
from vschaos.models.components.decoders import SpectralDecoder
from vschaos.models.components.embeddings import LearnedEmbedding, OneHotEmbedding
from vschaos.models.components.encoders import SpectralEncoder
from vschaos.models.lightning import SpectralVAEModule
from vschaos.models.losses import SpectralVAELoss, kl_divergence, log_magnitude_l1, spectral_convergence
from vschaos.models.vae import ConfigurationError, SpectralVAE

N_FFT, HOP = 64, 16  # 33 bins: tiny and fast
TINY = {"encoder": {"channels": [4, 8], "kernel_size": 5, "stride": 2, "hidden_dims": 32, "nlayers": 1},
        "decoder": {"channels": [], "hidden_dims": 32, "nlayers": 1}}
PITCH_COND = {"pitch": {"dim": 12, "target": ["decoder"], "embedding": "OneHot"},
              "octave": {"dim": 11, "target": ["decoder"], "embedding": "Embedding", "embedding_dim": 4}}
PITCH_PRED = {"pitch": {"dim": 12, "type": "MLPEncoder", "args": {"nlayers": 1, "hidden_dims": 16,
                                                                    "target_dist": "Categorical"}}}


def tiny_vae(conditioning=None, prediction=None, latent_dim: int = 4, **overrides) -> SpectralVAE:
    kwargs = {**TINY, **overrides}
    return SpectralVAE(SpectralTransform(8000, N_FFT, HOP), latent_dim, conditioning=conditioning,
                       prediction=prediction, **kwargs)


def tiny_module(vae: SpectralVAE, lr: float = 3e-3) -> SpectralVAEModule:
    return SpectralVAEModule(vae, optimizer=lambda params: torch.optim.Adam(params, lr=lr),
                             loss=SpectralVAELoss(beta=1e-3, beta_warmup_steps=0))


def test_shapes_and_posterior():
    torch.manual_seed(0)
    vae = tiny_vae()
    features = torch.randn(5, vae.n_bins)
    mean, std = vae.encode(features, {})
    assert mean.shape == std.shape == (5, 4)
    assert bool((std > 0).all())
    assert vae.decode(mean, {}).shape == (5, vae.n_bins)


@pytest.mark.parametrize("n_bins", [33, 513, 1025, 100])
def test_conv_decoder_reaches_exact_bin_count(n_bins):
    decoder = SpectralDecoder(6, n_bins, channels=[8, 4, 2], kernel_size=7, stride=4, hidden_dims=16, nlayers=1)
    assert decoder(torch.randn(3, 6)).shape == (3, n_bins)
    encoder = SpectralEncoder(n_bins, 10, channels=[4, 8], kernel_size=7, stride=4, hidden_dims=16, nlayers=1)
    assert encoder(torch.randn(3, n_bins), torch.zeros(3, 0)).shape == (3, 10)


def test_embeddings_treat_minus_one_as_zeros():
    labels = torch.tensor([2, -1, 0])
    onehot = OneHotEmbedding(4)(labels)
    assert onehot.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    learned = LearnedEmbedding(4, 3)(labels)
    assert torch.equal(learned[1], torch.zeros(3)) and learned[0].abs().sum() > 0


def test_conditioning_follows_config_order():
    conditioning = {"zeta": {"dim": 3, "target": ["encoder", "decoder"]}, "alpha": {"dim": 2, "target": ["decoder"]},
                    "mid": {"dim": 4, "target": ["encoder"]}}
    vae = tiny_vae(conditioning)
    assert vae.decoder_tasks == ["zeta", "alpha"]
    assert vae.encoder_tasks == ["zeta", "mid"]
    seen = []
    first_linear = vae.decoder.mlp.net[0]
    first_linear.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    z = torch.zeros(1, 4)
    vae.decode(z, {"alpha": torch.tensor([1]), "zeta": torch.tensor([2])})
    # decoder input = [z (4) | zeta one-hot (3) | alpha one-hot (2)], whatever the dict order of the labels
    assert seen[0][0].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 1]


def test_decoder_conditioning_changes_output():
    torch.manual_seed(0)
    vae = tiny_vae(PITCH_COND)
    z = torch.randn(2, 4)
    low = vae.decode(z, {"pitch": torch.tensor([0, 0]), "octave": torch.tensor([3, 3])})
    high = vae.decode(z, {"pitch": torch.tensor([7, 7]), "octave": torch.tensor([3, 3])})
    assert (low - high).abs().max() > 1e-4
    # absent task == all labels missing == zero embedding
    assert torch.allclose(vae.decode(z, {}), vae.decode(z, {"pitch": torch.tensor([-1, -1]),
                                                            "octave": torch.tensor([-1, -1])}))


def test_missing_decoder_labels_use_the_predictor():
    torch.manual_seed(0)
    vae = tiny_vae(PITCH_COND, PITCH_PRED)
    z = torch.randn(6, 4)
    guess = vae.predict(z)["pitch"].argmax(-1)
    labels = {"pitch": torch.tensor([-1, 3, -1, 5, -1, -1])}
    completed = vae.complete_labels(z, labels)["pitch"]
    assert completed.tolist() == [g if l < 0 else l for g, l in zip(guess.tolist(), labels["pitch"].tolist())]
    assert torch.allclose(vae.decode(z, labels), vae.decode(z, {"pitch": completed}))


def test_predicting_an_encoder_conditioned_task_is_rejected():
    conditioning = {"pitch": {"dim": 12, "target": ["encoder", "decoder"]}}
    with pytest.raises(ConfigurationError, match="pitch.*conditions the encoder"):
        tiny_vae(conditioning, PITCH_PRED)


def test_predictor_loss_gives_zero_gradient_to_the_encoder():
    torch.manual_seed(0)
    vae = tiny_vae(PITCH_COND, PITCH_PRED)
    module = tiny_module(vae)
    batch = {"magnitude": torch.rand(16, vae.n_bins), "labels": {"pitch": torch.randint(0, 12, (16,))}}
    terms = module._shared_step(batch, sample=True)
    terms["prediction/pitch"].backward()
    encoder_grads = [p.grad for p in vae.encoder.parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in encoder_grads)
    predictor_grads = [p.grad for p in vae.predictors["pitch"].parameters()]
    assert all(g is not None for g in predictor_grads) and any(g.abs().sum() > 0 for g in predictor_grads)


def test_predictor_learns_a_separable_task():
    """Class k makes bin block k loud: the latent separates the classes and the predictor reads them."""
    torch.manual_seed(0)
    n_classes = 4
    vae = tiny_vae(prediction={"task": {"dim": n_classes, "args": {"nlayers": 1, "hidden_dims": 32}}})
    module = tiny_module(vae, lr=1e-2)
    optimiser = module.configure_optimizers()

    def batch(n: int):
        labels = torch.randint(0, n_classes, (n,))
        magnitude = 0.05 * torch.rand(n, vae.n_bins)
        for k in range(n_classes):
            magnitude[labels == k, 2 + 7 * k: 8 + 7 * k] += 5.0
        labels_with_missing = labels.clone()
        labels_with_missing[::5] = -1  # unlabelled frames are ignored by the cross-entropy
        return {"magnitude": magnitude, "labels": {"task": labels_with_missing}}, labels

    for _ in range(150):
        train_batch, _ = batch(64)
        optimiser.zero_grad()
        module._shared_step(train_batch, sample=True)["loss"].backward()
        optimiser.step()
    test_batch, truth = batch(400)
    with torch.no_grad():
        mean, _ = vae.encode(vae.transform.to_features(test_batch["magnitude"]), {})
        accuracy = (vae.predict(mean)["task"].argmax(-1) == truth).float().mean()
    assert accuracy > 0.9


def test_scripted_vae_keeps_the_task_lists_in_config_order():
    # scripted outputs equal eager ones: tests/test_properties.py; here the attributes nn~ reads
    conditioning = {**PITCH_COND, "style": {"dim": 3, "target": ["encoder"]}}
    scripted = torch.jit.script(tiny_vae(conditioning, PITCH_PRED).eval())
    assert scripted.decoder_tasks == ["pitch", "octave"] and scripted.predicted_tasks == ["pitch"]
    assert scripted.encoder_tasks == ["style"] and scripted.latent_dim == 4


def test_spectral_convergence_is_normalised_by_the_target():
    target = torch.rand(8, 33) + 0.1
    assert torch.isclose(spectral_convergence(target, torch.zeros_like(target)), torch.tensor(1.0))
    assert torch.isclose(spectral_convergence(target, 3 * target), torch.tensor(2.0))  # not by the estimate
    assert spectral_convergence(target, target) == 0
    assert log_magnitude_l1(target, target) == 0
    assert torch.isclose(log_magnitude_l1(target, target * 2.0, eps=0.0), torch.log(torch.tensor(2.0)))


def test_kl_free_bits_and_beta_warmup():
    mean, std = torch.zeros(4, 3), torch.ones(4, 3)
    assert kl_divergence(mean, std) == 0
    assert torch.isclose(kl_divergence(mean, std, free_bits=0.5), torch.tensor(1.5))  # hinge per dimension
    shifted = torch.full((4, 3), 2.0)
    assert torch.isclose(kl_divergence(shifted, std), torch.tensor(3 * 2.0))  # 0.5 * mean^2 per dim
    loss = SpectralVAELoss(beta=0.1, beta_warmup_steps=100)
    assert loss.beta_at(0) == 0 and loss.beta_at(50) == pytest.approx(0.05) and loss.beta_at(500) == pytest.approx(0.1)


def _forbid_host_reads(monkeypatch):
    """Make every tensor -> Python conversion raise: each one is a device->host sync on a GPU."""
    def refuse(*args, **kwargs):
        raise AssertionError("tensor read on the host inside a step")

    for name in ("item", "tolist", "__int__", "__float__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


def test_steps_keep_counts_on_the_device_and_the_epoch_end_reads_them_once(monkeypatch):
    torch.manual_seed(0)
    vae = tiny_vae(PITCH_COND, PITCH_PRED)
    module = tiny_module(vae)
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, value))
    pitch = torch.randint(0, 12, (2, 8))
    pitch[0, :3] = -1  # missing labels are neither counted nor scored
    pitch[1, :] = -1   # a batch without any label: zero loss, no NaN, no host check of the count
    batches = [{"magnitude": torch.rand(8, vae.n_bins) + 0.1, "labels": {"pitch": pitch[i]}} for i in range(2)]
    module.on_validation_epoch_start()
    with monkeypatch.context() as strict:
        _forbid_host_reads(strict)
        train_terms = module._shared_step(batches[1], sample=True)
        outputs = [module.validation_step(batch, i) for i, batch in enumerate(batches)]
    assert torch.isfinite(train_terms["loss"]) and train_terms["prediction/pitch"] == 0
    assert all(torch.isfinite(out) for out in outputs)
    module.on_validation_epoch_end()
    # reference: the whole validation set at once, computed eagerly
    with torch.no_grad():
        magnitude = torch.cat([b["magnitude"] for b in batches])
        decoded, z, _, _ = vae(vae.transform.to_features(magnitude), {"pitch": pitch.flatten()}, sample=False)
        estimate = vae.transform.from_features(decoded)
        predicted = vae.predict(z)["pitch"].argmax(-1)
    known = pitch.flatten() >= 0
    assert logged["val/spectral_convergence"] == pytest.approx(
        float(((magnitude - estimate) ** 2).sum().sqrt() / (magnitude ** 2).sum().sqrt()), rel=1e-5)
    assert logged["val/accuracy/pitch"] == pytest.approx(float((predicted[known] == pitch.flatten()[known]).float().mean()))
