"""Embedding a corpus: ``embed_corpus``, the file API's run (``kwmlp.run``) with
a choice of engine (this process, local decoding workers, Ray) and Parquet
output, resumable by the output folder's manifest (``kwmlp.manifest``)."""
from __future__ import annotations

from typing import Iterable, Optional, Union

from ._types import PathLike
from .audio import DEFAULT_RESAMPLER
from .decoding import DEFAULT_BATCH_SECONDS
from .embedder import KWMLPEmbedder
from .results import RunSummary
from .run import ENGINES, embed_run
from .sinks import DEFAULT_PART_SECONDS, FORMATS

__all__ = ["ENGINES", "FORMATS", "DEFAULT_PART_SECONDS", "embed_corpus"]


def embed_corpus(inputs: Union[PathLike, Iterable[PathLike]], output_dir: PathLike, *,
                 engine: str = "local", workers: Optional[int] = None, format: str = "npz",
                 recursive: bool = False, overwrite: bool = False, kind: str = "both",
                 batch_seconds: float = DEFAULT_BATCH_SECONDS,
                 resampler: str = DEFAULT_RESAMPLER, part_seconds: float = DEFAULT_PART_SECONDS,
                 ray_address: Optional[str] = None, progress: bool = False,
                 model: Optional[KWMLPEmbedder] = None, model_file_path: str = "",
                 **model_options: object) -> RunSummary:
    """Embed audio files and folders (``discovery.find_audio_files``) into
    ``output_dir``, resumably, on one of the engines (``kwmlp.engines``).

    ``format``: ``"npz"``/``"npy"`` write the files ``save_embeddings`` writes
    (same names, same contents); ``"parquet"`` writes part files
    (``kwmlp.parquet``; read them with ``read_parquet_embeddings``).
    ``workers``: decoding processes for ``local`` (default 1: all in this
    process), model actors for ``ray`` (default: one per CPU of the cluster).
    The model: ``model``, or ``load_model(model_file_path, **model_options)``;
    Ray's actors are sent a copy. ``ray_address`` connects to a Ray cluster
    (default: ``RAY_ADDRESS``, else a local instance).

    Resume: the folder's manifest records which file each output came from;
    an input is skipped if a record lists this very file (resolved path) with
    its current size and mtime, made with these settings, and its outputs are
    in place. A folder of another format, or a Parquet folder of another
    model, options, resampler or ``kind``, is refused (``KwmlpError``) unless
    ``overwrite``, which deletes the recorded outputs and starts afresh; npz/npy
    outputs of other settings are embedded again. Bad files are logged and
    recorded in the summary; the rest carry on.
    """
    return embed_run(inputs, output_dir, model, format=format, kind=kind, recursive=recursive,
                     overwrite=overwrite, batch_seconds=batch_seconds, resampler=resampler,
                     progress=progress, engine=engine, workers=workers,
                     ray_address=ray_address, part_seconds=part_seconds,
                     model_file_path=model_file_path, model_options=model_options)
