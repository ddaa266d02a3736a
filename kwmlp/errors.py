"""The package's own exception."""


class KwmlpError(RuntimeError):
    """A kwmlp-specific failure (bad checkpoint, missing weights); the message
    names the offending path or value and, where there is one, the fix."""


class CheckpointNotFoundError(KwmlpError, FileNotFoundError):
    """A checkpoint path that does not exist: a ``KwmlpError`` like every other
    checkpoint failure, and a ``FileNotFoundError`` as Python's own file errors."""
