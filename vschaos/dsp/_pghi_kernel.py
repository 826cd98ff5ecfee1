"""Heap integration kernel of PGHI, compiled with numba when it is installed.

Kept apart from ``functional.py`` so that numba is imported (and the kernel compiled) only when
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
    # ~1-2 s compile happens once per installation, not once per process.
    _jit = numba.njit(cache=True, nogil=True)
except ImportError:  # pure-Python fallback: correct but ~1000x slower
    def _jit(fn):
        return fn


N_LEVELS = 4096  # priority resolution: (max - threshold) / 4096, ~0.003 nepers at tol=1e-5


@_jit
def heap_integrate(log_mag, dphi_time, dphi_freq, threshold, phase):
    """Integrate the phase gradient over one spectrogram, in place.

    log_mag, dphi_time, dphi_freq, phase: float64 ``(frames, bins)``. ``dphi_time`` is the phase
    advance per frame, ``dphi_freq`` per bin (radians). Coefficients with ``log_mag < threshold``
    keep the value already in ``phase`` (the caller fills them with random phase).

    The "heap" is a bucket queue over the log-magnitude quantised to ``N_LEVELS`` levels between
    the threshold and the maximum: push and pop are O(1), so the whole integration is O(N)
    instead of O(N log N); the order differs from an exact max-heap only between coefficients
    within ~0.03 dB of each other, where either order is equally valid.
    """
    n_frames, n_bins = log_mag.shape
    total = n_frames * n_bins
    top = threshold
    for t in range(n_frames):
        for m in range(n_bins):
            if log_mag[t, m] > top:
                top = log_mag[t, m]
    scale = (N_LEVELS - 1) / max(top - threshold, 1e-12)

    level = np.empty(total, dtype=np.int64)
    done = np.zeros(total, dtype=np.bool_)
    count = np.zeros(N_LEVELS, dtype=np.int64)
    for i in range(total):
        value = log_mag[i // n_bins, i % n_bins]
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
        phase[seed // n_bins, seed % n_bins] = 0.0
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
                    tn, mn = t + 1, m
                elif k == 1:
                    tn, mn = t - 1, m
                elif k == 2:
                    tn, mn = t, m + 1
                else:
                    tn, mn = t, m - 1
                if tn < 0 or tn >= n_frames or mn < 0 or mn >= n_bins:
                    continue
                j = tn * n_bins + mn
                if done[j]:
                    continue
                if k == 0:
                    phase[tn, mn] = phase[t, m] + 0.5 * (dphi_time[t, m] + dphi_time[tn, mn])
                elif k == 1:
                    phase[tn, mn] = phase[t, m] - 0.5 * (dphi_time[t, m] + dphi_time[tn, mn])
                elif k == 2:
                    phase[tn, mn] = phase[t, m] + 0.5 * (dphi_freq[t, m] + dphi_freq[tn, mn])
                else:
                    phase[tn, mn] = phase[t, m] - 0.5 * (dphi_freq[t, m] + dphi_freq[tn, mn])
                done[j] = True
                lv = level[j]
                nxt[j] = head[lv]
                head[lv] = j
                if lv > current_level:
                    current_level = lv


def heap_integrate_batch(log_mag, dphi_time, dphi_freq, threshold, phase):
    """:func:`heap_integrate` over a leading batch axis: arrays ``(batch, frames, bins)``,
    ``threshold`` ``(batch,)``."""
    for b in range(log_mag.shape[0]):
        heap_integrate(log_mag[b], dphi_time[b], dphi_freq[b], float(threshold[b]), phase[b])
