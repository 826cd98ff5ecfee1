"""How large a generation may be, computed from the run's front end before any model is loaded: the memory a
trajectory of ``steps`` frames needs, and the size of the filter a resampling to ``--sr`` builds. Each check
raises :class:`GenerationError` with one line naming the argument, what it would need and what is allowed."""
import inspect
import math
import os
from typing import Any, Callable, Optional, Tuple

from vschaos.generation.errors import GenerationError

# Decoding a path and rebuilding its phase hold, at their peak, a few float and complex arrays of
# (frames, bins) (magnitudes, spectra, Griffin-Lim's iterates, the figure's dB image). This bound is over twice
# the peak memory per (frame, bin) each phase method needs (the whole command on the demo preset), a margin that
# also covers the network's own activations.
BYTES_PER_FRAME_BIN = 160
# torchaudio's resampler builds a (new / gcd, old / gcd + 2 * width) filter from a few temporaries of that size
RESAMPLE_BYTES_PER_TAP = 16
RESAMPLE_LOWPASS_WIDTH = 6  # torchaudio's default lowpass_filter_width
RESAMPLE_ROLLOFF = 0.99  # torchaudio's default rolloff
MAX_RESAMPLE_FILTER_BYTES = 256 * 2 ** 20  # sane rate pairs need well under a megabyte


def front_end(cfg: Any, source: str) -> Tuple[int, int, int]:
    """``(sample_rate, n_fft, hop)`` of a run's ``transform`` config (a DictConfig read from ``source``), each
    SpectralTransform's default where absent; GenerationError naming ``source`` when one is not a positive
    integer, or when ``transform.pitch_window`` is neither 0 nor an integer in ``(n_fft, MAX_PITCH_WINDOW]``.
    Reads the config only: builds nothing."""
    from omegaconf import OmegaConf

    from vschaos.dsp.transforms import MAX_PITCH_WINDOW, SpectralTransform

    defaults = inspect.signature(SpectralTransform).parameters
    values = []
    for key in ("sample_rate", "n_fft", "hop"):
        value = OmegaConf.select(cfg, f"transform.{key}", default=defaults[key].default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise GenerationError(f"{source}: transform.{key} is {value!r}, not a positive integer: not a vschaos "
                                  f"run config")
        values.append(value)
    # the pitch latent's longer window (dgt_live): the transform checks its shape, but not its size, and a run
    # folder's window of 10**9 samples took over 20 GB before the model had even loaded
    window = OmegaConf.select(cfg, "transform.pitch_window", default=defaults["pitch_window"].default)
    if isinstance(window, bool) or not isinstance(window, int) or not (window == 0
                                                                      or values[1] < window <= MAX_PITCH_WINDOW):
        raise GenerationError(f"{source}: transform.pitch_window is {window!r}: must be 0 (off) or a length above "
                              f"transform.n_fft ({values[1]}), at most {MAX_PITCH_WINDOW} samples")
    return values[0], values[1], values[2]


def format_bytes(count: float) -> str:
    """``1.5 GB`` (powers of 1000, as a user reads a disk or memory size)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000.0
    return f"{count:.1f} PB"


def format_seconds(seconds: float) -> str:
    """``2 h 05 min``, ``3 min 20 s`` or ``1.5 s``."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else free pages); None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def trajectory_bytes(steps: int, n_fft: int, hop: int, model_rate: int, out_rate: int) -> int:
    """Memory one path of ``steps`` frames needs at its peak: its ``steps + n_fft / hop - 1`` spectral frames of
    ``n_fft / 2 + 1`` bins through decoding and phase reconstruction, and its audio at both rates (float64)."""
    frames = steps + n_fft // hop - 1
    samples = steps * hop
    return frames * (n_fft // 2 + 1) * BYTES_PER_FRAME_BIN + 8 * (samples + math.ceil(samples * out_rate / model_rate))


def _largest_fitting(steps: int, need: Callable[[int], int], available: int) -> int:
    """The largest ``n <= steps`` with ``need(n) <= available`` (0 if none): ``need`` grows with ``n``, so bisect."""
    fits, too_long = 0, steps
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if need(middle) <= available:
            fits = middle
        else:
            too_long = middle
    return fits


def check_trajectory_length(steps: int, *, n_fft: int, hop: int, model_rate: int, out_rate: int,
                            available: Optional[int] = None) -> None:
    """Refuse ``-s steps`` whose path would need more memory than is available (``available`` bytes; default
    :func:`available_memory`; unknown: not checked), naming the largest ``-s`` that fits."""
    def need_of(n: int) -> int:
        return trajectory_bytes(n, n_fft, hop, model_rate, out_rate)

    shortfall = _shortfall(steps, need_of, available)
    if shortfall is None:
        return
    need, available, fits = shortfall
    allowed = (f"at most -s {fits} ({format_seconds(fits * hop / model_rate)}) with this model here" if fits
               else "not even -s 1 fits: free some memory")
    raise GenerationError(f"-s {steps}: a path of {steps} frames ({format_seconds(steps * hop / model_rate)} at "
                          f"{model_rate} Hz) needs about {format_bytes(need)} of memory to decode and reconstruct, "
                          f"{format_bytes(available)} are available; {allowed}")


def _shortfall(n: int, need_of: Callable[[int], int],
               available: Optional[int]) -> Optional[Tuple[int, int, int]]:
    """``(need of n, available, the largest n that fits)`` when ``n`` needs more than ``available`` bytes (default
    :func:`available_memory`), else None (also when the memory available is unknown)."""
    need = need_of(n)
    if available is None:
        available = available_memory()
    if available is None or need <= available:
        return None
    return need, available, _largest_fitting(n, need_of, available)


def check_input_length(label: str, samples: int, rate: int, *, n_fft: int, hop: int, model_rate: int,
                       out_rate: int, available: Optional[int] = None) -> None:
    """Refuse a sound of ``samples`` at ``rate`` (named ``label``) whose reconstruction would need more memory than
    is available (as :func:`check_trajectory_length`: its frames at the model's rate, and the file's own samples
    as read), naming the longest sound that fits."""
    def need_of(n: int) -> int:
        steps = math.ceil(n * model_rate / rate / hop)
        return trajectory_bytes(steps, n_fft, hop, model_rate, out_rate) + 8 * n

    shortfall = _shortfall(samples, need_of, available)
    if shortfall is None:
        return
    need, available, fits = shortfall
    raise GenerationError(f"{label}: {format_seconds(samples / rate)} of sound needs about {format_bytes(need)} of "
                          f"memory to reconstruct, {format_bytes(available)} are available: split it into pieces of "
                          f"at most {format_seconds(fits / rate)}")


def resample_filter_bytes(source_rate: int, target_rate: int) -> int:
    """Memory torchaudio's resampler takes to build its filter from ``source_rate`` to ``target_rate`` (0: none)."""
    if source_rate == target_rate:
        return 0
    common = math.gcd(int(source_rate), int(target_rate))
    old, new = source_rate // common, target_rate // common
    width = math.ceil(RESAMPLE_LOWPASS_WIDTH * old / (min(old, new) * RESAMPLE_ROLLOFF))
    return new * (old + 2 * width) * RESAMPLE_BYTES_PER_TAP


def check_sample_rate(source_rate: int, target_rate: int, label: str, advice: str) -> None:
    """Refuse (``label: ...; advice``) a resampling whose filter would be huge: rates that share almost no common
    factor (44101 against 22050 Hz)."""
    need = resample_filter_bytes(source_rate, target_rate)
    if need > MAX_RESAMPLE_FILTER_BYTES:
        raise GenerationError(f"{label}: resampling {source_rate} Hz to {target_rate} Hz builds a filter of about "
                              f"{format_bytes(need)} (the two rates share only the factor "
                              f"{math.gcd(source_rate, target_rate)}); {advice}")
