"""The package's own exception."""


class KwmlpError(RuntimeError):
    """A kwmlp-specific failure (bad checkpoint, missing weights); the message
    names the offending path or value and, where there is one, the fix."""
