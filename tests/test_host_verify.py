"""verify_model: passes good models, fails broken ones with a specific message."""
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from host_models import (AttributeModel, DelayLine, Gain, Hold, Mixer, NaNModel, OldStyle, OnePole,  # noqa: E402
                         RMSCodec, script)
from vschaos.host import HostError, measure_delay, verify_model  # noqa: E402

BUFFERS = [512, 2048]


@pytest.mark.parametrize("factory", [Gain, RMSCodec, DelayLine, OnePole, AttributeModel, OldStyle, Hold, Mixer])
def test_good_models_pass(factory):
    report = verify_model(script(factory()), buffers=BUFFERS)
    assert report.ok, report.format()
    assert "RESULT: OK" in report.format()
    assert report.to_dict()["ok"] is True


def test_declared_delay_is_measured():
    report = verify_model(script(DelayLine(100, 100)), buffers=BUFFERS)
    delay = [c for c in report.checks if c.name == "delay"][0]
    assert delay.passed and "measured 100 samples" in delay.summary


def failing(report, name):
    assert not report.ok
    checks = [c for c in report.checks if c.name == name and not c.passed]
    assert checks, report.format()
    return "\n".join(checks[0].problems)


def test_output_one_frame_short_fails_with_shapes():
    problems = failing(verify_model(script(RMSCodec(short_frame=True)), buffers=BUFFERS), "shape")
    assert "method 'encode', buffer 2048, batch 1: output shape (1, 4, 3), expected (1, 4, 4)" in problems


def test_swapped_axes_same_size_fails_streaming():
    problems = failing(verify_model(script(RMSCodec(swap_axes=True)), buffers=BUFFERS), "streaming")
    assert "streaming differs from offline: max error" in problems


def test_forgotten_state_fails_streaming():
    problems = failing(verify_model(script(DelayLine(forget_state=True)), buffers=BUFFERS), "streaming")
    assert "buffer 512, batch 1: streaming differs from offline" in problems


def test_wrong_declared_delay_fails():
    problems = failing(verify_model(script(DelayLine(100, 103)), buffers=BUFFERS), "delay")
    assert "declared 103 samples, measured 100 samples" in problems


def test_nan_output_fails():
    problems = failing(verify_model(script(NaNModel()), buffers=BUFFERS), "finite")
    assert "NaN/Inf values" in problems and "buffer 512, batch 1" in problems


def test_verify_does_not_touch_the_callers_module_and_applies_attributes():
    module = script(Gain(0.5))
    report = verify_model(module, buffers=[64], attributes={"gain": ["0.25"]}, batch_sizes=(1,))
    assert report.ok and module.get_gain() == (0.5,)
    assert "= [0.25]" in report.format()


def test_bad_buffer_arguments():
    with pytest.raises(HostError, match="not a power of two"):
        verify_model(script(Gain()), buffers=[500])
    with pytest.raises(HostError, match="below the model's minimum 512"):
        verify_model(script(RMSCodec()), buffers=[256])


def test_measure_delay_recovers_a_shift():
    import numpy as np
    x = np.random.default_rng(0).standard_normal(4000)
    y = np.concatenate([np.zeros(77), x[:-77]])
    lag, correlation = measure_delay(x, y, 1000)
    assert lag == 77 and correlation > 0.99
