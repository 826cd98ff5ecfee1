"""Cost of the NaN/Inf step guard (``SpectralVAEModule.on_before_optimizer_step``: one fused gradient norm and
one host sync per optimiser step) against a whole training step, on this CPU, for the demo and dgt_mid presets.

    python -m bench.nan_guard [--threads 2] [--repeats 30] [--busy]

Writes ``bench/results/nan_guard[_busy].{json,md}``. Batches are random magnitudes of the preset's shape (no dataset).
"""
import argparse
from typing import Dict

import torch

from vschaos.cli.train import compose_config
from vschaos.training.fit import build_objects

from bench.common import busy_argument, competing_process, interleaved_medians, start_run, write_results

CASES = (("demo", 64), ("dgt_mid", 256))


def measure(preset: str, batch_size: int, repeats: int) -> Dict[str, float]:
    cfg = compose_config(preset, ["data.dataset.root=unused"])
    vae, _, module = build_objects(cfg)
    optimiser = module.configure_optimizers()
    generator = torch.Generator().manual_seed(0)
    batch = {"magnitude": torch.rand(batch_size, vae.transform.n_bins, generator=generator), "labels": {}}

    def step(guard: bool) -> None:
        terms = module._shared_step(batch, sample=True)
        optimiser.zero_grad()
        terms["loss"].backward()
        if guard:
            module._loss_is_finite = torch.isfinite(terms["loss"].detach())
            module.on_before_optimizer_step(optimiser)
        optimiser.step()

    def guard_only() -> None:
        module.on_before_optimizer_step(optimiser)

    times = interleaved_medians({"step": lambda: step(False), "step_guarded": lambda: step(True),
                                 "guard": guard_only}, repeats)
    return {"step_ms": 1e3 * times["step"]["seconds"], "step_guarded_ms": 1e3 * times["step_guarded"]["seconds"],
            "guard_ms": 1e3 * times["guard"]["seconds"],
            "guard_share": times["guard"]["seconds"] / times["step"]["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    busy_argument(parser)
    args = parser.parse_args()
    run = start_run(__file__, competing=args.busy)
    torch.set_num_threads(args.threads)
    with competing_process(args.busy):
        results = {f"{preset} (batch {batch})": measure(preset, batch, args.repeats) for preset, batch in CASES}
    lines = [f"NaN/Inf guard cost per optimiser step, CPU, {args.threads} threads, median of {args.repeats}", "",
             "| case | step (ms) | guarded step (ms) | guard alone (ms) | guard / step |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['step_ms']:.2f} | {r['step_guarded_ms']:.2f} | {r['guard_ms']:.3f} | "
              f"{100 * r['guard_share']:.1f}% |" for name, r in results.items()]
    print("\n".join(lines))
    write_results("nan_guard_busy" if args.busy else "nan_guard",
                  {"threads": args.threads, "repeats": args.repeats, "results": results}, "\n".join(lines), run=run)


if __name__ == "__main__":
    main()
