"""Studies of quality that train models or score signal methods, run from the repository root as
``python -m experiments.NAME``.

They share the benchmarks' helpers (``bench.common``) and write their results the same way, to
``experiments/results/`` (latest) and ``experiments/results/history/`` (dated copies).
"""
