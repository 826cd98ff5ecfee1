"""Offline generation speed: ``generate.py reconstruct``'s signal path, in multiples of real time.

The model is the ``dgt_mid`` preset (44.1 kHz, n_fft 2048, hop 512, mid VAE) with random
weights (speed does not depend on training). The input is a synthesised harmonic sound with
vibrato and a chirp (``--seconds``, default 10 s). Each phase method is timed end to end as
``generation.reconstruct.reconstruct_audio`` runs it: DGT analysis, encoder, decoder, phase
reconstruction, synthesis; and each stage separately. After one warm-up call (numba compiles
PGHI's heap integration once per process), the median of ``--repeats`` calls is reported.
x real time = audio seconds / wall seconds (higher is faster); the table compares it with vschaos2's
offline PGHI path (``VSCHAOS2_SECONDS_PER_SECOND``).

Usage: ``python -m bench.generation_speed [--seconds 10 --threads 2 --repeats 3 --preset dgt_mid] [--busy]``.
Writes ``bench/results/generation_speed[_busy].{json,md}``.
"""
import argparse
from typing import Dict, List

import torch

from vschaos.cli.train import compose_config
from vschaos.dsp.phase_methods import DEFAULT_GLA_ITERATIONS, DEFAULT_PHASE, RECONSTRUCTION_METHODS
from vschaos.dsp.functional import spectral_convergence
from vschaos.generation.reconstruct import encode_audio, reconstruct_audio
from vschaos.training.run import build_model

from bench.common import busy_argument, competing_process, median_seconds, start_run, test_sound, write_results

TARGET_X_REALTIME = 20.0
VSCHAOS2_SECONDS_PER_SECOND = 11.0  # its offline PGHI path, per second of audio, as measured with vschaos2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="dgt_mid")
    parser.add_argument("--n-iter", type=int, default=DEFAULT_GLA_ITERATIONS,
                        help=f"Griffin-Lim iterations (default: generate.py's, {DEFAULT_GLA_ITERATIONS})")
    parser.add_argument("--sweep", type=int, nargs="*", default=[0, 2, 4, 8, 16, 32],
                        help="Griffin-Lim iteration counts of the speed/quality sweep (0 = pghi alone)")
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    with competing_process(args.busy):
        result = measure(args)
    write_results("generation_speed_busy" if args.busy else "generation_speed", result, markdown(result), run=run)


def measure(args: argparse.Namespace) -> Dict[str, object]:
    """Time the reconstruction per phase method, the default path's stages and the phase sweep."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = compose_config(args.preset, [])
    vae = build_model(cfg).eval()
    transform = vae.transform
    audio = test_sound(args.seconds, int(transform.sample_rate))
    length = audio.shape[0]

    def run(method: str) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return reconstruct_audio(vae, audio, {}, method=method, n_iter=args.n_iter, generator=generator).audio

    run(DEFAULT_PHASE)  # warm-up: numba compilation, allocator
    rows: List[Dict[str, object]] = []
    for method in RECONSTRUCTION_METHODS:
        timing = median_seconds(lambda: run(method), args.repeats)
        rows.append({"what": f"reconstruct, phase {method}", **timing,
                     "x_realtime": args.seconds / timing["seconds"]})

    # stages of the default path
    with torch.no_grad():
        magnitude, mean, _ = encode_audio(vae, audio, {})
        decoded = transform.from_features(vae.decode(mean, {}))
        f0 = vae.audio_f0(audio[None])  # dgt_live reads its f0 from a longer window than its frames
        f0 = None if f0 is None else f0[0]
        stages = {
            "stage: DGT analysis": lambda: transform.magnitude(audio[None]),
            "stage: encoder (all frames)": lambda: vae.encode(transform.to_features(magnitude), {}, f0),
            "stage: decoder (all frames)": lambda: transform.from_features(vae.decode(mean, {})),
            f"stage: phase pghi+gla ({args.n_iter} it.) + synthesis":
                lambda: transform.reconstruct(decoded[None], length, method="pghi+gla", n_iter=args.n_iter,
                                              generator=torch.Generator().manual_seed(0)),
        }
        for name, call in stages.items():
            timing = median_seconds(call, args.repeats)
            rows.append({"what": name, **timing, "x_realtime": args.seconds / timing["seconds"]})

    # speed/quality of the phase reconstruction alone, on the input's own magnitude: spectral
    # convergence of the resynthesis (the floor any model reconstruction inherits)
    sweep: List[Dict[str, object]] = []
    input_magnitude = transform.magnitude(audio[None])
    for n_iter in args.sweep:
        method = "pghi+gla" if n_iter > 0 else "pghi"

        def phase_only(method: str = method, n_iter: int = n_iter) -> torch.Tensor:
            return transform.reconstruct(input_magnitude, length, method=method, n_iter=n_iter,
                                         generator=torch.Generator().manual_seed(0))

        timing = median_seconds(phase_only, args.repeats)
        convergence = float(spectral_convergence(input_magnitude, transform.magnitude(phase_only())))
        sweep.append({"gla_iterations": n_iter, **timing, "x_realtime": args.seconds / timing["seconds"],
                      "spectral_convergence": convergence})

    default = rows[0]
    result = {
        "preset": args.preset, "sample_rate": int(transform.sample_rate), "n_fft": int(transform.n_fft),
        "hop": int(transform.hop), "frames": int(magnitude.shape[0]), "audio_seconds": args.seconds,
        "threads": args.threads, "repeats": args.repeats, "gla_iterations": args.n_iter,
        "target_x_realtime": TARGET_X_REALTIME,
        "vschaos2_x_realtime": 1.0 / VSCHAOS2_SECONDS_PER_SECOND,
        "default_x_realtime": default["x_realtime"],
        "meets_target": bool(default["x_realtime"] >= TARGET_X_REALTIME),
        "rows": rows,
        "phase_sweep": sweep,
    }
    print(markdown(result))
    return result


def markdown(result: Dict[str, object]) -> str:
    rows, sweep, default = result["rows"], result["phase_sweep"], result["rows"][0]
    header = (f"Offline generation speed, {result['preset']} (sr {result['sample_rate']}, n_fft {result['n_fft']}, "
              f"hop {result['hop']}), {result['audio_seconds']:g} s of audio, {result['threads']} threads, median of "
              f"{result['repeats']}")
    lines = [header, "", "| what | wall s | cpu s | x real time |", "|---|---:|---:|---:|"]
    lines += [f"| {r['what']} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {r['x_realtime']:.1f} |" for r in rows]
    lines += ["", "Phase reconstruction alone of the input's own magnitude (speed and spectral convergence):", "",
              "| Griffin-Lim iterations after PGHI | wall s | cpu s | x real time | spectral convergence |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['gla_iterations']} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {r['x_realtime']:.1f} | "
              f"{r['spectral_convergence']:.4f} |" for r in sweep]
    lines += ["", f"Default path (pghi+gla): x{default['x_realtime']:.1f} real time; target >= "
                  f"x{TARGET_X_REALTIME:g} ({'met' if result['meets_target'] else 'NOT met'}); "
                  f"vschaos2's offline PGHI: ~{VSCHAOS2_SECONDS_PER_SECOND:g} s per second of audio "
                  f"(x{1.0 / VSCHAOS2_SECONDS_PER_SECOND:.2f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
