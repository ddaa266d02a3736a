"""The file API, openl3's ``process_audio_file`` workflow: audio files ->
embeddings in memory (``embed_file``, ``embed_files``) or on disk
(``save_embeddings``, which ``kwmlp embed`` calls).

Batching: clips are sorted by duration and read ``batch_seconds`` of audio at
a time; clips of identical length (in 16 kHz samples) then share one encoder
pass. Clips of different lengths are never padded to a common length, since
padding changes a clip's timestamp count and scene pooling; so every result
equals what the clip gives on its own. A clip shorter than one timestamp
(10 ms) is a bad file.

Outputs on disk, for an input ``<dir>/<stem>.<ext>``:

- ``fmt="npz"``: ``<stem>.npz`` holding the arrays ``embedding`` ``(T, 64)``,
  ``timestamps`` ``(T,)`` in ms and ``scene`` ``(1024,)`` (those the ``kind``
  asks for; float32) and the metadata ``model_id``, ``model_options`` (str),
  ``sample_rate`` (int) and ``resampler`` (str).
- ``fmt="npy"``: one array per file, ``<stem>_embedding.npy``,
  ``<stem>_timestamps.npy``, ``<stem>_scene.npy``, and the metadata, with the
  names of the arrays, in ``<stem>_metadata.json``, written last.

They go next to the input (openl3's default) or, with ``output_dir``, under
it: a file named as an input lands directly in ``output_dir``; a file found in
an input folder keeps its path below that folder; an output that would
replace an input is refused. Each output is written to a temporary file of
its own in its destination folder and renamed into place. A rerun skips an
input only if its outputs are complete, readable and made by the same model
with the same options, resampler and arrays; any other output is embedded again
(all of them with ``overwrite``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict, deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import (Callable, Collection, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar, Union)

import numpy as np
import torch
from tqdm import tqdm

from ._types import PathLike
from .atomic import remove_stale_temporaries, write_atomic
from .audio import (AUDIO_EXTENSIONS, DEFAULT_RESAMPLER, audio_duration_s, check_resampler,
                    load_audio)
from .embedder import (EMBEDDING_KINDS, HOP_MS, MIN_TIMESTAMPED_SAMPLES, KWMLPEmbedder,
                       peak_warned_already)
from .errors import KwmlpError
from .hear import load_model

FORMATS = ("npz", "npy")
ARRAY_NAMES = {"both": ("embedding", "timestamps", "scene"),
               "timestamp": ("embedding", "timestamps"),
               "scene": ("scene",)}
METADATA_NAME = "metadata"  # output_paths key of the npy format's JSON file
DEFAULT_BATCH_SECONDS = 60.0  # of audio read (and held) at once; bounds memory, not results
# Decoded ahead of the batch being embedded, in a thread: libsndfile and soxr
# release the GIL, so reading overlaps the encoder; memory stays bounded, at up
# to (1 + PREFETCH_BATCHES) batches of audio.
PREFETCH_BATCHES = 1
PROGRESS_LINE_S = 30.0  # between plain progress lines when stderr is not a terminal

logger = logging.getLogger(__name__)

W = TypeVar("W")
T = TypeVar("T")
_NO_ITEM = object()


# results

@dataclass(frozen=True)
class FileEmbedding:
    """The embeddings of one file; those its ``kind`` did not ask for are None."""

    path: Path
    duration_s: float  # of the audio at 16 kHz
    embedding: Optional[np.ndarray] = None  # (T, 64) float32, one per 10 ms
    timestamps: Optional[np.ndarray] = None  # (T,) float32, ms: 10, 20, ...
    scene: Optional[np.ndarray] = None  # (1024,) float32

    def arrays(self) -> Dict[str, np.ndarray]:
        """The computed arrays by name (``embedding``, ``timestamps``, ``scene``)."""
        return {name: getattr(self, name) for name in ARRAY_NAMES["both"]
                if getattr(self, name) is not None}


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be embedded or saved; ``message`` starts with its path."""

    path: Path
    message: str


@dataclass(frozen=True)
class RunSummary:
    """What ``save_embeddings`` did."""

    done: int
    skipped: int  # complete outputs of this model, options and arrays existed
    failures: List[FileFailure] = field(default_factory=list)
    audio_s: float = 0.0  # audio embedded this run
    wall_s: float = 0.0
    redone: int = 0  # of ``done``: existing outputs that were stale or incomplete

    def __str__(self) -> str:
        redone = f" ({self.redone} replacing stale or incomplete outputs)" if self.redone else ""
        return (f"{self.done} files embedded{redone}, {self.skipped} skipped (outputs exist), "
                f"{len(self.failures)} failed; {self.audio_s / 3600:.2f} h "
                f"({self.audio_s:.1f} s) of audio in {self.wall_s:.1f} s")


# embedding

def _check_kind(kind: str) -> None:
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")


def _check_batch_seconds(batch_seconds: float) -> None:
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be positive, got {batch_seconds!r}")


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


def _embed_same_length(audio: np.ndarray, model: KWMLPEmbedder, kind: str) -> List[dict]:
    """``(n_clips, n_samples)`` 16 kHz audio -> per clip, the arrays ``kind``
    asks for (see ``FileEmbedding``), from one encoder pass."""
    with peak_warned_already():  # load_audio has warned about loud files, naming them
        arrays = model.embed(torch.from_numpy(audio), kind)
    host = {name: tensor.cpu().numpy() for name, tensor in arrays.items()}
    return [{name: array[i] for name, array in host.items()} for i in range(len(audio))]


def batches(durations_s: Mapping[int, float], batch_seconds: float) -> Iterator[List[int]]:
    """The keys sorted by duration, cut into consecutive runs totalling at most
    ``batch_seconds`` (a longer clip is a batch of its own)."""
    batch: List[int] = []
    total_s = 0.0
    for index in sorted(durations_s, key=durations_s.__getitem__):
        if batch and total_s + durations_s[index] > batch_seconds:
            yield batch
            batch, total_s = [], 0.0
        batch.append(index)
        total_s += durations_s[index]
    if batch:
        yield batch


def prefetched(pool: Executor, work: Iterable[W], decode: Callable[[W], T],
               ahead: int) -> Iterator[Tuple[W, T]]:
    """``(item, decode(item))`` for each item of ``work``, in order. While the
    caller holds one item, the next ``ahead`` (>= 1) are decoding on ``pool``:
    the overlap, and the bound on memory. On early exit the items not started
    are cancelled."""
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    todo = iter(work)
    pending: deque = deque()

    def top_up() -> None:
        while len(pending) < ahead:
            item = next(todo, _NO_ITEM)
            if item is _NO_ITEM:
                return
            pending.append((item, pool.submit(decode, item)))

    try:
        top_up()
        while pending:
            item, future = pending.popleft()
            decoded = future.result()
            top_up()
            yield item, decoded
    finally:
        for _, future in pending:
            future.cancel()


def decode_clip(path: Path, resampler: str) -> np.ndarray:
    """``load_audio`` for embedding: ``(n_samples,)`` float32 at 16 kHz, or
    ``KwmlpError`` for a bad file, one too short for a timestamp included."""
    audio, _ = load_audio(path, resampler)
    _check_long_enough(path, audio)
    return audio


def header_durations(paths: Sequence[Path]) -> Tuple[Dict[int, float], List[Tuple[int, FileFailure]]]:
    """Seconds of audio by index into ``paths``, from the file headers, and
    ``(index, failure)`` for each file whose header cannot be read."""
    durations_s: Dict[int, float] = {}
    failures = []
    for index, path in enumerate(paths):
        try:
            durations_s[index] = audio_duration_s(path)
        except KwmlpError as err:
            failures.append((index, FileFailure(path, str(err))))
    return durations_s, failures


def embed_decoded(clips: Sequence[Tuple[int, Path, np.ndarray]], model: KWMLPEmbedder,
                  kind: str) -> Iterator[Tuple[int, Union[FileEmbedding, FileFailure]]]:
    """``(index, path, 16 kHz audio)`` clips -> ``(index, result)``; clips of
    one length share an encoder pass, never padded to another's."""
    by_length: Dict[int, List[Tuple[int, Path, np.ndarray]]] = defaultdict(list)
    for clip in clips:
        by_length[len(clip[2])].append(clip)
    for n_samples, same in by_length.items():
        try:
            arrays = _embed_same_length(np.stack([audio for _, _, audio in same]), model, kind)
        except (ValueError, RuntimeError) as err:  # the clips' fault or the machine's
            for index, path, _ in same:
                yield index, FileFailure(path, f"{path}: cannot embed ({err})")
            continue
        for (index, path, _), clip_arrays in zip(same, arrays):
            yield index, FileEmbedding(path, n_samples / model.sample_rate, **clip_arrays)


def _embed_indexed(paths: Sequence[Path], model: KWMLPEmbedder, kind: str,
                   batch_seconds: float, resampler: str
                   ) -> Iterator[Tuple[int, Union[FileEmbedding, FileFailure]]]:
    """``(index into paths, result)`` for every path: first the files whose
    header cannot be read, then the rest shortest first. The next batch is
    decoded in a thread (``PREFETCH_BATCHES``) while this one is embedded."""
    durations_s, failures = header_durations(paths)
    yield from failures

    def decode(batch: List[int]) -> List[Union[np.ndarray, FileFailure]]:
        decoded: List[Union[np.ndarray, FileFailure]] = []
        for index in batch:
            try:
                decoded.append(decode_clip(paths[index], resampler))
            except KwmlpError as err:
                decoded.append(FileFailure(paths[index], str(err)))
        return decoded

    with ThreadPoolExecutor(1, thread_name_prefix="kwmlp-decode") as pool:
        for batch, decoded in prefetched(pool, batches(durations_s, batch_seconds), decode,
                                         PREFETCH_BATCHES):
            clips = []
            for index, outcome in zip(batch, decoded):
                if isinstance(outcome, FileFailure):
                    yield index, outcome
                else:
                    clips.append((index, paths[index], outcome))
            yield from embed_decoded(clips, model, kind)


def _check_long_enough(path: Path, audio: np.ndarray) -> None:
    if len(audio) < MIN_TIMESTAMPED_SAMPLES:
        raise KwmlpError(f"{path}: too short to embed ({len(audio)} samples at 16 kHz; one "
                         f"timestamp takes {MIN_TIMESTAMPED_SAMPLES}, {HOP_MS:g} ms)")


def _model_or_default(model: Optional[KWMLPEmbedder]) -> KWMLPEmbedder:
    return load_model() if model is None else model


def _as_paths(paths: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """One path or several as a list: a lone ``str`` is one path, not its characters."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths]


def embed_files(paths: Union[PathLike, Sequence[PathLike]],
                model: Optional[KWMLPEmbedder] = None, kind: str = "both",
                batch_seconds: float = DEFAULT_BATCH_SECONDS,
                resampler: str = DEFAULT_RESAMPLER) -> List[FileEmbedding]:
    """Embed audio files (any format ``load_audio`` reads, resampled by
    ``resampler``; one path or several), one result per path in the order given.
    ``kind`` is ``"both"``, ``"scene"`` or ``"timestamp"``. ``model=None`` loads the default; pass a model when
    calling repeatedly. Raises ``KwmlpError`` for the first bad file; see
    ``save_embeddings`` to carry on past bad files."""
    _check_kind(kind)
    _check_batch_seconds(batch_seconds)
    check_resampler(resampler)
    model = _model_or_default(model)
    paths = _as_paths(paths)
    results: List[Optional[FileEmbedding]] = [None] * len(paths)
    for index, result in _embed_indexed(paths, model, kind, batch_seconds, resampler):
        if isinstance(result, FileFailure):
            raise KwmlpError(result.message)
        results[index] = result
    return results


def embed_file(path: PathLike, model: Optional[KWMLPEmbedder] = None,
               kind: str = "both", resampler: str = DEFAULT_RESAMPLER) -> FileEmbedding:
    """Embed one audio file; see ``embed_files``."""
    return embed_files([path], model, kind, resampler=resampler)[0]


# output files

def find_audio_files(inputs: Union[PathLike, Iterable[PathLike]], recursive: bool = False
                     ) -> Tuple[List[Tuple[Path, Path]], List[FileFailure]]:
    """Expand files and folders to ``(file, path relative to the input it came
    from)`` pairs, each file once, plus a failure for each missing input.

    A file named as an input is taken whatever its extension; in folders,
    only ``AUDIO_EXTENSIONS`` count, hidden files and folders (``.*``) are
    skipped, and subfolders are searched only if ``recursive``."""
    found: Dict[Path, Tuple[Path, Path]] = {}
    failures = []
    for item in _as_paths(inputs):
        if item.is_file():
            found.setdefault(item.resolve(), (item, Path(item.name)))
        elif item.is_dir():
            for folder, subfolders, names in os.walk(item):
                subfolders[:] = sorted(d for d in subfolders
                                       if recursive and not d.startswith("."))
                for name in sorted(names):
                    path = Path(folder) / name
                    if not name.startswith(".") and path.suffix.lower() in AUDIO_EXTENSIONS:
                        found.setdefault(path.resolve(), (path, path.relative_to(item)))
        else:
            failures.append(FileFailure(item, f"{item}: no such file or folder"))
    return list(found.values()), failures


def output_paths(path: Path, relative: Path, output_dir: Optional[PathLike] = None,
                 fmt: str = "npz", kind: str = "both") -> Dict[str, Path]:
    """Where ``save_embeddings`` writes each array of ``path`` (found as
    ``relative`` by ``find_audio_files``), by array name, and for ``fmt="npy"``
    the metadata file, under ``METADATA_NAME``; with ``fmt="npz"`` everything
    goes to one file. See the module docstring."""
    _check_fmt(fmt)
    _check_kind(kind)
    stem = (path if output_dir is None else Path(output_dir) / relative).with_suffix("")
    if fmt == "npz":
        return dict.fromkeys(ARRAY_NAMES[kind], stem.with_name(f"{stem.name}.npz"))
    paths = {name: stem.with_name(f"{stem.name}_{name}.npy") for name in ARRAY_NAMES[kind]}
    paths[METADATA_NAME] = stem.with_name(f"{stem.name}_{METADATA_NAME}.json")
    return paths


def run_metadata(model: KWMLPEmbedder, resampler: str = DEFAULT_RESAMPLER
                 ) -> Dict[str, object]:
    """What every output records about how it was made."""
    return {"model_id": model.model_id(), "model_options": model.model_options(),
            "sample_rate": model.sample_rate, "resampler": resampler}


def write_outputs(result: FileEmbedding, outputs: Mapping[str, Path],
                  metadata: Mapping[str, object]) -> None:
    """Write ``result``'s arrays where ``output_paths`` says, each file
    atomically: a ``.npz`` gets its arrays and ``metadata``; ``.npy`` files get
    one array each, and the metadata file, naming the arrays, comes last."""
    arrays = result.arrays()
    # File objects, not names: numpy would append ".npz"/".npy" to the temporary's.
    if METADATA_NAME not in outputs:
        (path,) = set(outputs.values())
        write_atomic(path, lambda file: np.savez(file, **arrays, **metadata))
        return
    # Removed first: a run stopped midway leaves no metadata beside mixed arrays.
    outputs[METADATA_NAME].unlink(missing_ok=True)
    for name, array in arrays.items():
        write_atomic(outputs[name], lambda file, a=array: np.save(file, a))
    record = json.dumps({**metadata, "arrays": sorted(arrays)}, indent=1).encode()
    write_atomic(outputs[METADATA_NAME], lambda file: file.write(record))


def _read_outputs(outputs: Mapping[str, Path]) -> Tuple[Dict[str, object], Dict[str, np.ndarray]]:
    """The metadata (``arrays`` included) and arrays of existing outputs."""
    if METADATA_NAME in outputs:
        metadata = json.loads(outputs[METADATA_NAME].read_bytes())
        return metadata, {name: np.load(outputs[name], allow_pickle=False)
                          for name in metadata["arrays"]}
    (path,) = set(outputs.values())
    with np.load(path, allow_pickle=False) as saved:  # reading an array checks its CRC
        contents = {name: saved[name] for name in saved.files}
    arrays = {name: contents.pop(name) for name in ARRAY_NAMES["both"] if name in contents}
    metadata = {name: value.item() for name, value in contents.items()}
    return {**metadata, "arrays": sorted(arrays)}, arrays


def outputs_are_current(outputs: Mapping[str, Path], metadata: Mapping[str, object],
                        model: KWMLPEmbedder) -> bool:
    """Whether ``outputs`` (from ``output_paths``) hold a complete, readable
    result of the model, options and arrays that ``metadata`` describes,
    with the shapes ``model`` gives: what a rerun may skip."""
    try:
        saved, arrays = _read_outputs(outputs)
    except Exception:  # however it fails to read, it is no valid output
        return False
    wanted = sorted(name for name in outputs if name != METADATA_NAME)
    if {**saved, "arrays": sorted(arrays)} != {**metadata, "arrays": wanted}:
        return False
    n_frames = len(arrays["timestamps"]) if "timestamps" in arrays else None
    shapes = {"embedding": (n_frames, model.timestamp_embedding_size),
              "timestamps": (n_frames,), "scene": (model.scene_embedding_size,)}
    return all(array.dtype == np.float32 and array.shape == shapes[name]
               for name, array in arrays.items())


def _collisions(planned: Mapping[Path, Mapping[str, Path]]) -> Dict[Path, str]:
    """Inputs whose output another input would also write (``a.wav`` and
    ``a.flac`` in one folder), with the reason."""
    writers: Dict[Path, List[Path]] = defaultdict(list)
    for source, outputs in planned.items():
        for path in set(outputs.values()):
            writers[path].append(source)
    clashes = {}
    for path, sources in writers.items():
        if len(sources) > 1:
            for source in sources:
                others = ", ".join(str(s) for s in sources if s != source)
                clashes[source] = f"{source}: {others} would write the same output {path}"
    return clashes


def _replacing_inputs(planned: Mapping[Path, Mapping[str, Path]]) -> Dict[Path, str]:
    """Inputs one of whose outputs is an input file (``rec.npz`` holding audio,
    embedded next to itself), with the reason."""
    inputs = {source.resolve(): source for source in planned}
    refused = {}
    for source, outputs in planned.items():
        for path in set(outputs.values()):
            if path.resolve() in inputs:
                refused[source] = (f"{source}: its output {path} would replace the input "
                                   f"{inputs[path.resolve()]}; write the outputs elsewhere "
                                   f"(-o / output_dir)")
    return refused


def clear_stale_temporaries(outputs: Iterable[Path]) -> None:
    by_folder: Dict[Path, set] = defaultdict(set)
    for path in outputs:
        by_folder[path.parent].add(path.name)
    for folder, names in by_folder.items():
        if folder.is_dir():
            remove_stale_temporaries(folder, names)


def check_output_dir(output_dir: Optional[PathLike]) -> None:
    if output_dir is not None and Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise KwmlpError(f"{output_dir}: exists and is not a folder; name a folder for the "
                         f"outputs")


def plan_outputs(inputs: Union[PathLike, Iterable[PathLike]], recursive: bool,
                 outputs_of: Callable[[Path, Path], Dict[str, Path]]
                 ) -> Tuple[Dict[Path, Tuple[Path, Dict[str, Path]]], List[FileFailure]]:
    """The inputs found (``find_audio_files``) that may be embedded, each with
    its path relative to its input and its outputs, ``outputs_of(path,
    relative)`` (e.g. ``output_paths``), and the failures: missing inputs, and
    inputs whose output would clash with another's or replace an input."""
    inputs = _as_paths(inputs)
    found, failures = find_audio_files(inputs, recursive)
    planned = {path: outputs_of(path, relative) for path, relative in found}
    refused = {**_collisions(planned), **_replacing_inputs(planned)}
    failures += [FileFailure(path, message) for path, message in refused.items()]
    kept = {path: (relative, planned[path]) for path, relative in found if path not in refused}
    if not found and not failures:
        logger.error("no audio files found in %s", ", ".join(map(str, inputs)))
    return kept, failures


def write_results(results: Iterable[Tuple[int, Union[FileEmbedding, FileFailure]]], n_todo: int,
                  write: Callable[[FileEmbedding], str], stale: Collection[Path],
                  progress: bool, start: float) -> Tuple[int, int, float, List[FileFailure]]:
    """Write each embedded file with ``write``, which says where (an
    ``OSError`` fails that file alone), log each failure and, at DEBUG, each
    output, show progress (see ``save_embeddings``).
    Returns ``(done, redone, audio_s, failures)``; ``redone`` counts the
    ``stale`` paths done."""
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


def save_embeddings(inputs: Union[PathLike, Iterable[PathLike]],
                    output_dir: Optional[PathLike] = None,
                    model: Optional[KWMLPEmbedder] = None, *, kind: str = "both",
                    fmt: str = "npz", recursive: bool = False, overwrite: bool = False,
                    batch_seconds: float = DEFAULT_BATCH_SECONDS,
                    resampler: str = DEFAULT_RESAMPLER, progress: bool = False) -> RunSummary:
    """Embed audio files and folders (see ``find_audio_files``) to ``.npz`` or
    ``.npy`` files (see the module docstring); what ``kwmlp embed`` runs.

    An input is skipped if its outputs are current (``outputs_are_current``)
    unless ``overwrite``; outputs that are not, from another model, other
    options, resampler or arrays, or incomplete, are embedded again. A bad file (or one
    whose output would replace an input) is logged (``logging.ERROR``, path and
    reason), recorded in the summary, and the rest carry on. ``progress`` shows
    a tqdm bar when stderr is a terminal, else a log line every
    ``PROGRESS_LINE_S``. Raises ``KwmlpError`` if ``output_dir`` is a file.
    For several processes, Ray, Parquet or a manifest, see ``kwmlp.embed_corpus``.
    """
    start = time.perf_counter()
    _check_kind(kind)
    _check_fmt(fmt)
    _check_batch_seconds(batch_seconds)
    check_resampler(resampler)
    check_output_dir(output_dir)
    planned, failures = plan_outputs(
        inputs, recursive, lambda path, relative: output_paths(path, relative, output_dir, fmt, kind))
    model = _model_or_default(model)
    metadata = run_metadata(model, resampler)
    todo, stale, skipped = [], set(), 0
    for path, (_, outputs) in planned.items():
        if not overwrite and outputs_are_current(outputs, metadata, model):
            skipped += 1
            continue
        if not overwrite and any(output.exists() for output in outputs.values()):
            stale.add(path)
            logger.info("%s: its existing output is from another model, other options or "
                        "arrays, or incomplete; embedding it again", path)
        todo.append(path)
    for failure in failures:
        logger.error(failure.message)
    clear_stale_temporaries(output for path in todo for output in planned[path][1].values())
    results = _embed_indexed(todo, model, kind, batch_seconds, resampler)

    def write(result: FileEmbedding) -> str:
        outputs = planned[result.path][1]
        write_outputs(result, outputs, metadata)
        return ", ".join(sorted(set(map(str, outputs.values()))))

    done, redone, audio_s, failed = write_results(results, len(todo), write, stale, progress,
                                                  start)
    return RunSummary(done, skipped, failures + failed, audio_s, time.perf_counter() - start,
                      redone)
