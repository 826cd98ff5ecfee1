"""Input pitch shift (vschaos.models.pitch_shift): frequency-axis scaling and which frames it touches."""
import pytest
import torch

from vschaos.models.pitch_shift import InputPitchShift, scale_frequency_axis


def test_scaling_the_frequency_axis_moves_a_partial_by_the_ratio():
    bins = 1025
    k = torch.arange(bins, dtype=torch.float32)
    peak = torch.exp(-0.5 * ((k - 100.0) / 2.0) ** 2)
    ratios = torch.tensor([2.0 ** (7 / 12), 2.0 ** (-5 / 12), 1.0])
    moved = scale_frequency_axis(peak.expand(3, bins).clone(), ratios)
    # centroid of the moved peak = 100 * ratio (to a tenth of a bin)
    centroids = (moved * k).sum(-1) / moved.sum(-1)
    torch.testing.assert_close(centroids, 100.0 * ratios, atol=0.1, rtol=0)
    assert torch.equal(moved[2], peak)  # ratio 1 is the identity
    # an upward shift pushes the top of the spectrum out: nothing is read beyond the last bin
    top = torch.zeros(1, bins)
    top[0, -10:] = 1.0
    assert scale_frequency_axis(top, torch.tensor([1.5])).sum() == 0


def test_only_frames_labelled_for_every_decoder_task_are_shifted():
    torch.manual_seed(0)
    batch, bins = 2000, 64
    magnitude = torch.rand(batch, bins) + 0.1
    pitch = torch.where(torch.arange(batch) % 2 == 0, 3, -1)  # half the frames unlabelled
    octave = torch.full((batch,), 4)
    shift = InputPitchShift(probability=0.5, max_semitones=12)
    moved, shifted = shift(magnitude, {"pitch": pitch, "octave": octave}, ["pitch", "octave"])
    assert not shifted[pitch < 0].any()
    share = shifted[pitch >= 0].float().mean().item()
    assert abs(share - 0.5) < 0.05
    assert torch.equal(moved[~shifted], magnitude[~shifted])
    assert (moved[shifted] != magnitude[shifted]).any(dim=-1).all()
    # a model with no decoder labels, or a task absent from the batch: nothing to shift
    assert not shift(magnitude, {}, [])[1].any()
    assert not shift(magnitude, {"pitch": pitch}, ["pitch", "octave"])[1].any()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="probability must be in"):
        InputPitchShift(probability=1.5)
    with pytest.raises(ValueError, match="max_semitones must be > 0"):
        InputPitchShift(max_semitones=0)
