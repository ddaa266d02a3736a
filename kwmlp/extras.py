"""Optional dependencies, imported when first needed: ``pip install kwmlp``
stays light, and a missing one is a ``KwmlpError`` naming the extra."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import KwmlpError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose``, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise KwmlpError(f"{purpose} needs {module.split('.')[0]}, which is not installed "
                         f"({err}); install it with: pip install 'kwmlp[{extra}]'") from None
