"""Names of the phase reconstruction methods and the offline default, in a module without torch: command-line
parsers (``generate.py --phase``) read them before anything heavy loads."""

RECONSTRUCTION_METHODS = ("pghi+gla", "pghi", "griffinlim", "random")
DEFAULT_PHASE = "pghi+gla"
#: Fast Griffin-Lim iterations after PGHI for offline generation (python -m bench.generation_speed times them,
#: python -m experiments.phase_quality scores them).
DEFAULT_GLA_ITERATIONS = 16
