"""``python -m kwmlp.train.synth``: render the corpus (see ``corpus.main``)."""
import sys

from .corpus import main

if __name__ == "__main__":  # not when spawn's workers import this module
    sys.exit(main())
