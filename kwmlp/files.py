"""The file API, openl3's ``process_audio_file`` workflow: audio files ->
embeddings in memory (``embed_file``, ``embed_files``) or on disk
(``save_embeddings``, which ``kwmlp embed`` calls; the run itself is
``kwmlp.run``, the formats ``kwmlp.sinks``).

Outputs go next to the input (openl3's default) or, with ``output_dir``, under
it: a file named as an input lands directly in ``output_dir``; a file found in
an input folder keeps its path below that folder; an output that would
replace an input is refused. Each output is written to a temporary file of its
own in its destination folder and renamed into place. A rerun skips an input
only if its outputs are complete, readable and made by the same model with the
same options, resampler and arrays from this very file as it is now (the
output folder's manifest says which file each came from; next to the inputs,
an output older than its input is stale); any other output is embedded again
(all of them with ``overwrite``).
"""
from __future__ import annotations

import warnings
from typing import Iterable, List, Optional, Sequence, Union

from ._types import PathLike
from .audio import DEFAULT_RESAMPLER, check_resampler
from .decoding import DEFAULT_BATCH_SECONDS, check_batch_seconds
from .discovery import as_paths, find_audio_files
from .embedder import KWMLPEmbedder
from .engines import embed_indexed
from .errors import KwmlpError
from .hear import load_model
from .results import FileEmbedding, FileFailure, RunSummary
from .run import embed_run
from .sinks import check_kind

__all__ = ["FileEmbedding", "FileFailure", "RunSummary", "embed_file", "embed_files",
           "find_audio_files", "save_embeddings"]


def embed_files(paths: Union[PathLike, Sequence[PathLike]],
                model: Optional[KWMLPEmbedder] = None, kind: str = "both",
                batch_seconds: float = DEFAULT_BATCH_SECONDS,
                resampler: str = DEFAULT_RESAMPLER) -> List[FileEmbedding]:
    """Embed audio files (any format ``load_audio`` reads, resampled by
    ``resampler``; one path or several), one result per path in the order given.
    ``kind`` is ``"both"``, ``"scene"`` or ``"timestamp"``. ``model=None`` loads
    the default; pass a model when calling repeatedly. Raises ``KwmlpError`` for
    the first bad file; see ``save_embeddings`` to carry on past bad files."""
    check_kind(kind)
    check_batch_seconds(batch_seconds)
    check_resampler(resampler)
    model = load_model() if model is None else model
    paths = as_paths(paths)
    results: List[Optional[FileEmbedding]] = [None] * len(paths)
    for index, result in embed_indexed(paths, model, kind, batch_seconds, resampler):
        if isinstance(result, FileFailure):
            raise KwmlpError(result.message)
        results[index] = result
    return results


def embed_file(path: PathLike, model: Optional[KWMLPEmbedder] = None,
               kind: str = "both", resampler: str = DEFAULT_RESAMPLER) -> FileEmbedding:
    """Embed one audio file; see ``embed_files``."""
    return embed_files([path], model, kind, resampler=resampler)[0]


def save_embeddings(inputs: Union[PathLike, Iterable[PathLike]],
                    output_dir: Optional[PathLike] = None,
                    model: Optional[KWMLPEmbedder] = None, *, kind: str = "both",
                    format: str = "npz", recursive: bool = False, overwrite: bool = False,
                    batch_seconds: float = DEFAULT_BATCH_SECONDS,
                    resampler: str = DEFAULT_RESAMPLER, progress: bool = False,
                    fmt: Optional[str] = None) -> RunSummary:
    """Embed audio files and folders (see ``find_audio_files``) to ``.npz`` or
    ``.npy`` files (``kwmlp.sinks``; ``format="parquet"`` too, with an
    ``output_dir``); what ``kwmlp embed`` runs.

    An input is skipped if its outputs are current (module docstring) unless
    ``overwrite``; any other output is embedded again. A bad file (or one whose
    output would replace an input) is logged (``logging.ERROR``, path and
    reason), recorded in the summary, and the rest carry on. ``progress``
    shows a tqdm bar when stderr is a terminal, else a log line every
    ``run.PROGRESS_LINE_S``. Raises ``KwmlpError`` if ``output_dir`` is a file
    or holds outputs of another format. ``fmt`` is the old name of ``format``.
    For several processes or Ray, see ``kwmlp.embed_corpus``.
    """
    if fmt is not None:
        warnings.warn("save_embeddings(fmt=...) is now format=...", DeprecationWarning,
                      stacklevel=2)
        format = fmt
    return embed_run(inputs, output_dir, load_model() if model is None else model,
                     format=format, kind=kind, recursive=recursive, overwrite=overwrite,
                     batch_seconds=batch_seconds, resampler=resampler, progress=progress)
