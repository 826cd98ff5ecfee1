"""Note predictor that reads the spectrum itself (pitch class or octave of a frame), not the latent.

A predictor on the latent of a small VAE learns which pitches the training notes had, not what pitch is:
it rarely names the notes of unseen instruments (docs/PITCH.md "Predictors"; ``python -m
experiments.pitch_following`` scores both kinds).
This one looks at the frame's magnitudes on a logarithmic frequency axis, with the energy at a few
harmonics of each candidate stacked as channels (a partial at ``h * f0`` for h = 1/2, 1, 2, ... 6). A
small convolution along that axis scores every candidate pitch (1/3 semitone apart); the score of a note
is the best of its three candidates, and the classes fold the notes: a pitch class takes the best of its
octaves, an octave the best of its twelve notes. The convolution's weights are shared along frequency, so
a harmonic pattern learned at one pitch is recognised at the others, and the log-magnitudes are relative
to the frame's loudest band, so a note is recognised at any level.

A pitch change is a translation on that axis where its bands are wider than the DGT's bins (above
~50 bins: ~1.1 kHz at 44.1 kHz / 2048 points); below, the bands interpolate between bins and the
low partials move only approximately, so the upper harmonic channels carry the exact pitch there.
"""
import math

import torch
from torch import Tensor, nn

FOLDS = ("pitch_class", "octave")
# partials stacked as input channels: a candidate f0 sees the energy at these multiples of itself
HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
FLOOR = 1e-4  # band energies below 1e-4 of the frame's loudest band read as the floor (-80 dB)
UNREACHABLE_LOGIT = -30.0  # classes outside the candidate range (e.g. octave -1) are never predicted


def log_frequency_weights(n_fft: int, sample_rate: int, centres_hz: Tensor) -> Tensor:
    """``(n_fft // 2 + 1, len(centres))`` weights: column j is a triangle centred on ``centres_hz[j]`` over
    the linear bins, reaching zero at the next centre (half-width = the log axis's spacing there), never
    narrower than one bin (then it interpolates linearly between the two nearest bins). Columns sum to 1;
    a centre above Nyquist gets an all-zero column."""
    bin_hz = sample_rate / float(n_fft)
    bins_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * bin_hz
    centres = centres_hz.double()
    spacing = torch.empty_like(centres)
    spacing[:-1] = centres[1:] - centres[:-1]
    spacing[-1] = spacing[-2] if len(centres) > 1 else bin_hz
    width = torch.clamp(spacing, min=bin_hz)
    weights = torch.clamp(1.0 - (bins_hz[:, None] - centres[None, :]).abs() / width[None, :], min=0.0)
    weights[:, centres > sample_rate / 2.0] = 0.0
    total = weights.sum(0, keepdim=True)
    return torch.where(total > 0, weights / total.clamp(min=1e-12), weights).float()


def relative_to_row_peak(x: Tensor) -> Tensor:
    """``x`` ``(batch, n)`` >= 0 divided by each row's maximum; an all-zero row stays zero (no 0/0, in any
    float dtype: a small clamp such as 1e-30 is 0 in float16)."""
    peak = x.amax(dim=-1, keepdim=True)
    positive = peak > 0
    return torch.where(positive, x / torch.where(positive, peak, torch.ones_like(peak)), torch.zeros_like(x))


class SpectrumNotePredictor(nn.Module):
    """Linear magnitudes ``(batch, n_fft // 2 + 1)`` -> class logits ``(batch, n_classes)`` of the frame's note.

    Args (defaults in brackets):
        n_fft, sample_rate: the spectral front end's (``transform.n_fft``, ``transform.sample_rate``).
        n_classes: 12 for ``fold="pitch_class"`` (ids ``midi % 12``), 11 for ``fold="octave"`` (``midi // 12``),
            as ``extract_pitch.py`` labels them (``vschaos.notes``).
        fold: ``pitch_class`` or ``octave``.
        midi_low, midi_high: range of candidate notes [24 (C1) .. 108 (C8)]; classes out of it score
            ``UNREACHABLE_LOGIT``.
        channels: width of the two hidden convolutions [16]. kernel_size: of those two (odd) [5].
        bins_per_semitone: resolution of the log axis (odd, so that a note's middle candidate is its exact
            frequency) [3].
    """

    def __init__(self, n_fft: int, sample_rate: int, n_classes: int, fold: str = "pitch_class",
                 midi_low: int = 24, midi_high: int = 108, channels: int = 16, bins_per_semitone: int = 3,
                 kernel_size: int = 5):
        super().__init__()
        if fold not in FOLDS:
            raise ValueError(f"SpectrumNotePredictor fold must be one of {FOLDS}, got {fold!r}")
        expected = 12 if fold == "pitch_class" else 11
        if int(n_classes) != expected:
            raise ValueError(f"SpectrumNotePredictor fold {fold!r} predicts {expected} classes (as extract_pitch.py "
                             f"labels them), but the task has dim {n_classes}")
        if not 0 <= midi_low < midi_high <= 127:
            raise ValueError(f"SpectrumNotePredictor needs 0 <= midi_low < midi_high <= 127, got "
                             f"{midi_low}..{midi_high}")
        for name, value in (("bins_per_semitone", bins_per_semitone), ("kernel_size", kernel_size)):
            if int(value) != value or value < 1 or value % 2 == 0:
                raise ValueError(f"SpectrumNotePredictor {name} must be an odd whole number >= 1, got {value}")
        if int(channels) != channels or channels < 1:
            raise ValueError(f"SpectrumNotePredictor channels must be a whole number >= 1, got {channels}")
        self.n_classes = int(n_classes)
        self.per_semitone = int(bins_per_semitone)
        self.midi_low, self.midi_high = int(midi_low), int(midi_high)
        self.n_notes = self.midi_high - self.midi_low + 1
        offsets = [round(12 * self.per_semitone * math.log2(h)) for h in HARMONICS]
        below, above = -min(offsets), max(offsets)
        # the convolutions are unpadded ("valid"): each side of the candidates needs this many more positions,
        # read from the spectrum itself (zero padding would read as the loudest band on this log scale)
        margin = 2 * (int(kernel_size) // 2) + 1
        n_candidates = self.n_notes * self.per_semitone
        n_positions = n_candidates + 2 * margin
        # log axis: from an octave below the first position to 6 harmonics above the last; candidate c of
        # note m lies at m + (c - per_semitone // 2) / per_semitone
        first_midi = self.midi_low - (self.per_semitone // 2 + margin + below) / self.per_semitone
        axis_midi = first_midi + torch.arange(n_positions + below + above, dtype=torch.float64) / self.per_semitone
        centres_hz = 440.0 * 2.0 ** ((axis_midi - 69.0) / 12.0)
        self.register_buffer("band_weights", log_frequency_weights(int(n_fft), int(sample_rate), centres_hz))
        # gather index (harmonics, positions): the log-axis position of each position's h-th partial
        position = torch.arange(n_positions) + below
        self.register_buffer("stack_index", torch.stack([position + o for o in offsets]))
        self.net = nn.Sequential(
            nn.Conv1d(len(HARMONICS), channels, kernel_size), nn.SiLU(),
            nn.Conv1d(channels, channels, kernel_size), nn.SiLU(),
            nn.Conv1d(channels, 1, 3))
        # class of each candidate note, for the fold
        notes = torch.arange(self.midi_low, self.midi_high + 1)
        note_class = notes % 12 if fold == "pitch_class" else notes // 12
        self.register_buffer("fold_matrix", nn.functional.one_hot(note_class, self.n_classes).bool())
        self.fold = fold
        self.floor = FLOOR  # attributes: scripted code cannot read module globals
        self.unreachable_logit = UNREACHABLE_LOGIT

    def log_bands(self, magnitude: Tensor) -> Tensor:
        """``(batch, bins)`` -> log band energies relative to the frame's loudest band ``(batch, axis)``, in
        ``[log FLOOR, 0]``; a silent or non-finite frame reads as the floor everywhere (in any float dtype:
        ratios are taken only where the peak is above zero)."""
        magnitude = torch.nan_to_num(magnitude, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
        scaled = relative_to_row_peak(magnitude)  # first: squaring a large magnitude would overflow
        bands = (scaled * scaled) @ self.band_weights.to(scaled.dtype)
        return torch.log(relative_to_row_peak(bands) + self.floor)

    def note_logits(self, magnitude: Tensor) -> Tensor:
        """``(batch, bins)`` -> one score per candidate note ``midi_low..midi_high`` ``(batch, notes)``."""
        stacked = self.log_bands(magnitude)[:, self.stack_index]  # (batch, harmonics, positions)
        salience = self.net(stacked).squeeze(1)  # (batch, candidates)
        return torch.logsumexp(salience.reshape(salience.shape[0], self.n_notes, self.per_semitone), dim=-1)

    def forward(self, magnitude: Tensor) -> Tensor:
        notes = self.note_logits(magnitude)  # (batch, notes)
        masked = notes.unsqueeze(-1).masked_fill(~self.fold_matrix, self.unreachable_logit)  # (batch, notes, classes)
        return torch.logsumexp(masked, dim=1)
