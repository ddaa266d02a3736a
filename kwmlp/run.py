"""One embedding run, whatever its entry point (``save_embeddings``,
``embed_corpus``, ``kwmlp embed``), engine (this process, local workers, Ray)
and format (npz, npy, Parquet):

1. find the inputs and plan their outputs (``kwmlp.discovery``, the sink's
   names), refusing clashes;
2. open the output folder's manifest (``kwmlp.manifest``; none when outputs go
   next to their inputs), which refuses a folder of another format, or for
   Parquet of other settings;
3. sort the inputs into done (recorded from this very file, as it is now, with
   these settings, and the outputs still good) and to do;
4. stream the engine's results (``kwmlp.engines``, ``kwmlp.ray_engine``) into
   the sink (``kwmlp.sinks``), which records what is in place; report.

A bad file is logged (``logging.ERROR``, path and reason), recorded in the
summary, and the rest carry on.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import (Callable, Collection, Dict, Iterable, Iterator, List, Optional, Set, Tuple,
                    Union)

from tqdm import tqdm

from ._types import PathLike
from .audio import DEFAULT_RESAMPLER, check_resampler
from .decoding import DEFAULT_BATCH_SECONDS, check_batch_seconds
from .discovery import Plan, check_output_dir, plan_outputs
from .embedder import KWMLPEmbedder
from .engines import embed_indexed
from .extras import require
from .hear import load_model
from .manifest import Manifest
from .parquet import foreign_parquet_files, row_key
from .results import FileEmbedding, FileFailure, Result, RunSummary
from .sinks import DEFAULT_PART_SECONDS, Sink, check_choice, make_sink, run_metadata

ENGINES = ("local", "ray")
PROGRESS_LINE_S = 30.0  # between plain progress lines when stderr is not a terminal

logger = logging.getLogger(__name__)


def check_workers(workers: Optional[int]) -> None:
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _open_manifest(output_dir: Optional[Path], sink: Sink, overwrite: bool
                   ) -> contextlib.AbstractContextManager:
    if output_dir is None:  # outputs beside their inputs: no one folder to hold a manifest
        return contextlib.nullcontext(None)
    return Manifest(output_dir, sink.folder_settings, overwrite)


def _sort_inputs(planned: Plan, manifest: Optional[Manifest], sink: Sink, overwrite: bool
                 ) -> Tuple[List[Path], Set[Path], int, List[FileFailure]]:
    """``(to do, of them the stale ones, how many skipped, those refused)``: an input
    whose output would replace a file kwmlp did not write (by the manifest, else by
    its content: ``Sink.foreign``) is refused unless ``overwrite``."""
    todo, stale, skipped, refused = [], set(), 0, []
    recorded: Optional[Set[Path]] = None  # read once, and only if an output looks foreign
    for path, (relative, outputs) in planned.items():
        if overwrite:
            todo.append(path)
            continue
        reason = (manifest.why_not_done(row_key(relative), path, sink.settings)
                  if manifest is not None else None)
        exists = any(output.exists() for output in outputs.values())
        if reason is None:
            if sink.outputs_good(path, outputs):
                skipped += 1
                continue
            if not exists:  # nothing to call stale: a first run without a manifest
                todo.append(path)
                continue
            reason = "its existing output is from another model, other options or arrays, " \
                     "or incomplete"
        foreign = sink.foreign(outputs) if exists else []
        if foreign and manifest is not None:  # a recorded output is kwmlp's however damaged
            recorded = manifest.recorded_outputs() if recorded is None else recorded
            foreign = [p for p in foreign if p not in recorded]
        if foreign:
            them = "it" if len(foreign) == 1 else "them"
            refused.append(FileFailure(path, (
                f"{path}: not embedded, kwmlp did not write {', '.join(map(str, foreign))} "
                f"where its output goes; move {them} away, or pass --overwrite "
                f"(overwrite=True) to replace {them}")))
            continue
        if reason != "not recorded" or exists:
            stale.add(path)
            logger.info("%s: %s; embedding it again", path, reason)
        todo.append(path)
    return todo, stale, skipped, refused


def _warn_foreign_parts(output_dir: Path, manifest: Manifest) -> None:
    foreign = foreign_parquet_files(output_dir, manifest.done)
    if foreign:
        logger.warning("%s also holds %s, which kwmlp did not write: a Parquet reader given "
                       "the folder reads it too (read_parquet_embeddings reads only the "
                       "recorded parts)", output_dir, ", ".join(p.name for p in foreign))


def write_results(results: Iterable[Result], n_todo: int,
                  write: Callable[[FileEmbedding], str], stale: Collection[Path],
                  progress: bool, start: float) -> Tuple[int, int, float, List[FileFailure]]:
    """Write each embedded file with ``write``, which says where (an
    ``OSError`` fails that file alone), log each failure and, at DEBUG, each
    output, and show progress: a tqdm bar when stderr is a terminal, else a
    log line every ``PROGRESS_LINE_S``. Returns ``(done, redone, audio_s,
    failures)``; ``redone`` counts the ``stale`` paths done."""
    done, redone, audio_s, last_line_s, failures = 0, 0, 0.0, start, []
    # disable=None: tqdm draws only on a terminal; \r frames would fill a log file.
    with tqdm(total=n_todo, unit="file", disable=None if progress else True,
              dynamic_ncols=True) as bar:
        for handled, (_, result) in enumerate(results, 1):
            if isinstance(result, FileEmbedding):
                try:
                    written = write(result)
                    done, audio_s = done + 1, audio_s + result.duration_s
                    logger.debug("%s -> %s: %s", result.path, written,
                                 ", ".join(f"{name} {array.shape}"
                                           for name, array in result.arrays().items()))
                    redone += result.path in stale
                except OSError as err:
                    result = FileFailure(result.path, f"{result.path}: cannot write its "
                                                      f"output ({err})")
            if isinstance(result, FileFailure):
                logger.error(result.message)
                failures.append(result)
            now = time.perf_counter()
            rate = f"{audio_s / (now - start):.1f} audio-s/s"
            bar.update()
            bar.set_postfix_str(rate, refresh=False)
            if progress and bar.disable and now - last_line_s >= PROGRESS_LINE_S:
                logger.info("%d/%d files, %s", handled, n_todo, rate)
                last_line_s = now
    return done, redone, audio_s, failures


def _engine_results(todo: List[Path], model: KWMLPEmbedder, kind: str, batch_seconds: float,
                    resampler: str, engine: str, workers: Optional[int],
                    ray_address: Optional[str]) -> Iterator[Result]:
    if engine == "ray":
        from .ray_engine import ray_results  # Ray is an extra: imported only when used

        return ray_results(todo, model, kind, batch_seconds, resampler, workers, ray_address)
    return embed_indexed(todo, model, kind, batch_seconds, resampler, workers or 1)


def embed_run(inputs: Union[PathLike, Iterable[PathLike]], output_dir: Optional[PathLike],
              model: Optional[KWMLPEmbedder] = None, *, format: str = "npz",
              kind: str = "both", recursive: bool = False, overwrite: bool = False,
              batch_seconds: float = DEFAULT_BATCH_SECONDS,
              resampler: str = DEFAULT_RESAMPLER, progress: bool = False,
              engine: str = "local", workers: Optional[int] = None,
              ray_address: Optional[str] = None, part_seconds: float = DEFAULT_PART_SECONDS,
              model_file_path: str = "", model_options: Optional[Dict[str, object]] = None
              ) -> RunSummary:
    """Embed audio files and folders into ``output_dir`` (next to the inputs
    if None; npz/npy only) in ``format``: the run behind every public entry
    point (see the module docstring and ``embed_corpus`` for the parameters).
    ``model`` or, if None, ``load_model(model_file_path, **model_options)``;
    arguments are checked before it is loaded."""
    start = time.perf_counter()
    check_choice("engine", engine, ENGINES)
    check_batch_seconds(batch_seconds)
    check_resampler(resampler)
    check_workers(workers)
    check_output_dir(output_dir)
    output_dir = None if output_dir is None else Path(output_dir)
    if engine == "ray":  # missing: say so before any work
        require("ray.data", "ray", "engine='ray'")
    if model is not None and (model_file_path or model_options):
        raise ValueError("pass a model or model_file_path/model options, not both")
    if model is None:
        model = load_model(model_file_path, **(model_options or {}))
    sink = make_sink(format, model, run_metadata(model, resampler), kind, output_dir,
                     part_seconds)
    planned, failures = plan_outputs(inputs, recursive, sink.outputs_of)
    for failure in failures:
        logger.error(failure.message)
    with _open_manifest(output_dir, sink, overwrite) as manifest:
        todo, stale, skipped, refused = _sort_inputs(planned, manifest, sink, overwrite)
        for failure in refused:
            logger.error(failure.message)
        if sink.format == "parquet":
            _warn_foreign_parts(output_dir, manifest)
        sink.prepare([planned[path][1] for path in todo], manifest)
        results = _engine_results(todo, model, kind, batch_seconds, resampler, engine, workers,
                                  ray_address)

        def write(result: FileEmbedding) -> str:
            relative, outputs = planned[result.path]
            return sink.write(result, relative, outputs)

        try:
            done, redone, audio_s, failed = write_results(results, len(todo), write, stale,
                                                          progress, start)
        finally:
            sink.close()  # on Ctrl-C too: what is complete gets recorded
    return RunSummary(done, skipped, failures + refused + failed, audio_s,
                      time.perf_counter() - start, redone)
