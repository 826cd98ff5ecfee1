"""What a Neutone export must pass besides the SDK's own validation, and the SDK's benchmarks run on the file.

:func:`check_buffer`: the loaded file, streamed at a DAW buffer size, equals its own scripted
``StreamingVAE.forward`` shifted by the SDK's buffering delay (within the host's streaming tolerance), and its
delay, measured as our host measures nn~ models, equals the reported one. :func:`run_sdk_benchmarks`: the SDK's
``benchmark_speed_`` and ``benchmark_latency_`` in a child process, their figures parsed. This module does not
import the SDK itself (the child does); it works on a loaded model object.
"""
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from vschaos.host.verify.checks import DEFAULT_TOLERANCE
from vschaos.io import PathLike

CHECK_BUFFERS = (2048, 256, 441)  # DAW buffers of the equality and delay checks (model's rate; 441: not whole hops)
RESAMPLED_CHECKS = ((48000, 441),)  # (DAW rate, buffer) checks through the wrapper's own resamplers
BENCH_BUFFERS = (128, 256, 512, 1024, 2048)  # the SDK's defaults
BENCH_SAMPLE_RATES = (48000,)
LATENCY_SAMPLE_RATES = (44100, 48000)
EQUALITY_TOLERANCE = DEFAULT_TOLERANCE  # x max(1, peak |reference|): the host's streaming == offline tolerance


class NeutoneExportError(RuntimeError):
    """The Neutone model failed the SDK's checks or ours; nothing was written."""


# ---------------------------------------------------------------------------------------------- checks
def stream_file_model(model, audio: Tensor, sample_rate: int, buffer: int, params: Optional[Tensor] = None
                      ) -> Tensor:
    """Run a loaded Neutone model as the plugin does: ``audio (1, T)`` (mono DAW) in DAW buffers of
    ``buffer`` samples (T a multiple of it) after ``set_daw_sample_rate_and_buffer_size``; ``params
    (n_params, T)`` (the SDK allows up to 4) or None (the defaults). Returns ``(1, T)``."""
    model.set_daw_sample_rate_and_buffer_size(sample_rate, buffer)
    model.reset()
    outputs = []
    with torch.no_grad():
        for start in range(0, audio.shape[1], buffer):
            block_params = None if params is None else params[:, start:start + buffer].contiguous()
            outputs.append(model.forward(audio[:, start:start + buffer].contiguous(), block_params).clone())
    return torch.cat(outputs, dim=1)


@dataclass
class BufferCheck:
    """Equality with ``StreamingVAE.forward`` and the measured delay at one DAW buffer size and rate."""
    daw_buffer: int
    model_buffer: int
    buffering_delay: int
    model_delay: int
    max_error: float
    delay_summary: str
    problems: List[str]
    queue_delay: int = 0  # buffering plus the wrapper's own queue: the delay beyond StreamingVAE.forward's
    sample_rate: int = 0  # the DAW's; 0: the model's own

    @property
    def resampled(self) -> bool:
        return self.sample_rate > 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_buffer(model, buffer: int, seconds: float = 0.75, daw_rate: Optional[int] = None) -> BufferCheck:
    """The loaded file streamed at ``buffer`` must equal its own scripted ``StreamingVAE.forward`` (one
    offline call) shifted by the queues' delay (the SDK's buffering plus the wrapper's hop queue, i.e. the
    reported delay beyond ``forward``'s own), and its measured delay (as our host measures an nn~ model's:
    waveform cross-correlation, else the band envelopes) must equal buffering + model delay.

    With a ``daw_rate`` other than the model's, the file streams at that rate through the wrapper's own
    resamplers, and the reference is the same chain offline: the whole input resampled in one call
    (:func:`~vschaos.dsp.resample.resample_offline`), one ``forward`` call, the output resampled back at the
    position the reported delay sets."""
    from vschaos.dsp.resample import resample_offline
    from vschaos.host.verify import (ENVELOPE_MIN_LENGTH, MIN_CORRELATION_FOR_DELAY, envelope_delay,
                                     measure_delay)

    model_rate = int(model.w2w_base.vs_sample_rate)
    sample_rate = model_rate if daw_rate is None else int(daw_rate)
    model.set_daw_sample_rate_and_buffer_size(sample_rate, buffer)
    buffering, model_delay = int(model.calc_buffering_delay_samples()), int(model.calc_model_delay_samples())
    model_buffer = int(model.model_bs)
    total = buffering + model_delay
    own_delay = int(model.w2w_base.vs_delay)
    resampled = sample_rate != model_rate
    queue = total - (own_delay * sample_rate) // model_rate
    problems: List[str] = []
    if queue < 0:
        problems.append(f"buffer {buffer}: reported delay {total} is shorter than StreamingVAE.forward's own "
                        f"{own_delay}")
        queue = 0
    length = -(-max(int(seconds * sample_rate), 4 * (total + buffer)) // buffer) * buffer
    generator = torch.Generator().manual_seed(5)
    audio = 0.3 * torch.randn(1, length, generator=generator)
    streamed = stream_file_model(model, audio, sample_rate, buffer)
    if resampled and int(model.w2w_base.vs_up.underruns) > 0:
        problems.append(f"{sample_rate / 1000:g} kHz / buffer {buffer}: the output resampler ran dry "
                        f"{int(model.w2w_base.vs_up.underruns)} times: the reported delay {total} is too short")
    stream = model.w2w_base.model  # the scripted StreamingVAE, through its public interface
    n_tasks = len(stream.forward_tasks)
    hop = int(model.w2w_base.vs_hop)
    down_phase = int(model.w2w_base.vs_down_phase)
    model_audio = resample_offline(audio, sample_rate, model_rate, length * model_rate // sample_rate, down_phase) \
        if resampled else audio
    model_length = model_audio.shape[1]
    inputs = torch.full((1, 1 + n_tasks, -(-model_length // hop) * hop), -1.0)  # whole hops; forward is causal
    inputs[0, 0] = 0.0
    inputs[0, 0, :model_length] = model_audio[0]
    with torch.no_grad():
        stream.reset()
        stream.set_temperature(0.0)
        stream.set_latent_offset(torch.zeros(int(stream.latent_dim)))
        reference = stream.forward(inputs)[0]
        stream.reset()
    if resampled:  # the wrapper's output n plays the model's output at model time (n - total) + its own delay
        expected = resample_offline(reference, model_rate, sample_rate, length,
                                    own_delay * sample_rate - total * model_rate - down_phase)
        # and clamps it, as the wrapper does after its output resampler: a model at its soft-clipped +-4 (a
        # trained model fed louder input than it learnt) rings past it there
        limit = float(model.w2w_base.vs_output_limit)
        expected = expected.clamp(-limit, limit)
    else:
        reference = reference[:, :length]
        expected = torch.zeros_like(reference)
        expected[:, queue:] = reference[:, :length - queue]
    if not torch.isfinite(streamed).all():
        problems.append(f"buffer {buffer}: non-finite output")
    max_error = float((streamed - expected).abs().max())
    bound = EQUALITY_TOLERANCE * max(1.0, float(expected.abs().max()))
    if not max_error <= bound:
        what = (f"StreamingVAE.forward between the resamplers offline (delay {total})" if resampled else
                f"StreamingVAE.forward delayed by the queues' delay {queue}")
        problems.append(f"{'%g kHz / ' % (sample_rate / 1000) if resampled else ''}buffer {buffer}: output differs "
                        f"from {what} by up to {max_error:.3g} (> {bound:.3g})")

    def process(signal: np.ndarray) -> np.ndarray:
        padded = -(-len(signal) // buffer) * buffer
        x = torch.zeros(1, padded)
        x[0, :len(signal)] = torch.from_numpy(signal.astype(np.float32))
        return stream_file_model(model, x, sample_rate, buffer)[0, :len(signal)].double().numpy()

    lag, correlation = measure_delay(audio[0].double().numpy(), np.nan_to_num(streamed[0].double().numpy()),
                                     length // 2)
    if correlation >= MIN_CORRELATION_FOR_DELAY:
        summary = f"measured {lag} samples (waveform)"
        if lag != total:
            problems.append(f"buffer {buffer}: reported delay {total}, measured {lag} samples")
    else:
        env_length = -(-max(ENVELOPE_MIN_LENGTH, 4 * (total + buffer)) // buffer) * buffer
        envelope = envelope_delay(process, env_length, frame=hop)  # the allowance of a regenerated phase
        if not envelope.measurable:
            # e.g. a model trained on tonal notes, fed the check's noise: not a defect, the equality above
            # already places the output at the reported delay
            summary = (f"not measurable from the check's noise ({envelope.why_not()}: an untrained model, or one "
                       f"that learnt other sounds, does not follow its envelope)")
        else:
            summary = f"{envelope.describe()}"
            # the envelope frames are in samples, while what blurs a regenerated phase's envelopes spans model
            # samples: at a higher DAW rate the same blur is that many more samples
            if abs(envelope.lag - total) > envelope.tolerance * max(1.0, sample_rate / model_rate):
                problems.append(f"buffer {buffer}: reported delay {total}, {envelope.describe()}")
    model.reset()
    return BufferCheck(buffer, model_buffer, buffering, model_delay, max_error, summary, problems, queue,
                       sample_rate if resampled else 0)


# ---------------------------------------------------------------------------------------------- SDK benchmarks
_BENCH_CHILD = """
import json, sys
from neutone_sdk.benchmark import benchmark_latency_, benchmark_speed_
args = json.loads(sys.argv[1])
benchmark_speed_(args["path"], buffer_size=args["buffers"], sample_rate=args["speed_rates"], repeat=args["repeat"],
                 n_iters=args["n_iters"], daw_is_mono=False, num_threads=args["threads"], num_interop_threads=1)
benchmark_latency_(args["path"], buffer_size=args["buffers"], sample_rate=args["latency_rates"])
"""
_SPEED_LINE = re.compile(r"Sample rate:\s*(\d+)\s*\|\s*Buffer size:\s*(\d+)\s*\|\s*duration:\s*([\d.]+)±([\d.]+)\s*\|"
                         r"\s*1/RTF:\s*([\d.]+)")
_LATENCY_LINE = re.compile(r"Sample rate:\s*(\d+)\s*\|\s*Buffer size:\s*(\d+)\s*\|\s*Total delay:\s*(\d+)\s*\|"
                           r"\s*\(Buffering delay:\s*(\d+)\s*\|\s*Model delay:\s*(\d+)\)")


@dataclass
class SdkBenchmarks:
    """Figures of the SDK's ``benchmark_speed_`` and ``benchmark_latency_`` (parsed from their log lines)."""
    speed: List[Dict[str, float]]
    latency: List[Dict[str, int]]
    threads: int
    repeat: int
    n_iters: int

    def inverse_rtf(self, sample_rate: int, buffer: int) -> Optional[float]:
        for row in self.speed:
            if row["sample_rate"] == sample_rate and row["buffer_size"] == buffer:
                return row["inverse_rtf"]
        return None

    def format(self) -> str:
        lines = [f"SDK benchmark-speed ({self.threads} thread, stereo DAW, {self.repeat} x {self.n_iters} calls; "
                 f"duration = seconds per {self.n_iters} calls):",
                 "  sample rate | buffer | duration        | 1/RTF"]
        for row in self.speed:
            lines.append(f"  {row['sample_rate']:>11} | {row['buffer_size']:>6} | {row['duration']:.4f} ± "
                         f"{row['std']:.4f} | {row['inverse_rtf']:.1f}")
        lines += ["SDK benchmark-latency (samples at the DAW rate):",
                  "  sample rate | buffer | total | buffering | model"]
        for row in self.latency:
            lines.append(f"  {row['sample_rate']:>11} | {row['buffer_size']:>6} | {row['total']:>5} | "
                         f"{row['buffering']:>9} | {row['model']:>5}")
        return "\n".join(lines)


def run_sdk_benchmarks(path: PathLike, buffers: Sequence[int] = BENCH_BUFFERS,
                       speed_rates: Sequence[int] = BENCH_SAMPLE_RATES,
                       latency_rates: Sequence[int] = LATENCY_SAMPLE_RATES, repeat: int = 10, n_iters: int = 30,
                       threads: int = 1, timeout: float = 900.0) -> SdkBenchmarks:
    """Run the SDK's speed and latency benchmarks on the file in a child process (they set torch's thread
    counts, which a process can do once). Raises :class:`NeutoneExportError` if they fail."""
    args = {"path": str(path), "buffers": [int(b) for b in buffers], "speed_rates": [int(r) for r in speed_rates],
            "latency_rates": [int(r) for r in latency_rates], "repeat": int(repeat), "n_iters": int(n_iters),
            "threads": int(threads)}
    env = dict(os.environ, LOGLEVEL="INFO", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore::FutureWarning")
    try:
        result = subprocess.run([sys.executable, "-c", _BENCH_CHILD, json.dumps(args)], capture_output=True,
                                text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise NeutoneExportError(f"the SDK benchmarks did not finish within {timeout:.0f} s") from error
    output = result.stdout + result.stderr
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise NeutoneExportError(f"the SDK benchmarks failed (exit {result.returncode}):\n{tail}")
    speed = [{"sample_rate": int(m[1]), "buffer_size": int(m[2]), "duration": float(m[3]), "std": float(m[4]),
              "inverse_rtf": float(m[5])} for m in _SPEED_LINE.finditer(output)]
    latency = [{"sample_rate": int(m[1]), "buffer_size": int(m[2]), "total": int(m[3]), "buffering": int(m[4]),
                "model": int(m[5])} for m in _LATENCY_LINE.finditer(output)]
    expected_speed = len(buffers) * len(speed_rates)
    expected_latency = len(buffers) * len(latency_rates)
    if len(speed) != expected_speed or len(latency) != expected_latency:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise NeutoneExportError(f"could not read the SDK benchmark figures ({len(speed)}/{expected_speed} speed "
                                 f"rows, {len(latency)}/{expected_latency} latency rows):\n{tail}")
    return SdkBenchmarks(speed, latency, int(threads), int(repeat), int(n_iters))
