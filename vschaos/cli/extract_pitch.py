"""``python extract_pitch.py ROOT``: write pitch and octave track metadata for a dataset."""
import argparse
import sys
from typing import List, Optional

from vschaos.threads import add_threads_argument, apply_thread_policy, threads_argument
from vschaos.pitch.defaults import (DEFAULT_FMAX, DEFAULT_FMIN, DEFAULT_HOP_SECONDS, DEFAULT_MEDIAN_FRAMES,
                                    DEFAULT_MODEL, DEFAULT_SILENCE_DB, DEFAULT_THRESHOLD, MODELS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extract_pitch.py",
        description="Label every sound file under ROOT/data with frame-wise pitch class and octave "
                    "(torchcrepe), written to ROOT/metadata/pitch and ROOT/metadata/octave as track files. "
                    "pitch: C=0 .. B=11; octave: id = midi // 12, named midi // 12 - 1 (A4 = 440 Hz -> A, 4).")
    parser.add_argument("root", help="dataset root (holds data/ and metadata/)")
    parser.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL,
                        help=f"CREPE network size (default {DEFAULT_MODEL})")
    parser.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS,
                        help=f"frame hop in seconds, rounded to whole 16 kHz samples (default {DEFAULT_HOP_SECONDS})")
    parser.add_argument("--fmin", type=float, default=DEFAULT_FMIN, help=f"lowest f0 in Hz (default {DEFAULT_FMIN})")
    parser.add_argument("--fmax", type=float, default=DEFAULT_FMAX, help=f"highest f0 in Hz (default {DEFAULT_FMAX})")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"periodicity below which a frame is unvoiced (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--silence-db", type=float, default=DEFAULT_SILENCE_DB,
                        help=f"frames quieter than this (dBFS, 20 ms window) are unvoiced (default {DEFAULT_SILENCE_DB})")
    parser.add_argument("--median", type=int, default=DEFAULT_MEDIAN_FRAMES,
                        help=f"median filter width in frames for f0 (default {DEFAULT_MEDIAN_FRAMES}; 1 = off)")
    add_threads_argument(parser)
    parser.add_argument("--jobs", dest="threads", type=threads_argument, default=argparse.SUPPRESS,
                        help="old spelling of --threads")
    parser.add_argument("--force", action="store_true", help="relabel files that are already labelled")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None), run the extraction; returns the exit code."""
    args = build_parser().parse_args(argv)
    apply_thread_policy(args.threads)
    from vschaos.data.problems import printable
    from vschaos.pitch.extract import extract_dataset

    try:
        report = extract_dataset(args.root, model=args.model, hop_seconds=args.hop, fmin=args.fmin, fmax=args.fmax,
                                 threshold=args.threshold, silence_db=args.silence_db, median_frames=args.median,
                                 force=args.force, num_threads=args.threads or None, progress=not args.quiet,
                                 log=lambda message: print(message, file=sys.stderr))
    except (FileNotFoundError, ValueError) as error:
        print(printable(f"error: {error}"), file=sys.stderr)
        return 2
    print(report.format(), file=sys.stderr if report.failed else sys.stdout)
    return 0 if report.ok else 1
