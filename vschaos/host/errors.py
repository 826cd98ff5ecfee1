"""The host's base error, in a module without torch so that the command line can name it before loading a model."""


class HostError(Exception):
    """A problem a user can hit; the CLI prints its message (no traceback) and exits non-zero."""
