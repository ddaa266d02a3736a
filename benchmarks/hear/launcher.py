#!/usr/bin/env python3
"""Run heareval's downstream predictions (``heareval.predictions.runner``)
under pytorch-lightning >= 1.6, with the one fix event tasks need.

Same command line as ``python -m heareval.predictions.runner``::

    python benchmarks/hear/launcher.py EMBEDDINGS/kwmlp/TASK --grid faster --grid-points 1

Why: before testing each trained probe, heareval sets
``trainer.fit_loop.current_epoch = best_epoch`` so that the event
post-processing chosen at that validation epoch is used
(``epoch_best_postprocessing[current_epoch]``). Since pytorch-lightning 1.6
``FitLoop`` has no ``current_epoch`` attribute of its own: the assignment
makes a plain attribute nobody reads, ``trainer.current_epoch`` stays at the
last epoch trained, and event tasks fail with ``KeyError: <n_epochs>``
(hear-eval-kit issue #432). The fix gives ``FitLoop`` a ``current_epoch``
property whose setter writes ``epoch_progress.current.completed``, the value
``trainer.current_epoch`` reads. heareval itself is not modified.

Also: heareval reads its own Lightning checkpoints with a bare ``torch.load``,
which torch >= 2.6 refuses (``weights_only`` default); the checkpoints are the
ones this run just wrote, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` is set
unless the caller set it.
"""
from __future__ import annotations

import os


def patch_fit_loop_current_epoch() -> None:
    """Give ``FitLoop`` a settable ``current_epoch`` (no-op if it has one)."""
    from pytorch_lightning.loops.fit_loop import FitLoop

    existing = FitLoop.__dict__.get("current_epoch")
    if isinstance(existing, property) and existing.fset is not None:
        return

    def get_current_epoch(self: FitLoop) -> int:
        return self.epoch_progress.current.completed

    def set_current_epoch(self: FitLoop, epoch: int) -> None:
        self.epoch_progress.current.completed = epoch

    FitLoop.current_epoch = property(get_current_epoch, set_current_epoch,
                                     doc="Epochs completed; settable for heareval.")


def main() -> None:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    patch_fit_loop_current_epoch()
    from heareval.predictions.runner import runner

    runner(prog_name="launcher.py")  # click parses sys.argv[1:]


if __name__ == "__main__":
    main()
