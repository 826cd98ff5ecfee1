"""Stream engine: nn~ latency, decimation, sample-and-hold, batch/channel order, state, render."""
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from host_models import DelayLine, Gain, Hold, Mixer, OnePole, Raising, RMSCodec, script
from vschaos.host import HostError, ModelCallError, StreamEngine, load_model, render, render_array


def noise(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, n)).astype(np.float32)


@pytest.mark.parametrize("threaded, buffer_size, vector_size", [(False, 256, 64), (True, 256, 64),
                                                                 (False, 2048, 64), (True, 512, 128)])
def test_gain_output_is_input_times_gain_delayed_by_host_latency(threaded, buffer_size, vector_size):
    x = noise(1, 8 * buffer_size)
    with StreamEngine(script(Gain(0.5)), "forward", buffer_size, vector_size, threaded=threaded) as engine:
        latency = (2 if threaded else 1) * buffer_size - vector_size
        assert engine.latency == latency
        y = np.concatenate([engine.process(x[:, i:i + vector_size]) for i in range(0, x.shape[1], vector_size)], 1)
    np.testing.assert_array_equal(y[:, :latency], 0.0)
    np.testing.assert_allclose(y[:, latency:], 0.5 * x[:, :x.shape[1] - latency], rtol=0, atol=0)


def test_large_chunks_equal_vector_by_vector():
    x = noise(1, 4096, seed=1)
    per_vector = StreamEngine(script(DelayLine(37, 37)), buffer_size=512)
    chunked = StreamEngine(script(DelayLine(37, 37)), buffer_size=512)
    a = np.concatenate([per_vector.process(x[:, i:i + 64]) for i in range(0, 4096, 64)], 1)
    b = np.concatenate([chunked.process(x[:, :1600]), chunked.process(x[:, 1600:])], 1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 448 + 37:], x[:, :4096 - 448 - 37])  # state carried across calls


def test_decimation_keeps_last_sample_of_block_and_output_is_held():
    x = np.arange(1, 1025, dtype=np.float32)[None]  # distinct values show which sample was kept
    y = StreamEngine(script(Hold()), buffer_size=256, vector_size=64).process(x)
    latency = 256 - 64
    expected = np.zeros(1024, np.float32)
    for n in range(latency, 1024):
        source = n - latency
        expected[n] = x[0, (source // 4) * 4 + 3]  # last sample of its ratio block, held for 4 samples
    np.testing.assert_array_equal(y[0], expected)


def test_encoder_values_hand_computed():
    x = np.zeros((1, 2048), np.float32)
    x[0, :512] = 0.5
    x[0, 512:1024] = np.tile([1.0, -1.0], 256)
    y = StreamEngine(script(RMSCodec()), "encode", buffer_size=1024, vector_size=64).process(x)
    latency = 1024 - 64
    # frame 0: rms .5 mean .5 peak .5 last .5 ; frame 1: rms 1, mean 0, peak 1, last -1; held 512 samples each
    np.testing.assert_allclose(y[:, latency:latency + 512], np.array([[0.5], [0.5], [0.5], [0.5]]) + 0 * y[:, :512])
    np.testing.assert_allclose(y[:, latency + 512:latency + 1024].max(1), [1.0, 0.0, 1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(y[:, latency + 512:latency + 1024].min(1), [1.0, 0.0, 1.0, -1.0], atol=1e-6)


def test_batch_and_channel_ordering_follows_nn_tilde():
    batch, n = 3, 128
    inlets = np.zeros((2 * batch, n), np.float32)
    for c in range(2):
        for b in range(batch):
            inlets[c * batch + b] = 100 * c + b  # inlet index = c * batch + b
    y = StreamEngine(script(Mixer()), buffer_size=64, vector_size=64, batch=batch).process(inlets)
    assert y.shape == (batch * 3, n)
    for b in range(batch):
        expected = [b, 100 + b, b + 10 * (100 + b)]  # outlet index = b * out_channels + c
        np.testing.assert_array_equal(y[b * 3:(b + 1) * 3, -1], expected)


def test_missing_inlets_are_zeros():
    y = StreamEngine(script(Mixer()), buffer_size=64, vector_size=64).process(np.ones((1, 64), np.float32))
    np.testing.assert_array_equal(y[:, 0], [1.0, 0.0, 1.0])


def test_state_is_carried_between_buffers_for_one_pole():
    x = noise(1, 1024, seed=2)
    y = StreamEngine(script(OnePole(0.9)), buffer_size=128, vector_size=64).process(x)
    expected, state = np.zeros(1024), 0.0
    for i in range(1024 - 64):
        state = 0.9 * state + 0.1 * x[0, i]
        expected[i + 64] = state
    np.testing.assert_allclose(y[0], expected, atol=1e-5)


def test_threaded_mode_uses_a_worker_and_counts_calls():
    engine = StreamEngine(script(Gain()), buffer_size=256, threaded=True, sample_rate=44100)
    engine.process(noise(1, 2048))
    engine.close()
    assert engine.stats.calls == 8  # 2048 / 256 buffers, each handed to the worker
    assert engine.stats.deadline_misses == 0


def test_invalid_sizes_and_model_errors_are_reported():
    with pytest.raises(HostError, match="not a power of two"):
        StreamEngine(script(Gain()), buffer_size=300)
    with pytest.raises(HostError, match="not a multiple"):
        StreamEngine(script(RMSCodec()), "encode", buffer_size=256)
    with pytest.raises(HostError, match="unknown method 'nope'"):
        StreamEngine(script(Gain()), "nope")
    with pytest.raises(ModelCallError, match="buffer too large"):
        StreamEngine(script(Raising()), buffer_size=2048).process(np.zeros((1, 2048), np.float32))


def test_render_file_with_compensation_and_attribute(tmp_path):
    x = noise(2, 3000, seed=4) * 0.1
    sf.write(tmp_path / "in.wav", x.T, 44100, subtype="FLOAT")
    model = load_model(script(DelayLine(50, 50)))
    result = render(model, "forward", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), buffer_size=256,
                    compensate_delay=True)
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert sr == 44100 and out.shape == (3000, 1)
    assert result.compensated == 256 - 64 + 50
    # the model has one inlet: the two channels are mixed to mono as training reads files, and the caller told
    np.testing.assert_allclose(out[:, 0], x.mean(axis=0), atol=1e-7)
    assert result.notes == [f"{tmp_path / 'in.wav'}: 2 channels mixed to mono (their mean, as training does) for "
                            f"the one inlet of method 'forward'"]
    gain = render_array(script(Gain()), "forward", x[:1], buffer_size=128, attributes={"gain": ["2.0"]},
                        compensate_delay=True)
    np.testing.assert_allclose(gain.output[0], 2 * x[0], atol=1e-7)
