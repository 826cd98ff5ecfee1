"""Forward's ``level``: with ``follow`` (the default) each output frame carries the input frame's energy, so a model
that comes out quieter or louder than what is played into it is heard at the player's level; ``model`` keeps the
decoder's own. The same rule in the export (``features_out``) and offline (``generate.py reconstruct --level``)."""
import math
from typing import Dict, Optional

import pytest
import torch
from torch import Tensor

from tests.conftest import IdentitySpectralModel
from vschaos.dsp.functional import FOLLOW_MAX_GAIN, follow_level
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export.module import StreamingVAE
from vschaos.generation.errors import GenerationError
from vschaos.generation.reconstruct import reconstruct_audio

HALF = 0.5  # the test double's decoder: the input's spectrum at half its magnitude (-6.02 dB)


@pytest.fixture(scope="module")
def small_transform():
    return SpectralTransform(sample_rate=22050, n_fft=1024, hop=256)


class HalfLevelModel(IdentitySpectralModel):
    """The identity double whose decoder gives the input spectrum at half its magnitude: a model that loses 6 dB."""

    def decode(self, z: Tensor, labels: Dict[str, Tensor], logits: Optional[Dict[str, Tensor]] = None) -> Tensor:
        return self.transform.to_features(self.transform.from_features(z) * 0.5)  # HALF (no globals in TorchScript)


def _rms_db(output: Tensor, reference: Tensor) -> float:
    return 20.0 * math.log10(float(output.pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()))


def test_each_frame_gets_the_reference_frames_energy():
    generator = torch.Generator().manual_seed(0)
    magnitude = torch.rand(3, 5, 33, generator=generator)
    reference = 4.0 * torch.rand(3, 5, 33, generator=generator)
    out = follow_level(magnitude, reference)
    torch.testing.assert_close(out.norm(dim=-1), reference.norm(dim=-1), rtol=1e-6, atol=0.0)
    # the shape within a frame is the magnitude's: one gain per frame
    torch.testing.assert_close(out / magnitude, (out / magnitude)[..., :1].expand_as(out), rtol=1e-6, atol=0.0)
    # frames are independent (batch consistency)
    torch.testing.assert_close(follow_level(magnitude[1:2], reference[1:2]), out[1:2], rtol=0.0, atol=0.0)


def test_a_complex_reference_reads_its_magnitude():
    generator = torch.Generator().manual_seed(1)
    magnitude = torch.rand(2, 4, 17, generator=generator)
    spectrum = torch.randn(2, 4, 17, dtype=torch.complex64, generator=generator)
    torch.testing.assert_close(follow_level(magnitude, spectrum), follow_level(magnitude, spectrum.abs()),
                               rtol=1e-6, atol=1e-7)


def test_the_gain_is_bounded_and_a_silent_reference_gives_silence():
    magnitude = torch.full((1, 2, 8), 1e-6)
    reference = torch.stack([torch.ones(8), torch.zeros(8)])[None]
    out = follow_level(magnitude, reference)
    torch.testing.assert_close(out[0, 0], magnitude[0, 0] * FOLLOW_MAX_GAIN)  # 40 dB at most
    assert torch.equal(out[0, 1], torch.zeros(8))
    # a silent decoded frame stays silent (no division by zero)
    assert torch.equal(follow_level(torch.zeros(1, 1, 8), torch.ones(1, 1, 8)), torch.zeros(1, 1, 8))


@pytest.mark.parametrize("phase", ["pghi", "keep_input"])
def test_forward_follows_the_input_level_and_model_keeps_the_decoders(small_transform, phase):
    model = torch.jit.script(StreamingVAE(HalfLevelModel(small_transform), phase=phase))
    assert model.get_level() == ("follow",) and "level" in model.get_attributes()
    assert int(model.level_params[0]) == 3  # nn~'s type code of a string attribute
    t = torch.arange(32768) / small_transform.sample_rate
    audio = (0.3 * torch.sin(2 * math.pi * 440.0 * t) * (1.0 + 0.5 * torch.sin(2 * math.pi * 3.0 * t)))[None, None]
    delay = int(model.forward_delay[0])

    def played(level: str) -> float:
        assert model.set_level(level) == 0
        model.reset()
        out = torch.cat([model.forward(audio[..., i:i + 2048]) for i in range(0, audio.shape[-1], 2048)], dim=-1)
        return _rms_db(out[..., delay + 4096:], audio[..., 4096:audio.shape[-1] - delay])

    with torch.no_grad():
        followed, decoders = played("follow"), played("model")
    assert abs(followed) < 0.1, f"level follow: {followed:+.2f} dB"
    assert decoders == pytest.approx(20 * math.log10(HALF), abs=0.1), f"level model: {decoders:+.2f} dB"


def test_set_level_refuses_an_unknown_mode_and_keeps_the_current_one(small_transform, identity_model):
    model = torch.jit.script(StreamingVAE(identity_model(small_transform)))
    assert model.set_level("model") == 0
    assert model.set_level("loud") == -1 and model.set_level("") == -1
    assert model.get_level() == ("model",)


def test_reconstruct_follows_the_input_level_by_default(small_transform):
    vae = HalfLevelModel(small_transform)
    t = torch.arange(16384) / small_transform.sample_rate
    audio = 0.3 * torch.sin(2 * math.pi * 330.0 * t)
    followed = reconstruct_audio(vae, audio, {}, method="pghi")
    decoders = reconstruct_audio(vae, audio, {}, method="pghi", level="model")
    torch.testing.assert_close(followed.decoded_magnitude.norm(dim=-1), followed.input_magnitude.norm(dim=-1),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(decoders.decoded_magnitude, followed.input_magnitude * HALF, rtol=1e-5, atol=1e-6)
    with pytest.raises(GenerationError, match="level must be one of follow, model, got 'loud'"):
        reconstruct_audio(vae, audio, {}, level="loud")
