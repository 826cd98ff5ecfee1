"""Heap integration kernel of PGHI, compiled with numba when it is installed.

Kept apart from ``phase.py`` so that numba is imported (and the kernel compiled) only when
offline phase reconstruction is first used, never on the TorchScript/export path.

Algorithm: Prusa, Balazs, Sondergaard, "A noniterative method for reconstruction of phase from
STFT magnitude", IEEE/ACM TASLP 25(5), 2017, Algorithm 1 (heap integration of the phase
gradient, largest coefficients first, trapezoidal rule between neighbours), with the max-heap
replaced by a bucket queue over quantised log-magnitude (same order up to ~0.03 dB ties).
"""
import numpy as np

try:
    import numba

    # cache=True writes the compiled kernel next to this file (or numba's user cache), so the
    # compile happens once per installation, not once per process.
    _jit = numba.njit(cache=True, nogil=True)
except ImportError:  # pure-Python fallback: correct, but its loops run in the interpreter (far slower)
    def _jit(fn):
        return fn


N_LEVELS = 4096  # priority resolution: (max - threshold) / 4096, ~0.003 nepers at tol=1e-5


@_jit
def heap_integrate(log_mag, dphi_time, dphi_freq, threshold, phase):
    """Integrate the phase gradient over one spectrogram, in place.

    log_mag, dphi_time, dphi_freq, phase: C-contiguous float64 ``(frames, bins)``. ``dphi_time`` is the phase
    advance per frame, ``dphi_freq`` per bin (radians). Coefficients with ``log_mag < threshold``
    keep the value already in ``phase`` (the caller fills them with random phase).

    The "heap" is a bucket queue over the log-magnitude quantised to ``N_LEVELS`` levels between
    the threshold and the maximum: push and pop are O(1), so the whole integration is O(N)
    instead of O(N log N); the order differs from an exact max-heap only between coefficients
    within ~0.03 dB of each other, where either order is equally valid.
    """
    n_frames, n_bins = log_mag.shape
    total = n_frames * n_bins
    # Flat views (the arrays are C-contiguous): the set-up loops then need no index division,
    # and a neighbour is an offset of +-1 (bin) or +-n_bins (frame).
    log_flat = log_mag.reshape(total)
    time_flat = dphi_time.reshape(total)
    freq_flat = dphi_freq.reshape(total)
    phase_flat = phase.reshape(total)
    top = threshold
    for i in range(total):
        if log_flat[i] > top:
            top = log_flat[i]
    scale = (N_LEVELS - 1) / max(top - threshold, 1e-12)

    level = np.empty(total, dtype=np.int64)
    done = np.zeros(total, dtype=np.bool_)
    count = np.zeros(N_LEVELS, dtype=np.int64)
    for i in range(total):
        value = log_flat[i]
        if value < threshold:
            done[i] = True
            level[i] = -1
        else:
            lv = int((value - threshold) * scale)
            level[i] = lv
            count[lv] += 1
    # Seeds in decreasing level order (counting sort), consumed lazily as islands run out.
    start = np.empty(N_LEVELS, dtype=np.int64)
    acc = 0
    for lv in range(N_LEVELS - 1, -1, -1):
        start[lv] = acc
        acc += count[lv]
    n_seeds = acc
    seeds = np.empty(n_seeds, dtype=np.int64)
    fill = start.copy()
    for i in range(total):
        if level[i] >= 0:
            seeds[fill[level[i]]] = i
            fill[level[i]] += 1

    # Bucket queue: one LIFO linked list per level.
    head = np.full(N_LEVELS, -1, dtype=np.int64)
    nxt = np.empty(total, dtype=np.int64)
    seed_pos = 0
    while True:
        while seed_pos < n_seeds and done[seeds[seed_pos]]:
            seed_pos += 1
        if seed_pos == n_seeds:
            break
        seed = seeds[seed_pos]
        # Next island: the largest coefficient not reached yet keeps phase 0.
        done[seed] = True
        phase_flat[seed] = 0.0
        current_level = level[seed]
        head[current_level] = seed
        nxt[seed] = -1
        while current_level >= 0:
            current = head[current_level]
            if current < 0:
                current_level -= 1
                continue
            head[current_level] = nxt[current]
            t = current // n_bins
            m = current - t * n_bins
            # Four neighbours: next/previous frame (time gradient), next/previous bin (frequency),
            # trapezoidal rule between the two gradients.
            for k in range(4):
                if k == 0:
                    if t + 1 >= n_frames:
                        continue
                    j = current + n_bins
                elif k == 1:
                    if t == 0:
                        continue
                    j = current - n_bins
                elif k == 2:
                    if m + 1 >= n_bins:
                        continue
                    j = current + 1
                else:
                    if m == 0:
                        continue
                    j = current - 1
                if done[j]:
                    continue
                if k == 0:
                    phase_flat[j] = phase_flat[current] + 0.5 * (time_flat[current] + time_flat[j])
                elif k == 1:
                    phase_flat[j] = phase_flat[current] - 0.5 * (time_flat[current] + time_flat[j])
                elif k == 2:
                    phase_flat[j] = phase_flat[current] + 0.5 * (freq_flat[current] + freq_flat[j])
                else:
                    phase_flat[j] = phase_flat[current] - 0.5 * (freq_flat[current] + freq_flat[j])
                done[j] = True
                lv = level[j]
                nxt[j] = head[lv]
                head[lv] = j
                if lv > current_level:
                    current_level = lv


# --------------------------------------------------------------------------------------------
# Fast Griffin-Lim: magnitude projection and momentum in one pass
# --------------------------------------------------------------------------------------------
#
# With torch ops the projection ``X * mag / |X|`` and the momentum step take five full passes
# over the complex spectrogram per iteration (abs, divide, broadcast multiply, lerp, plus the
# real-to-complex promotion of ``mag``), which cost more than the two FFTs. One fused loop
# reads each coefficient once. Arrays are the interleaved (re, im) float views of contiguous
# complex tensors, so the same kernel serves complex64 and complex128.

@_jit
def gla_project_momentum(spec, mag, previous, weight):
    """One fast Griffin-Lim update, in place.

    spec: float ``(2 n,)`` interleaved consistent spectrum ``X``; becomes the projection
    ``current = mag * X / |X|`` (0 where ``X == 0``, as ``mag * sgn(X)``).
    mag: float ``(n,)`` target magnitude. previous: float ``(2 n,)`` the previous projection;
    becomes the next estimate ``previous + weight * (current - previous)`` (``weight = 1 +
    momentum`` gives ``current + momentum * (current - previous)``).
    """
    for i in range(mag.shape[0]):
        re = spec[2 * i]
        im = spec[2 * i + 1]
        norm = np.sqrt(re * re + im * im)
        if norm > 0.0:  # norm == 0 means re == im == 0: the projection stays 0
            scale = mag[i] / norm
            re = re * scale
            im = im * scale
        spec[2 * i] = re
        spec[2 * i + 1] = im
        previous[2 * i] += weight * (re - previous[2 * i])
        previous[2 * i + 1] += weight * (im - previous[2 * i + 1])


@_jit
def project_magnitude(spec, mag):
    """``spec <- mag * X / |X|`` in place (interleaved like :func:`gla_project_momentum`); where
    ``X == 0`` the result is ``mag`` (phase 0), as ``polar(mag, angle(X))`` gives."""
    for i in range(mag.shape[0]):
        re = spec[2 * i]
        im = spec[2 * i + 1]
        norm = np.sqrt(re * re + im * im)
        if norm > 0.0:
            scale = mag[i] / norm
            spec[2 * i] = re * scale
            spec[2 * i + 1] = im * scale
        else:
            spec[2 * i] = mag[i]
            spec[2 * i + 1] = 0.0


# --------------------------------------------------------------------------------------------
# PGHI pre- and post-processing in one pass each
# --------------------------------------------------------------------------------------------
#
# phase.phase_derivatives (torch, also used by the streaming RTPGHI) builds the two
# gradients with ~10 full-array passes (padding copies, differences, scalings); offline PGHI
# computes the same values here in one loop over the spectrogram.

@_jit
def phase_gradient(log_mag, time_scale, freq_scale, bin_advance, dphi_time, dphi_freq):
    """Offline phase gradient of one spectrogram, same values as
    ``phase.phase_derivatives`` (centred differences; symmetric at DC/Nyquist along bins,
    one-sided at the first/last frame):

    ``dphi_time[t, m] = bin_advance * m + time_scale * ds/dm`` and
    ``dphi_freq[t, m] = freq_scale * ds/dt`` with ``s = log_mag`` float64 ``(frames, bins)``.
    """
    n_frames, n_bins = log_mag.shape
    for t in range(n_frames):
        for m in range(n_bins):
            # bins: neighbours mirrored at the ends (log_mag[-1] = log_mag[1], etc.)
            below = log_mag[t, m - 1] if m > 0 else log_mag[t, 1]
            above = log_mag[t, m + 1] if m < n_bins - 1 else log_mag[t, n_bins - 2]
            dphi_time[t, m] = bin_advance * m + time_scale * (0.5 * (above - below))
            if n_frames < 2:
                slope = 0.0
            elif t == 0:
                slope = log_mag[1, m] - log_mag[0, m]
            elif t == n_frames - 1:
                slope = log_mag[t, m] - log_mag[t - 1, m]
            else:
                slope = 0.5 * (log_mag[t + 1, m] - log_mag[t - 1, m])
            dphi_freq[t, m] = freq_scale * slope


@_jit
def wrap_phase_inplace(phase):
    """``phase <- remainder(phase + pi, 2 pi) - pi`` in place (any shape), into ``[-pi, pi)``."""
    flat = phase.reshape(-1)
    two_pi = 2.0 * np.pi
    for i in range(flat.shape[0]):
        # a - b floor(a / b) (what torch.remainder computes) instead of Python's %, which numba
        # implements with a slow fmod; the two checks keep rounding from leaving [0, 2 pi)
        shifted = flat[i] + np.pi
        r = shifted - two_pi * np.floor(shifted / two_pi)
        if r < 0.0:
            r += two_pi
        elif r >= two_pi:
            r -= two_pi
        flat[i] = r - np.pi
