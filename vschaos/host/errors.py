"""The host's exceptions: every problem a user can hit is a :class:`HostError` with a one-line message."""


class HostError(Exception):
    """A problem a user can hit; the CLI prints its message (no traceback) and exits non-zero."""


class ModelLoadError(HostError):
    """The file is missing, is not TorchScript, or does not follow the nn~ contract."""


class MethodError(HostError):
    """Unknown method, or a method whose ``<m>_params`` is unusable."""


class AttributeValueError(HostError):
    """Unknown attribute, wrong number or type of values, or a model refusing a ``set``."""


class ModelCallError(HostError):
    """The model raised inside a call, or returned the wrong shape/dtype."""


class NonFiniteOutputError(HostError):
    """The model output NaN or Inf: nothing is written (a NaN in a sound file can blow up a mixer or a speaker)."""


class ModelTimeoutError(HostError):
    """A model call did not return within the time limit; the call may still be running on its thread."""
