"""Synthesise the small labelled demo dataset (instrument, pitch, octave tasks).

    python data_tools/make_demo_dataset.py OUT_DIR [--seed 0] [--sample-rate 44100] [--minutes 8]
"""
import argparse

from vschaos.data.demo import make_demo_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="dataset root to create (data/ and metadata/ are written inside)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--minutes", type=float, default=8.0, help="total duration of audio (8 min: enough for the demo model to generalise)")
    parser.add_argument("--files-per-instrument", type=int, default=8)
    args = parser.parse_args()
    out = make_demo_dataset(args.out_dir, seed=args.seed, sample_rate=args.sample_rate,
                            minutes=args.minutes, files_per_instrument=args.files_per_instrument)
    print(f"demo dataset written to {out}")


if __name__ == "__main__":
    main()
