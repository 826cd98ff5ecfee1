"""Band-limited resampling that streams: any buffer split gives the same samples, at exact rational positions.

Output sample ``k`` sits at input position ``(k * in_rate + phase) / out_rate`` (in input samples; ``phase`` in
units of ``1 / out_rate`` input samples shifts the whole output, which lets a caller make a total delay a whole
number of samples). It is the windowed-sinc interpolation of the input at that position: a Kaiser-windowed sinc
of ``ZERO_CROSSINGS`` zero crossings each side, cut off at ``ROLLOFF`` times the lower Nyquist frequency (an
anti-aliasing low-pass when going down). The positions repeat every ``out_rate / gcd`` outputs, so the taps
are one table row per position, computed once per rate pair (:func:`sinc_table`), and a call reads its outputs'
taps and input positions as slices of that cycle laid out once (:meth:`StreamingResampler._has_cycle`).

Unlike resampling each buffer on its own (the Neutone SDK's way: each buffer's length rounded, its edges
extrapolated), the fractional position is carried across calls in integers, so a pitch comes out exact and the
output does not depend on the buffer size (``tests/test_resample.py``).

:func:`resampled_stream_delay` sizes the delay of a chain that resamples a stream to a model's rate, runs it in
whole hops and resamples the result back (the Neutone wrapper's), and the input's phase that minimises it.
"""
import math
from typing import Tuple

import torch
from torch import Tensor, nn

ZERO_CROSSINGS = 16  # each side, at the lower of the two rates
KAISER_BETA = 7.0  # ~70 dB stop band
ROLLOFF = 0.92  # cut-off / the lower Nyquist frequency
MAX_POSITIONS = 4096  # table rows at most: an odd rate pair (44101 -> 22050: 22050 positions) is rounded down to
# the nearest 1/4096 of a sample (< 2.5e-4 samples: ~-70 dB, the stop band's level); the position stays exact
CYCLE_MAX_VALUES = 1 << 20  # floats of taps laid out per output at most (4 MB): calls of up to this / taps - out_step + 1


def sinc_table(in_rate: int, out_rate: int, zero_crossings: int = ZERO_CROSSINGS, beta: float = KAISER_BETA,
               rolloff: float = ROLLOFF, max_positions: int = MAX_POSITIONS) -> Tuple[Tensor, int]:
    """Taps ``(positions, 2 * half_width)`` for the ``positions = min(out_rate / gcd, max_positions)`` fractional
    positions ``p / positions`` between two input samples, and the half width in input samples. Row ``p``, tap
    ``j`` weighs input sample ``floor(position) + j - half_width + 1``."""
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    divisor = math.gcd(in_rate, out_rate)
    positions = min(out_rate // divisor, max_positions)
    cutoff = rolloff * min(1.0, out_rate / in_rate)  # in cycles per input sample x 2 (1 = input Nyquist)
    half_width = int(math.ceil(zero_crossings / cutoff))
    taps = torch.arange(-half_width + 1, half_width + 1, dtype=torch.float64)
    fraction = torch.arange(positions, dtype=torch.float64) / positions
    offset = taps.unsqueeze(0) - fraction.unsqueeze(1)  # input sample minus the output's position
    window = torch.special.i0(beta * torch.sqrt((1.0 - (offset / half_width) ** 2).clamp(min=0.0)))
    window = window / torch.special.i0(torch.tensor(beta, dtype=torch.float64))
    table = cutoff * torch.sinc(cutoff * offset) * window
    return table.float(), half_width


class StreamingResampler(nn.Module):
    """``push`` input samples ``(1, n)``, ``pull`` the next output samples: :meth:`ready` says how many can be
    computed from what was pushed; pulling more reads the missing input as silence and counts an underrun (a
    caller that sized its delay right never does; later pushes stay in place). Rates, ``phase`` and the taps are
    set by :meth:`set_rates`, which also resets."""
    in_step: int
    out_step: int
    phase: int
    half_width: int
    history_start: int
    pushed: int
    next_out: int
    underruns: int
    zero_crossings: int
    beta: float
    rolloff: float
    cycle_max_values: int

    def __init__(self, in_rate: int = 1, out_rate: int = 1, phase: int = 0) -> None:
        super().__init__()
        self.zero_crossings, self.beta, self.rolloff = ZERO_CROSSINGS, KAISER_BETA, ROLLOFF
        self.cycle_max_values = CYCLE_MAX_VALUES
        self.in_step = self.out_step = 1
        self.phase = self.half_width = self.history_start = self.pushed = self.next_out = self.underruns = 0
        self.register_buffer("table", torch.ones(1, 2), persistent=False)
        self.register_buffer("history", torch.zeros(1, 0), persistent=False)
        self.register_buffer("cycle_base", torch.zeros(0, dtype=torch.int64), persistent=False)  # see _has_cycle
        self.register_buffer("cycle_taps", torch.zeros(0, 2), persistent=False)
        self.set_rates(in_rate, out_rate, phase)

    @torch.jit.export
    def set_rates(self, in_rate: int, out_rate: int, phase: int = 0) -> None:
        divisor = math.gcd(in_rate, out_rate)
        if phase % divisor != 0:
            raise ValueError(f"phase {phase} must be a multiple of gcd({in_rate}, {out_rate}) = {divisor}")
        table, half_width = sinc_table(in_rate, out_rate, self.zero_crossings, self.beta, self.rolloff)
        self.in_step, self.out_step, self.phase = in_rate // divisor, out_rate // divisor, phase // divisor
        self.table, self.half_width = table, half_width
        self.drop_cycle()  # laid out for these rates by the next prepare or pull
        self.reset()

    @torch.jit.export
    def reset(self) -> None:
        first = _floor_div(self.phase, self.out_step) - self.half_width + 1  # the first input the first output reads
        self.history_start = min(0, first)
        self.history = torch.zeros(1, -self.history_start, dtype=self.table.dtype)
        self.pushed = 0
        self.next_out = 0
        self.underruns = 0  # pulls that read input not pushed yet (as silence)

    @torch.jit.export
    def push(self, x: Tensor) -> None:
        self._forget_read_input()
        if x.dtype != self.history.dtype:  # a no-op conversion would still be an operation on every call
            x = x.to(self.history.dtype)
        self.history = torch.cat([self.history, x], dim=1)
        self.pushed += int(x.shape[1])

    def _forget_read_input(self) -> None:
        """Drop the input that no later output reads. Done here, before a push, not after each pull: a caller that
        pulls on every call and pushes on some (the Neutone wrapper's output side) then trims once per push."""
        keep_from = _floor_div(self.next_out * self.in_step + self.phase, self.out_step) - self.half_width + 1
        drop = min(max(0, keep_from - self.history_start), self.history.shape[1])  # history ends at `pushed`
        if drop > 0:
            self.history = self.history.narrow(1, drop, self.history.shape[1] - drop)
            self.history_start += drop

    @torch.jit.export
    def ready(self) -> int:
        """How many outputs the input pushed so far fully determines."""
        end = _ceil_div((self.pushed - self.half_width) * self.out_step - self.phase, self.in_step)
        return max(0, end - self.next_out)

    @torch.jit.export
    def pull(self, n: int) -> Tensor:
        """The next ``n`` outputs ``(1, n)``."""
        if n <= 0:
            return torch.zeros(1, 0, dtype=self.history.dtype)
        taps = self.table.shape[1]
        shift = self.half_width - 1 + self.history_start  # from an input position to its index in `history`
        source = self.history  # (1, samples): read as it is, each call's operations count
        last_first = _floor_div((self.next_out + n - 1) * self.in_step + self.phase, self.out_step) - shift
        if last_first + taps > source.shape[1]:  # more than was pushed: silence
            self.underruns += 1
            source = torch.cat([source, torch.zeros(1, last_first + taps - source.shape[1], dtype=source.dtype)],
                               dim=1)
        start = self.next_out % self.out_step  # where this call starts in the cycle of positions
        if self._has_cycle(n):
            first = self.cycle_base[start:start + n] + (self.next_out // self.out_step * self.in_step - shift)
            weights = self.cycle_taps[start:start + n]
        else:
            numerator = torch.arange(self.next_out, self.next_out + n) * self.in_step + self.phase
            base = torch.div(numerator, self.out_step, rounding_mode="floor")
            rows = numerator - base * self.out_step
            if self.table.shape[0] != self.out_step:  # fewer rows than positions (MAX_POSITIONS): the row below
                rows = torch.div(rows * self.table.shape[0], self.out_step, rounding_mode="floor")
            first = base - shift  # each output's first tap, in `history`
            weights = self.table.index_select(0, rows)
        # windows as a strided view, then one row copy each: no 2-D index tensor to build and gather through
        # (python -m bench.resample_speed times a call); (1, n, taps) -> (1, n) with no reshaping
        windows = source.unfold(1, taps, 1).index_select(1, first)
        out = windows.mul_(weights).sum(dim=2)  # in place: `windows` is this call's own copy
        self.next_out += n
        return out

    @torch.jit.export
    def prepare(self, max_outputs: int) -> None:
        """Lay out the cycle for pulls of up to ``max_outputs`` outputs now, not in the first such pull (the very
        test a pull makes, so either this lays it out or no such pull does): a plugin sets rates outside its audio
        thread and should not allocate in it."""
        self._has_cycle(max_outputs)

    @torch.jit.export
    def drop_cycle(self) -> None:
        """Free the laid-out cycle (the next :meth:`prepare` or pull lays it out again): streaming state that a
        saved model should not carry (up to ``CYCLE_MAX_VALUES`` floats of taps per resampler)."""
        self.cycle_base = torch.zeros(0, dtype=torch.int64)
        self.cycle_taps = torch.zeros(0, self.table.shape[1])

    def _has_cycle(self, n: int) -> bool:
        """Whether a pull of ``n`` outputs, starting anywhere in the cycle of positions, can read its taps and
        input positions as slices of ``cycle_taps`` / ``cycle_base``, laying them out for ``out_step - 1 + n``
        outputs when they are shorter and that fits in ``cycle_max_values`` floats. The positions repeat every
        ``out_step`` outputs, shifted by ``in_step`` inputs, so a call reads one slice of each: no index
        arithmetic and no gather of table rows per call, and the very same values as the general path. Odd rate
        pairs (a rounded table: positions do not repeat within it) always take the general one."""
        size = self.out_step - 1 + n
        if size <= self.cycle_base.shape[0]:
            return True
        taps = self.table.shape[1]
        if self.table.shape[0] != self.out_step or size > self.cycle_max_values // taps:  # no int64 overflow
            return False
        numerator = torch.arange(size) * self.in_step + self.phase
        self.cycle_base = torch.div(numerator, self.out_step, rounding_mode="floor")
        self.cycle_taps = self.table.index_select(0, numerator - self.cycle_base * self.out_step)
        return True

    def forward(self, x: Tensor) -> Tensor:
        """Push ``x``, pull everything it completes."""
        self.push(x)
        return self.pull(self.ready())


def _floor_div(a: int, b: int) -> int:
    return a // b  # Python's and TorchScript's int // both floor


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def resample_offline(x: Tensor, in_rate: int, out_rate: int, length: int, phase: int = 0) -> Tensor:
    """``(1, T)`` -> ``(1, length)`` with the same taps and positions as a :class:`StreamingResampler` fed ``x``
    in any split (input beyond ``T`` read as silence): the reference streaming checks compare with."""
    resampler = StreamingResampler(in_rate, out_rate, phase)
    resampler.push(x)
    return resampler.pull(length)


def resampled_stream_delay(daw_rate: int, model_rate: int, buffer: int, hop: int, model_delay: int,
                           down_half_width: int, up_half_width: int) -> Tuple[int, int]:
    """``(delay, down_phase)`` for a chain that resamples calls of ``buffer`` DAW samples to ``model_rate``, runs
    whole hops of ``hop`` model samples through a stream delayed by ``model_delay`` model samples, and resamples
    back: the least whole number of DAW samples by which the output can follow the input such that the output
    resampler never reads beyond the model's output so far, and the input resampler's phase.

    The input is resampled ``down_half_width`` DAW samples late (``down_phase = -down_half_width * model_rate``:
    the input filter's look-ahead paid up front), so model sample ``k`` is ready when DAW sample ``k * daw_rate /
    model_rate`` arrives, as if there were no filter: the hops then fall where they would at the model's rate,
    whatever the DAW's buffer, so the output does not depend on the buffer size, and a buffer of whole hops
    (44.1 kHz / 2048 for a 22.05 kHz model) runs all its hops in its own call. One shift serves every buffer
    size: at some buffers another shift would be a few DAW samples shorter, but this one needs no search per
    buffer, and it saves up to a hop against no shift.

    After call ``c`` the input resampler has made ``K_c = ceil(((c * buffer - down_half_width) * model_rate -
    down_phase) / daw_rate)`` samples, the stream has run ``P_c = floor(K_c / hop) * hop`` of them, and the
    call's last output, ``c * buffer - 1``, reads the model's output up to ``floor(((c * buffer - 1 - delay) *
    model_rate - down_phase) / daw_rate) + model_delay + up_half_width``, which must be below ``P_c``. The
    conditions repeat every ``daw_rate * hop / gcd(buffer * model_rate, daw_rate * hop)`` calls; beyond 2**22
    calls the bound that ignores where the hops fall is used instead."""
    down_phase = -down_half_width * model_rate
    cycle = daw_rate * hop
    period = cycle // math.gcd(buffer * model_rate, cycle)
    if period > (1 << 22):
        return down_half_width + (model_delay + up_half_width + hop - 1) * daw_rate // model_rate, down_phase
    calls = torch.arange(1, period + 1, dtype=torch.long)
    made = -torch.div(down_phase - (calls * buffer - down_half_width) * model_rate, daw_rate, rounding_mode="floor")
    run = torch.div(made, hop, rounding_mode="floor") * hop
    read_end = (calls * buffer - 1) * model_rate + (model_delay + up_half_width - run) * daw_rate - down_phase
    return int(torch.div(read_end, model_rate, rounding_mode="floor").max()) + 1, down_phase
