"""Reading sound files: soundfile for decoding, torchaudio for resampling.

torch and torchaudio are imported by the functions that use them: the dataset tools scan and check files
without loading torch (fast start, small memory).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union

import numpy as np
import soundfile as sf

from vschaos.data.problems import printable, printable_name
from vschaos.filenames import soundfile_name

if TYPE_CHECKING:
    import torch

AUDIO_EXTENSIONS = (".wav", ".aif", ".aiff", ".flac", ".mp3", ".ogg")


#: Largest sample magnitude accepted in a sound file (60 dB above full scale). Float files can hold
#: anything; beyond this they are mis-scaled (a float WAV written in integer units, or garbage), and
#: training on them gives non-finite statistics and weights.
MAX_SAMPLE_MAGNITUDE = 1000.0
# soundfile subtypes that can hold non-finite or out-of-range values (integer PCM cannot)
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_SCAN_BLOCK = 1 << 18  # frames per block when scanning a file's samples


#: Largest resampling filter accepted, in taps. torchaudio's exact rational resampler builds a filter of about
#: ``(to / g) * (from / g)`` taps (``g`` the rates' greatest common divisor), several copies of it at once: rates
#: that share only a small factor (a header claiming 999983 Hz, or 44056 Hz against 44100) would ask for
#: gigabytes, or fail allocating in the middle of a training. Common rates (8, 11.025, 16, 22.05, 32, 44.1, 48,
#: 88.2, 96, 192 kHz) between each other stay far below it.
MAX_RESAMPLE_TAPS = 1 << 24


def resample_problem(file_rate: int, sample_rate: int) -> Optional[str]:
    """Why a file at ``file_rate`` Hz cannot be resampled to ``sample_rate`` Hz, or ``None``: a rate that is not
    positive, or a filter longer than :data:`MAX_RESAMPLE_TAPS`."""
    if int(file_rate) <= 0:
        return f"sample rate {file_rate} Hz in the header is not positive"
    if int(file_rate) == int(sample_rate):
        return None
    common = math.gcd(int(file_rate), int(sample_rate))
    taps = (int(sample_rate) // common) * (int(file_rate) // common)
    if taps > MAX_RESAMPLE_TAPS:
        return (f"its sample rate {file_rate} Hz cannot be resampled to {sample_rate} Hz (the exact filter between "
                f"them has about {taps:.2g} taps, more than {MAX_RESAMPLE_TAPS}): convert the file to a common rate "
                f"(e.g. {sample_rate} Hz) first")
    return None


class AudioReadError(RuntimeError):
    """A sound file could not be read; the message names the file once: ``PATH: REASON``.

    ``path`` and ``reason`` are kept apart so that reports that already print the path (``file: message``
    problem lists) can print the reason alone.
    """

    def __init__(self, path: Union[str, Path], reason: str):
        super().__init__(f"{printable_name(str(path))}: {printable(reason)}")
        self.path = str(path)
        self.reason = reason


def _decode_failure(path: Union[str, Path], what: str, error: Exception) -> AudioReadError:
    # libsndfile's message starts with "Error opening '<path>': "; keep only its reason so the path appears once
    # (it says "System error." for a missing file: name that case)
    if not Path(path).exists():
        return AudioReadError(path, f"cannot read {what} (file not found)")
    try:  # libsndfile says "System error." when the OS refused: ask the OS why (never waiting on a FIFO)
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except OSError as refused:
        return AudioReadError(path, f"cannot read {what} ({refused.strerror or refused})")
    detail = getattr(error, "error_string", None) or str(error).replace(f"'{path}'", "the file")
    return AudioReadError(path, f"cannot read {what} ({detail.strip()})")


# What soundfile raises for a file it cannot decode. Garbage, empty, missing files and directories
# all raise sf.LibsndfileError (a RuntimeError) in soundfile 0.12+; ValueError/TypeError come from
# its format checks, OSError from the OS. Anything else (MemoryError, a bug) is not a bad file
# and propagates unchanged.
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError)


class AudioValueError(AudioReadError):
    """A sound file decodes, but holds NaN/Inf samples or samples beyond ``MAX_SAMPLE_MAGNITUDE``;
    ``reason`` says which (without the file name)."""

    def __init__(self, path: Union[str, Path], reason: str):
        super().__init__(path, reason)


def sample_problem(samples: np.ndarray, first_frame: int = 0) -> Optional[str]:
    """Why ``samples`` (any shape, frames first) cannot be used, or ``None``: non-finite values
    (with the first frame that has one) or a magnitude beyond :data:`MAX_SAMPLE_MAGNITUDE`."""
    finite = np.isfinite(samples)
    if not finite.all():
        frame = int(np.argwhere(~finite)[0][0]) + first_frame
        return f"contains NaN/Inf samples (first at sample {frame})"
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_SAMPLE_MAGNITUDE:
        return (f"sample magnitude {peak:.3g} is beyond {MAX_SAMPLE_MAGNITUDE:g} (full scale is 1): "
                f"rescale the file to about +-1")
    return None


def scan_audio_samples(path: Union[str, Path]) -> Optional[str]:
    """Why a sound file's samples cannot be used (see :func:`sample_problem`), or ``None``. Float
    files are scanned block by block (bounded memory); integer PCM is always in range and is not
    decoded. Raises :class:`AudioReadError` naming the file if it cannot be decoded."""
    try:
        info = sf.info(soundfile_name(path))
        if info.subtype not in _FLOAT_SUBTYPES:
            return None
        position = 0
        for block in sf.blocks(soundfile_name(path), blocksize=_SCAN_BLOCK, dtype="float64", always_2d=True):
            problem = sample_problem(block, position)
            if problem is not None:
                return problem
            position += block.shape[0]
    except _DECODE_ERRORS as error:
        raise _decode_failure(path, "audio", error) from error
    return None


def load_audio(path: Union[str, Path], sample_rate: int) -> torch.Tensor:
    """Read ``path``, downmix to mono and resample to ``sample_rate``.

    Returns a float32 tensor ``(time,)``. Raises :class:`AudioReadError` naming the file (also when its rate
    cannot be resampled to ``sample_rate``, see :func:`resample_problem`; :class:`AudioValueError` when it holds NaN/Inf or absurdly large samples, see :func:`sample_problem`).
    """
    import torch
    import torchaudio.functional as AF

    try:
        data, file_rate = sf.read(soundfile_name(path), dtype="float32", always_2d=True)
    except _DECODE_ERRORS as error:
        raise _decode_failure(path, "audio", error) from error
    problem = sample_problem(data)
    if problem is not None:
        raise AudioValueError(path, problem)
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    problem = resample_problem(file_rate, sample_rate)
    if problem is not None:
        raise AudioReadError(path, problem)
    if file_rate != sample_rate:
        mono = AF.resample(mono, int(file_rate), int(sample_rate))
    return mono.contiguous()


def audio_info(path: Union[str, Path]) -> "sf._SoundFileInfo":
    """Header of a sound file (frames, samplerate, channels) without decoding it."""
    try:
        return sf.info(soundfile_name(path))
    except _DECODE_ERRORS as error:
        raise _decode_failure(path, "audio header", error) from error


def save_audio(path: Union[str, Path], audio: torch.Tensor, sample_rate: int) -> Path:
    """Write ``audio`` ``(time,)`` or ``(channels, time)`` as 32-bit float WAV, atomically.

    The same audio always gives the same bytes: libsndfile adds a PEAK chunk holding the write time to float
    WAVs, so the file is written with scipy's writer, which has no timestamp.
    """
    import scipy.io.wavfile

    from vschaos.io import atomic_write

    array = audio.detach().cpu().float().numpy()
    if array.ndim == 2:
        array = array.T  # scipy wants (time, channels)
    elif array.ndim != 1:
        raise ValueError(f"save_audio expects (time,) or (channels, time) audio, got shape {tuple(array.shape)}")
    array = np.ascontiguousarray(array)
    return atomic_write(path, lambda tmp: scipy.io.wavfile.write(tmp, int(sample_rate), array))


def scan_audio_files(data_dir: Union[str, Path]) -> List[Path]:
    """Every sound file under ``data_dir``, recursively, in sorted (deterministic) order; entries that may not
    be read (links out of the folder that holds ``data_dir``, FIFOs, loops) are left out: see
    :func:`vschaos.data.tree.find_audio_files`, which also says why."""
    from vschaos.data.tree import find_audio_files  # tree needs AUDIO_EXTENSIONS from here

    return find_audio_files(data_dir)[0]
