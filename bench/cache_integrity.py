"""Cost of the spectral cache's integrity checks, ``dgt_mid`` front end.

Builds a cache for a synthetic dataset (``--files`` files of ``--seconds`` s at 44.1 kHz, 16-bit WAV),
then times, as medians of ``--repeats`` interleaved rounds:

* ``open (verified)``: ``load_or_build_cache`` on the existing cache, what every fit pays once: the
  fingerprint (stat + content digest of each audio file), the index, the CRC-32 of every file's block of
  ``magnitudes.npy`` and of ``stats.npy``;
* ``block CRC-32 alone`` and ``content digests alone`` (the two checks of content), and ``stat only`` (a
  fingerprint of file sizes and times alone, for scale);
* the build itself, once, for scale.

The cache file is read from the page cache after the first round (a cold disk adds its read time, which
the training's first epoch would otherwise pay). Usage: ``python -m bench.cache_integrity [--files 40
--seconds 15 --repeats 5] [--busy]``. Writes ``bench/results/cache_integrity[_busy].{json,md}``.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vschaos.data.cache import block_checksums, content_digest, load_or_build_cache
from vschaos.data.dataset import load_index
from vschaos.dsp.transforms import SpectralTransform

from bench.common import busy_argument, competing_process, interleaved_medians, start_run, test_sound, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=5)
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    torch.set_num_threads(1)
    transform = SpectralTransform(sample_rate=44100, n_fft=2048, hop=512)
    with tempfile.TemporaryDirectory() as tmp, competing_process(args.busy):
        root = Path(tmp) / "ds"
        (root / "data").mkdir(parents=True)
        sound = test_sound(args.seconds, transform.sample_rate).numpy()
        for i in range(args.files):
            sf.write(str(root / f"data/f{i:03d}.wav"), np.roll(sound, 977 * i), transform.sample_rate, subtype="PCM_16")
        files = load_index(root).files
        start = time.perf_counter()
        cache = load_or_build_cache(transform, files, root, progress=False)
        build_seconds = time.perf_counter() - start
        magnitudes_bytes = (cache.directory / "magnitudes.npy").stat().st_size
        audio_bytes = sum(os.path.getsize(f.path) for f in files)

        timings = interleaved_medians({
            "open (verified)": lambda: load_or_build_cache(transform, files, root, progress=False),
            "block CRC-32 alone": lambda: block_checksums(cache.magnitudes, cache.offsets),
            "content digests alone": lambda: [content_digest(f.path, f.path.stat().st_size) for f in files],
            "stat only": lambda: [f.path.stat() for f in files],
        }, args.repeats)

    audio_minutes = args.files * args.seconds / 60.0
    rows = [(name, t["seconds"], t["cpu_seconds"]) for name, t in timings.items()]
    crc = timings["block CRC-32 alone"]["seconds"]
    data = {"files": args.files, "seconds_per_file": args.seconds, "audio_minutes": audio_minutes,
            "magnitudes_mb": magnitudes_bytes / 1e6, "audio_mb": audio_bytes / 1e6, "build_seconds": build_seconds,
            "crc_gb_per_s": magnitudes_bytes / crc / 1e9, "timings": timings, "repeats": args.repeats}
    lines = [f"Cache integrity cost (dgt_mid, {args.files} files x {args.seconds:g} s = {audio_minutes:.1f} min "
             f"of 44.1 kHz audio, cache {magnitudes_bytes / 1e6:.0f} MB float32)", "",
             f"Build (once): {build_seconds:.1f} s. CRC-32 throughput: {magnitudes_bytes / crc / 1e9:.2f} GB/s.", "",
             "| step | wall ms | CPU ms | per minute of audio (ms) |", "|---|---:|---:|---:|"]
    for name, wall, cpu in rows:
        lines.append(f"| {name} | {1000 * wall:.1f} | {1000 * cpu:.1f} | {1000 * wall / audio_minutes:.2f} |")
    markdown = "\n".join(lines)
    print(markdown)
    write_results("cache_integrity_busy" if args.busy else "cache_integrity", data, markdown, run=run)


if __name__ == "__main__":
    main()
