"""Render audio through a method exactly as nn~ would, offline and fast."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from .engine import EngineStats, StreamEngine
from .errors import HostError, NonFiniteOutputError
from .model import LoadedModel, ModelSource, load_model


@dataclass
class RenderResult:
    """Output signals ``(outlets, time)`` in nn~ outlet order, plus what shaped them."""

    output: np.ndarray
    latency: int  # host latency in samples (B - V or 2B - V)
    model_delay: int  # declared ``<method>_delay`` (0 if none)
    compensated: int  # samples removed from the start (0 unless compensate_delay)
    stats: EngineStats


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
    """
    import soundfile as sf

    if not os.path.exists(input_path):
        raise HostError(f"input file not found: {input_path}")
    try:
        audio, sample_rate = sf.read(input_path, dtype="float32", always_2d=True)
    except Exception as error:
        raise HostError(f"cannot read {input_path} as a sound file: {error}") from None
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    signals = audio.T
    model_rate = loaded.description.sample_rate
    if model_rate and int(sample_rate) != model_rate and not loaded.description.has_set_sample_rate:
        if not resample:
            raise HostError(f"{input_path} is at {int(sample_rate)} Hz but the model runs at {model_rate} Hz "
                            f"(nn~ does not resample: it would play at the wrong speed and pitch); pass "
                            f"--resample to convert the input to {model_rate} Hz")
        signals = _resample(signals, int(sample_rate), model_rate)
        sample_rate = model_rate
    result = render_array(loaded, method, signals, buffer_size, vector_size, batch, threaded, compensate_delay,
                          int(sample_rate), attributes)
    check_finite(result.output, f"render {input_path} through {method}")
    directory = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(directory, exist_ok=True)
    try:
        sf.write(output_path, result.output.T, int(sample_rate), subtype=subtype)
    except Exception as error:
        raise HostError(f"cannot write {output_path}: {error}") from None
    return result
