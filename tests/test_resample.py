"""Streaming band-limited resampling (vschaos.dsp.resample) and the delay of the chain the Neutone wrapper runs
(resample, whole hops, resample back: ``resampled_stream_delay``).

Like cached_conv's test: any split of the input gives the offline result, here bit for bit, since each output is
the same taps times the same input samples whatever the call.
"""
import math
import warnings

import numpy as np
import pytest
import torch

from vschaos.dsp.resample import StreamingResampler, resample_offline, resampled_stream_delay, sinc_table


def _script(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(module)


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, n, generator=torch.Generator().manual_seed(seed))


def _stream(resampler, x: torch.Tensor, sizes) -> torch.Tensor:
    outputs, start, i = [], 0, 0
    while start < x.shape[1]:
        size = sizes[i % len(sizes)]
        outputs.append(resampler(x[:, start:start + size]))
        start, i = start + size, i + 1
    return torch.cat(outputs, dim=1)


def _sine(freq: float, rate: int, n: int) -> torch.Tensor:
    return torch.sin(2 * math.pi * freq * torch.arange(n, dtype=torch.float64) / rate).float().unsqueeze(0)


def _fit(y: np.ndarray, freq: float, rate: int):
    """Least-squares amplitude of a sine of ``freq`` in ``y``, and the RMS of what is left."""
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.hypot(*coef)), float(np.sqrt(np.mean((y - basis @ coef) ** 2)))


@pytest.mark.parametrize("in_rate, out_rate", [(48000, 22050), (22050, 48000), (44100, 22050), (96000, 44100)])
def test_any_split_gives_the_offline_samples_exactly(in_rate, out_rate):
    x = _noise(in_rate // 8)
    stream_sizes = [[1] * 500 + [x.shape[1]], [64], [441], [2048], [7, 300, 1, 1024]]  # 500 one-sample calls
    streamed = [_stream(StreamingResampler(in_rate, out_rate), x, sizes) for sizes in stream_sizes]
    n = min(s.shape[1] for s in streamed)
    reference = resample_offline(x, in_rate, out_rate, n)
    assert n > 0.95 * x.shape[1] * out_rate / in_rate - 100  # all but the filter's look-ahead came out
    for result in streamed:
        assert torch.equal(result[:, :n], reference)


@pytest.mark.parametrize("in_rate, out_rate, phase", [(48000, 22050, 0), (22050, 48000, -7 * 22050 * 150),
                                                      (22050, 44100, 5 * 44100), (8000, 22050, 0)])
def test_the_laid_out_cycle_of_taps_gives_the_general_paths_samples_exactly(in_rate, out_rate, phase):
    """Usual rate pairs read each call's taps and positions as slices of one cycle laid out once (fast); a
    resampler not allowed the memory for it takes the general path: the same samples bit for bit, in any split,
    with a phase, and through a pull that runs past the input (an underrun)."""
    x = _noise(9000, seed=3)
    results = []
    for cycle_values in (1 << 20, 0):
        resampler = StreamingResampler(in_rate, out_rate, phase)
        resampler.cycle_max_values = cycle_values
        streamed = _stream(resampler, x, [7, 300, 1, 1024, 64])
        results.append(torch.cat([streamed, resampler.pull(700)], dim=1))
        assert resampler.underruns == 1
        assert (resampler.cycle_base.shape[0] > 0) == (cycle_values > 0)
    assert results[0].shape[1] > 0.9 * x.shape[1] * out_rate / in_rate
    assert torch.equal(results[0], results[1])


def test_new_rates_mid_stream_lay_out_a_new_cycle():
    """The plugin calls set_rates in TorchScript when the DAW's rate changes: the cycle laid out for the old
    rates must not survive it (the scripted module restarts exactly like a fresh one)."""
    x = _noise(6000, seed=5)
    scripted = _script(StreamingResampler(48000, 22050))
    _stream(scripted, x, [512])
    scripted.set_rates(22050, 44100, 3 * 44100)
    assert torch.equal(_stream(scripted, x, [333]), _stream(StreamingResampler(22050, 44100, 3 * 44100), x, [333]))


@pytest.mark.parametrize("in_rate, out_rate, n", [(48000, 22050, 941), (22050, 48000, 2048), (22050, 48000, 28600),
                                                  (48000, 22050, 13433)])
def test_prepare_lays_out_exactly_what_pulls_of_that_size_need(in_rate, out_rate, n):
    """After prepare(n), pulls of up to n outputs from any position never lay the cycle out again; where it does
    not fit (the last two: one output more than the budget allows), neither prepare nor any pull of n lays it
    out, so a plugin never allocates it in its audio thread."""
    taps = StreamingResampler(in_rate, out_rate).table.shape[1]
    out_step = out_rate // math.gcd(in_rate, out_rate)
    resampler = StreamingResampler(in_rate, out_rate)
    if n > 10000:
        resampler.cycle_max_values = (out_step - 2 + n) * taps  # one output short of n
    resampler.prepare(n)
    laid_out = resampler.cycle_base.data_ptr(), resampler.cycle_base.shape[0]
    assert (laid_out[1] > 0) == (n < 10000)
    x = _noise(n * 4 * in_rate // out_rate + 1000, seed=7)
    resampler.push(x)
    for size in ((n, 1, n - 1, 7, n, n) if n < 10000 else (n, n, n)):  # starts all over the cycle
        resampler.pull(size)
        assert (resampler.cycle_base.data_ptr(), resampler.cycle_base.shape[0]) == laid_out


def test_prepare_for_an_absurd_size_allocates_nothing():
    scripted = _script(StreamingResampler(48000, 22050))
    for size in (10 ** 9, 2 ** 58, 2 ** 62):  # size * taps would overflow int64
        scripted.prepare(size)
        assert scripted.cycle_base.shape[0] == 0


def test_an_odd_rate_pair_or_a_huge_call_takes_the_general_path():
    odd = StreamingResampler(44101, 22050)  # rounded table: the positions do not repeat within it
    odd.push(_noise(5000))
    assert odd.pull(odd.ready()).shape[1] > 2000 and odd.cycle_base.shape[0] == 0
    usual = StreamingResampler(48000, 22050)
    x = _noise(48000 * 10)
    usual.push(x)
    huge = usual.ready()  # more outputs than CYCLE_MAX_VALUES allows to lay out
    assert (146 + huge) * usual.table.shape[1] > usual.cycle_max_values
    out = usual.pull(huge)
    assert usual.cycle_base.shape[0] == 0
    reference = StreamingResampler(48000, 22050)
    assert torch.equal(_stream(reference, x, [4096]), out[:, :reference.next_out])


def test_scripted_equals_eager_and_sets_its_own_rates():
    x = _noise(12000)
    eager = _stream(StreamingResampler(48000, 22050), x, [333])
    scripted = _script(StreamingResampler())
    scripted.set_rates(48000, 22050, 0)  # what the plugin does in TorchScript at a new DAW rate
    assert torch.equal(_stream(scripted, x, [333]), eager)
    table, half_width = sinc_table(48000, 22050)
    assert table.shape == (147, 2 * half_width)  # 22050 / gcd(48000, 22050) positions
    assert torch.allclose(table.sum(dim=1), torch.ones(147), atol=2e-3)  # unit gain at DC at every position


def test_an_odd_rate_pair_keeps_a_small_table_and_its_pitch():
    """44101 -> 22050 has 22050 fractional positions: the table keeps 4096 rows (the position rounded down to a
    4096th of a sample), the pitch stays exact (the position itself is carried exactly) and the error is at the
    stop band's level."""
    resampler = StreamingResampler(44101, 22050)
    assert tuple(resampler.table.shape) == (4096, 2 * resampler.half_width)
    x = _sine(1000.0, 44101, 44101)
    y = _stream(resampler, x, [441])[0, 200:].double().numpy()
    amplitude, residual = _fit(y, 1000.0, 22050)
    assert 20 * math.log10(amplitude) == pytest.approx(0.0, abs=0.05)
    assert 20 * math.log10(residual / amplitude) < -60.0
    assert tuple(StreamingResampler(48000, 22050).table.shape)[0] == 147  # a usual pair keeps every position


def test_ready_is_exactly_what_the_input_so_far_determines():
    x = _noise(5000, seed=1)
    resampler = StreamingResampler(48000, 22050)
    resampler.push(x[:, :3000])
    ready = resampler.ready()
    first = resample_offline(x, 48000, 22050, ready + 1)
    later = x.clone()
    later[0, 3000:] = 1.0  # none of the ready outputs reads past what was pushed...
    second = resample_offline(later, 48000, 22050, ready + 1)
    assert torch.equal(second[0, :ready], first[0, :ready])
    assert second[0, ready] != first[0, ready]  # ...and the next one does
    assert resampler.underruns == 0
    resampler.pull(ready + 1)
    assert resampler.underruns == 1  # read beyond what was pushed


def test_pulling_too_early_reads_silence_and_later_input_stays_in_place():
    x = _noise(4000, seed=2)
    resampler = StreamingResampler(22050, 48000)
    resampler.push(x[:, :1000])
    early = resampler.pull(resampler.ready() + 50)
    resampler.push(x[:, 1000:])
    rest = resampler.pull(resampler.ready())
    reference = resample_offline(x, 22050, 48000, early.shape[1] + rest.shape[1])
    assert torch.equal(rest, reference[:, early.shape[1]:])  # the stream did not slip


def test_a_phase_of_whole_input_samples_is_a_shift():
    x = _noise(3000, seed=3)
    shift = 5  # input samples: the phase is in 1/out_rate input samples
    ahead = resample_offline(x, 48000, 22050, 1000, phase=shift * 22050)
    later = resample_offline(x[:, shift:], 48000, 22050, 1000)
    assert torch.equal(ahead[:, 30:], later[:, 30:])  # past the first taps, which read before the cut
    assert not torch.equal(ahead[:, :5], later[:, :5])
    with pytest.raises(ValueError, match=r"phase 7 must be a multiple of gcd\(48000, 22050\) = 150"):
        StreamingResampler(48000, 22050, phase=7)


def test_pitch_is_exact_and_the_pass_band_flat():
    rate_in, rate_out = 48000, 22050
    for freq in (440.0, 1000.0, 8000.0):
        x = _sine(freq, rate_in, 2 * rate_in)
        y = _stream(StreamingResampler(rate_in, rate_out), x, [64])[0, 200:].double().numpy()
        amplitude, residual = _fit(y, freq, rate_out)  # a sine of exactly `freq` at the new rate
        assert 20 * math.log10(amplitude) == pytest.approx(0.0, abs=0.05)
        assert residual < 3e-3  # nothing but that sine (a wrong pitch leaves ~0.7 here)


def test_what_would_alias_is_attenuated_70_db():
    for freq in (11800.0, 15000.0, 20000.0):  # above 22.05 kHz's Nyquist (11025 Hz)
        x = _sine(freq, 48000, 48000)
        y = resample_offline(x, 48000, 22050, 22000)[0, 200:]
        assert 20 * math.log10(float(y.pow(2).mean().sqrt()) / math.sqrt(0.5)) < -60.0


def test_upsampling_recovers_the_band_limited_signal():
    freq = 3000.0
    y = resample_offline(_sine(freq, 22050, 22050), 22050, 48000, 47000)[0, 200:46000].double().numpy()
    expected = np.sin(2 * np.pi * freq * (np.arange(200, 46000) / 48000))
    assert np.abs(y - expected).max() < 3e-3


# ---------------------------------------------------------------------------------------------- the wrapper's delay
def _chain_underruns(daw_rate, model_rate, buffer, hop, model_delay, delay, down_phase, calls):
    """Run the Neutone wrapper's chain (input resampler, whole hops through a pure delay of ``model_delay``, output
    resampler positioned for a total ``delay``) and count the output resampler's underruns."""
    down = StreamingResampler(daw_rate, model_rate, down_phase)
    up = StreamingResampler(model_rate, daw_rate, model_delay * daw_rate - delay * model_rate - down_phase)
    pending = torch.zeros(1, 0)
    for _ in range(calls):
        pending = torch.cat([pending, down(torch.zeros(1, buffer))], dim=1)
        whole = pending.shape[1] // hop * hop
        if whole:
            up.push(pending[:, :whole])
        pending = pending[:, whole:]
        up.pull(buffer)
    return up.underruns


@pytest.mark.parametrize("daw_rate, buffer", [(48000, 2048), (48000, 64), (44100, 441), (96000, 2048), (32000, 256),
                                              (44100, 2048)])
def test_the_resampled_delay_is_the_least_that_never_runs_dry(daw_rate, buffer):
    model_rate, hop, model_delay = 22050, 256, 768
    widths = StreamingResampler(daw_rate, model_rate).half_width, StreamingResampler(model_rate, daw_rate).half_width
    delay, down_phase = resampled_stream_delay(daw_rate, model_rate, buffer, hop, model_delay, *widths)
    assert down_phase == -widths[0] * model_rate  # the input filter's look-ahead paid up front
    period = daw_rate * hop // math.gcd(buffer * model_rate, daw_rate * hop)
    calls = period + 20
    assert _chain_underruns(daw_rate, model_rate, buffer, hop, model_delay, delay, down_phase, calls) == 0
    assert _chain_underruns(daw_rate, model_rate, buffer, hop, model_delay, delay - 1, down_phase, calls) > 0
    # within a hop and the filters of the model's own delay
    model_ms = model_delay / model_rate
    assert model_ms <= delay / daw_rate <= model_ms + (hop + 2 * 24) / model_rate


def test_the_input_filters_look_ahead_paid_up_front_saves_a_hop_when_the_buffer_is_whole_hops():
    """44.1 kHz / 2048 for a 22.05 kHz model is four hops a call: resampled without delay, the input filter's
    look-ahead would leave the fourth hop for the next call (a hop more delay); resampled its half width late,
    every call runs four."""
    widths = StreamingResampler(44100, 22050).half_width, StreamingResampler(22050, 44100).half_width
    delay, down_phase = resampled_stream_delay(44100, 22050, 2048, 256, 768, *widths)
    assert delay == widths[0] + 2 * (768 + widths[1])  # the model's delay and the filters', no queue: 1607
    assert _chain_underruns(44100, 22050, 2048, 256, 768, delay, down_phase, 40) == 0
    assert _chain_underruns(44100, 22050, 2048, 256, 768, delay + 400, 0, 40) > 0  # unshifted: 477 more needed
