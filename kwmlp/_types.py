"""Type aliases shared across the package."""
import os
from typing import Union

PathLike = Union[str, os.PathLike]  # what ``pathlib.Path()`` accepts
