"""Render audio through a method exactly as nn~ would, offline and fast."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vschaos.io import atomic_write

from .engine import EngineStats, StreamEngine
from .errors import HostError, NonFiniteOutputError
from .files import check_output, printable, sound_format, soundfile_name, write_error
from .model import LoadedModel, ModelSource, load_model, not_regular_problem


@dataclass
class RenderResult:
    """Output signals ``(outlets, time)`` in nn~ outlet order, plus what shaped them."""

    output: np.ndarray
    latency: int  # host latency in samples (B - V or 2B - V)
    model_delay: int  # declared ``<method>_delay`` (0 if none)
    compensated: int  # samples removed from the start (0 unless compensate_delay)
    stats: EngineStats
    notes: List[str] = field(default_factory=list)  # what the caller should be told (a downmix, unused channels)


def render_array(model: "ModelSource | LoadedModel", method: str, signals: np.ndarray, buffer_size: Optional[int] = None,
                 vector_size: int = 64, batch: int = 1, threaded: bool = False, compensate_delay: bool = False,
                 sample_rate: int = 44100, attributes: Optional[Dict[str, Sequence[object]]] = None) -> RenderResult:
    """Stream ``signals`` ``(inlets, time)`` (nn~ inlet order) through ``method``.

    Without ``compensate_delay`` the output has the input's length and lags it by the host latency
    and the model's own delay, as in nn~. With it, the input is followed by enough zeros and the
    first ``latency + declared delay`` output samples are dropped, so output aligns with input.
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    for name, values in (attributes or {}).items():
        loaded.set_attribute(name, list(values))
    signals = np.atleast_2d(np.asarray(signals, dtype=np.float32))
    length = signals.shape[1]
    with StreamEngine(loaded, method, buffer_size, vector_size, batch, threaded, sample_rate) as engine:
        model_delay = engine.info.delay or 0
        skip = engine.latency + model_delay if compensate_delay else 0
        total = length + skip
        padded_length = -(-total // vector_size) * vector_size
        padded = np.zeros((signals.shape[0], padded_length), dtype=np.float32)
        padded[:, :length] = signals
        output = engine.process(padded)[:, skip:skip + length]
        return RenderResult(output, engine.latency, model_delay, skip, engine.stats)


def check_finite(output: np.ndarray, what: str) -> None:
    """Raise :class:`NonFiniteOutputError` if ``output`` ``(outlets, time)`` holds NaN or Inf, saying where."""
    bad = ~np.isfinite(output)
    if bad.any():
        outlet, sample = (int(i[0]) for i in np.nonzero(bad))
        raise NonFiniteOutputError(f"{what}: the model output {int(bad.sum())} non-finite sample(s) (NaN/Inf), the "
                                   f"first at sample {sample} of outlet {outlet}; nothing written")


def fit_channels(signals: np.ndarray, inlets: int, method: str, source: str) -> Tuple[np.ndarray, List[str]]:
    """Match a file's channels ``(channels, time)`` to a method's ``inlets``, and say what was done.

    Several channels into one inlet are mixed to mono (their mean, as training reads files; the host may not
    import ``vschaos.data``, so the mean is taken here). Otherwise channels feed the inlets in order: extra
    channels are unused and missing inlets get silence, each said in one note.
    """
    channels = signals.shape[0]
    if channels > 1 and inlets == 1:
        return (signals.mean(axis=0, keepdims=True),
                [f"{source}: {channels} channels mixed to mono (their mean, as training does) for the one inlet "
                 f"of method '{method}'"])
    if channels > inlets:
        return signals, [f"{source}: channels {inlets + 1}..{channels} not used (method '{method}' has {inlets} "
                         f"inlets)"]
    if channels < inlets:
        return signals, [f"{source}: {channels} channel(s) for {inlets} inlets of method '{method}': inlets "
                         f"{channels + 1}..{inlets} get silence"]
    return signals, []


def _resample(signals: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(signals)), int(from_rate), int(to_rate)).numpy()


def render(model: "ModelSource | LoadedModel", method: str, input_path: str, output_path: str,
           buffer_size: Optional[int] = None, vector_size: int = 64, batch: int = 1, threaded: bool = False,
           compensate_delay: bool = False, attributes: Optional[Dict[str, Sequence[object]]] = None,
           subtype: str = "FLOAT", resample: bool = False) -> RenderResult:
    """Read ``input_path`` (channels feed the inlets in order), stream it, write ``output_path``.

    Outlets become the output file's channels (control signals included, as audio-rate
    sample-and-hold). Written as 32-bit float by default so control values are not clipped.

    Sample rate: nn~ never resamples, and a model run at another rate than it was trained at plays at the
    wrong speed and pitch. So a file whose rate differs from the rate the model exposes is refused
    (HostError naming both) unless the model has ``set_sample_rate`` (it is told the file's rate, as nn~
    does) or ``resample`` is set: then the input is resampled to the model's rate and the output is
    written at the model's rate. An output holding NaN or Inf is never written
    (:class:`NonFiniteOutputError`).

    Channels: see :func:`fit_channels` (a stereo file into one inlet is mixed to mono); ``result.notes`` says
    what was done. Files: names need not be UTF-8 (shown with ``\\xNN`` escapes). The output is written
    atomically (a failed write leaves no partial file and keeps an older one) and refused before any work
    (:class:`HostError`, one line naming the path) when it is the input or the model file, a folder, under a
    file, in a folder that is not writable, or has no sound file extension.
    """
    import soundfile as sf

    shown = printable(input_path)
    if not os.path.exists(input_path):
        raise HostError(f"input file not found: {shown}")
    problem = not_regular_problem(input_path)  # reading a FIFO would wait for a writer forever
    if problem is not None:
        raise HostError(f"cannot read {shown} as a sound file: {problem}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    check_output(output_path, (input_path, loaded.path))
    file_format = sound_format(output_path, subtype)
    info = loaded.description.method(method)
    try:
        audio, sample_rate = sf.read(soundfile_name(input_path), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, OSError) as error:  # soundfile's errors for a bad file
        raise HostError(f"cannot read {shown} as a sound file: {printable(str(error))}") from None
    signals, notes = fit_channels(audio.T, info.in_channels * batch, method, shown)
    model_rate = loaded.description.sample_rate
    if model_rate and int(sample_rate) != model_rate and not loaded.description.has_set_sample_rate:
        if not resample:
            raise HostError(f"{shown} is at {int(sample_rate)} Hz but the model runs at {model_rate} Hz "
                            f"(nn~ does not resample: it would play at the wrong speed and pitch); pass "
                            f"--resample to convert the input to {model_rate} Hz")
        signals = _resample(signals, int(sample_rate), model_rate)
        sample_rate = model_rate
    result = render_array(loaded, method, signals, buffer_size, vector_size, batch, threaded, compensate_delay,
                          int(sample_rate), attributes)
    check_finite(result.output, f"render {shown} through {method}")
    samples = result.output.T

    def write(temporary: str) -> None:  # a temporary name has no sound extension: the format is given
        sf.write(soundfile_name(temporary), samples, int(sample_rate), subtype=subtype, format=file_format)

    try:
        atomic_write(output_path, write)
    except OSError as error:
        raise write_error(output_path, error) from None
    except (RuntimeError, ValueError, TypeError) as error:  # soundfile's own refusals
        raise HostError(f"cannot write {printable(output_path)}: {printable(str(error))}") from None
    result.notes = notes + result.notes
    return result
