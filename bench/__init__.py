"""Speed benchmarks of vschaos, run from the repository root as ``python -m bench.NAME``.

Each writes its latest result to ``bench/results/NAME.{json,md}`` and a dated copy to ``bench/results/history/``
(``bench.common.write_results``); ``python -m bench.report`` builds ``docs/BENCHMARKS.md`` from the latest ones.
"""
