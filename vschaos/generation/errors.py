"""The one exception type the generate command turns into a clean error message."""


class GenerationError(Exception):
    """A user-facing problem (bad arguments, missing run files, labels): one clear message."""
