"""How far the Neutone plugin's own resampling moves a model's pitch, per DAW sample rate and buffer size.

The plugin resamples each DAW buffer to the model's rate on its own, and rounds the resampled length up
(``SampleQueueWrapper.calc_resampled_buffer_size``): at 48 kHz / 64 a 22.05 kHz model gets 30 samples for
29.4 samples' worth of time, so what it writes plays 2 % fast. This bench puts a 440 Hz oscillator at the
model's rate in the plugin (the same shell as ``neutone_speed.py``'s floor), streams it at each DAW setting and
reads the pitch that comes out: the error every model with a fixed pitch (the note knob, a pitch-conditioned
decoder) shows in a DAW, which no model can correct from the inside.

Usage: ``python -m bench.neutone_pitch [--rates 22050 44100] [--name NAME]``. Writes
``bench/results/<name>.{json,md}``.
"""
import argparse
import math
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from neutone_sdk.utils import load_neutone_model
from torch import Tensor, nn

from bench.common import RESULTS_DIR, start_run, write_results
from bench.neutone_speed import save_shell
from neutone_sdk.sqw import SampleQueueWrapper
from vschaos.export.neutone_checks import stream_file_model

TONE_HZ = 440.0
DAW_SETTINGS = [(rate, buffer) for rate in (44100, 48000, 96000) for buffer in (32, 64, 128, 256, 512, 1024, 2048)]
RATES = (22050, 44100)  # the presets' rates


class _Oscillator(nn.Module):
    """A sine of ``TONE_HZ`` at ``sample_rate`` whatever the input: float64 phase carried across calls."""
    step: float

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.step = 2.0 * math.pi * TONE_HZ / float(sample_rate)
        self.register_buffer("phase", torch.zeros(1, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        phases = self.phase + self.step * torch.arange(1, x.shape[1] + 1, dtype=torch.float64)
        self.phase.copy_(torch.remainder(phases[-1:], 2.0 * math.pi))
        return (0.5 * torch.sin(phases)).to(x.dtype).unsqueeze(0)


def resampling_pitch_cents(native_rates: List[int], daw_rate: int, daw_buffer: int) -> float:
    """How many cents sharp the plugin plays a pitch a model makes at this DAW setting when it resamples itself:
    0 at a native rate (or with an empty list: any rate); at another it resamples each DAW buffer on its own to the
    nearest native rate and to the length the SDK rounds up (``calc_resampled_buffer_size``), so the model runs
    that much fast."""
    rate = SampleQueueWrapper.select_best_model_sr(daw_rate, native_rates)
    resampled = SampleQueueWrapper.calc_resampled_buffer_size(daw_rate, rate, daw_buffer)
    return 1200.0 * math.log2(resampled * daw_rate / (rate * daw_buffer))


def played_hz(model, daw_rate: int, daw_buffer: int, seconds: float = 4.0) -> float:
    """The frequency of the plugin's output (the strongest partial, zero-padded FFT, first second skipped)."""
    n = int(seconds * daw_rate) // daw_buffer * daw_buffer
    out = stream_file_model(model, torch.zeros(1, n), daw_rate, daw_buffer)[0, daw_rate:].double().numpy()
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out)), 8 * len(out)))
    return float(np.fft.rfftfreq(8 * len(out), 1.0 / daw_rate)[spectrum.argmax()])


def measure(model_rate: int, folder: Path) -> List[Dict[str, float]]:
    """The tone through the plugin's own resampling (one native rate, as our exports had until they resampled
    themselves) and through our wrapper (every common DAW rate native, resampled inside), per DAW setting."""
    plugin_path = save_shell(_Oscillator(model_rate), folder / f"tone_{model_rate}_sdk.nm", [model_rate], [])
    ours_path = save_shell(_Oscillator(model_rate), folder / f"tone_{model_rate}_ours.nm", [model_rate], [], hop=256)
    plugin, _ = load_neutone_model(str(plugin_path))
    ours, _ = load_neutone_model(str(ours_path))
    rows = []
    for daw_rate, daw_buffer in DAW_SETTINGS:
        sdk_hz, ours_hz = played_hz(plugin, daw_rate, daw_buffer), played_hz(ours, daw_rate, daw_buffer)
        rows.append({"model_rate": model_rate, "daw_rate": daw_rate, "daw_buffer": daw_buffer,
                     "sdk_hz": sdk_hz, "sdk_cents": 1200.0 * math.log2(sdk_hz / TONE_HZ),
                     "predicted_cents": resampling_pitch_cents([model_rate], daw_rate, daw_buffer),
                     "ours_hz": ours_hz, "ours_cents": 1200.0 * math.log2(ours_hz / TONE_HZ)})
    return rows


def main(argv: Optional[List[str]] = None) -> List[Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", type=int, default=list(RATES), choices=RATES,
                        help="model sample rates (default: both presets' rates)")
    parser.add_argument("--name", default="neutone_pitch", help="results file name (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    run = start_run(__file__)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        rows = [row for rate in args.rates for row in measure(rate, Path(folder))]
    lines = [f"A {TONE_HZ:g} Hz tone at the model's rate, played by the Neutone plugin\n",
             "| model rate | DAW rate / buffer | plugin's resampling: cents | predicted from its rounding "
             "| our wrapper's: cents |",
             "|---:|---|---:|---:|---:|"]
    lines += [f"| {r['model_rate']} | {r['daw_rate']} / {r['daw_buffer']} | {r['sdk_cents']:+.1f} "
              f"| {r['predicted_cents']:+.1f} | {r['ours_cents']:+.2f} |" for r in rows]
    md = "\n".join(lines) + "\n"
    write_results(args.name, {"tone_hz": TONE_HZ, "rows": rows}, md, args.out, run=run)
    print(md)
    return rows


if __name__ == "__main__":
    main()
