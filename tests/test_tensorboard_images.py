"""TensorBoard spectrogram images are drawn like the trajectory PNGs: seconds, Hz, one dB colour scale and bar."""
import numpy as np
import pytest
import torch

from vschaos.training.callbacks import spectrogram_figure, spectrogram_image

SAMPLE_RATE, HOP, FRAMES, BINS = 22050, 256, 64, 513


@pytest.fixture
def magnitudes():
    generator = torch.Generator().manual_seed(0)
    original = torch.rand(FRAMES, BINS, generator=generator) * 10.0
    return original, original * 0.5  # the reconstruction 6 dB quieter


def test_spectrogram_panels_have_seconds_hertz_and_a_db_colour_bar(magnitudes):
    figure = spectrogram_figure(*magnitudes, SAMPLE_RATE, HOP)
    original_axis, reconstruction_axis, colour_bar = figure.axes
    for axis in (original_axis, reconstruction_axis):
        assert axis.get_xlabel() == "time (s)"
        assert axis.get_xlim() == pytest.approx((0.0, FRAMES * HOP / SAMPLE_RATE))
        assert axis.get_ylim() == pytest.approx((0.0, SAMPLE_RATE / 2))
    assert original_axis.get_ylabel() == "frequency (Hz)"
    assert (original_axis.get_title(), reconstruction_axis.get_title()) == ("original", "reconstruction")
    assert colour_bar.get_ylabel() == "dB"
    # one colour scale for both panels: the original's peak down 80 dB
    peak_db = 20 * np.log10(float(magnitudes[0].max()))
    for axis in (original_axis, reconstruction_axis):
        assert axis.images[0].get_clim() == pytest.approx((peak_db - 80.0, peak_db), abs=1e-4)
    # the reconstruction is drawn in its own dB values (6 dB below), not rescaled to its own peak
    drawn = reconstruction_axis.images[0].get_array()
    assert float(drawn.max()) == pytest.approx(peak_db - 20 * np.log10(2), abs=1e-3)


def test_spectrogram_image_is_an_rgb_array(magnitudes):
    image = spectrogram_image(*magnitudes, SAMPLE_RATE, HOP)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.shape[1] > image.shape[0]
