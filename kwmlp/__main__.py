"""``python -m kwmlp``: the ``kwmlp`` command line (see ``kwmlp.cli``)."""
import sys

from .cli import main

sys.exit(main())
