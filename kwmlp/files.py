"""The file API, openl3's ``process_audio_file`` workflow: audio files ->
embeddings in memory (``embed_file``, ``embed_files``) or on disk
(``save_embeddings``, which ``kwmlp embed`` calls).

Batching: clips are sorted by duration and read ``batch_seconds`` of audio at
a time; clips of identical length (in 16 kHz samples) then share one encoder
pass. Clips of different lengths are never padded to a common length, since
padding changes a clip's timestamp count and scene pooling; so every result
equals what the clip gives on its own.

Outputs on disk, for an input ``<dir>/<stem>.<ext>``:

- ``fmt="npz"``: ``<stem>.npz`` holding the arrays ``embedding`` ``(T, 64)``,
  ``timestamps`` ``(T,)`` in ms and ``scene`` ``(1024,)`` (those the ``kind``
  asks for; float32) and the metadata ``model_id``, ``model_options`` (str)
  and ``sample_rate`` (int).
- ``fmt="npy"``: one array per file, ``<stem>_embedding.npy``,
  ``<stem>_timestamps.npy``, ``<stem>_scene.npy``; no metadata.

They go next to the input (openl3's default) or, with ``output_dir``, under
it: a file named as an input lands directly in ``output_dir``; a file found in
an input folder keeps its path below that folder. Each output is written to a
temporary file in its destination folder and renamed into place, so an
existing output is always complete and a rerun skips it (unless
``overwrite``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import (Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import numpy as np
import torch
from tqdm import tqdm

from .audio import AUDIO_EXTENSIONS, audio_duration_s, load_audio
from .encoder import count_parameters
from .atomic import write_atomic
from .errors import KwmlpError
from .hear import EMBEDDING_KINDS, HOP_MS, KWMLPEmbedder, get_embeddings, load_model

PathLike = Union[str, Path]


FORMATS = ("npz", "npy")
ARRAY_NAMES = {"both": ("embedding", "timestamps", "scene"),
               "timestamp": ("embedding", "timestamps"),
               "scene": ("scene",)}
DEFAULT_BATCH_SECONDS = 60.0  # of audio read (and held) at once; bounds memory, not results

logger = logging.getLogger(__name__)


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
    skipped: int  # outputs already existed
    failures: List[FileFailure] = field(default_factory=list)
    audio_s: float = 0.0  # audio embedded this run
    wall_s: float = 0.0

    def __str__(self) -> str:
        return (f"{self.done} files embedded, {self.skipped} skipped (outputs exist), "
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
    with warnings.catch_warnings():
        # load_audio has warned about loud files, naming them; what remains is
        # resampling overshoot of full-scale audio, no reason to warn.
        warnings.filterwarnings("ignore", message="audio peak")
        arrays = get_embeddings(torch.from_numpy(audio), model, kind)
    host = {name: tensor.cpu().numpy() for name, tensor in arrays.items()}
    return [{name: array[i] for name, array in host.items()} for i in range(len(audio))]


def _batches(durations_s: Mapping[int, float], batch_seconds: float) -> Iterator[List[int]]:
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


def _embed_indexed(paths: Sequence[Path], model: KWMLPEmbedder, kind: str,
                   batch_seconds: float
                   ) -> Iterator[Tuple[int, Union[FileEmbedding, FileFailure]]]:
    """``(index into paths, result)`` for every path: first the files whose
    header cannot be read, then the rest shortest first."""
    durations_s: Dict[int, float] = {}
    for index, path in enumerate(paths):
        try:
            durations_s[index] = audio_duration_s(path)
        except KwmlpError as err:
            yield index, FileFailure(path, str(err))
    for batch in _batches(durations_s, batch_seconds):
        by_length: Dict[int, List[Tuple[int, np.ndarray]]] = defaultdict(list)
        for index in batch:
            try:
                audio, _ = load_audio(paths[index])
            except KwmlpError as err:
                yield index, FileFailure(paths[index], str(err))
                continue
            by_length[len(audio)].append((index, audio))
        for n_samples, clips in by_length.items():
            arrays = _embed_same_length(np.stack([audio for _, audio in clips]), model, kind)
            for (index, _), clip_arrays in zip(clips, arrays):
                yield index, FileEmbedding(paths[index], n_samples / model.sample_rate,
                                           **clip_arrays)


def _model_or_default(model: Optional[KWMLPEmbedder]) -> KWMLPEmbedder:
    return load_model() if model is None else model


def embed_files(paths: Sequence[PathLike], model: Optional[KWMLPEmbedder] = None,
                kind: str = "both", batch_seconds: float = DEFAULT_BATCH_SECONDS
                ) -> List[FileEmbedding]:
    """Embed audio files (any format ``load_audio`` reads), one result per
    path in the order given. ``kind`` is ``"both"``, ``"scene"`` or
    ``"timestamp"``. ``model=None`` loads the default; pass a model when
    calling repeatedly. Raises ``KwmlpError`` for the first bad file; see
    ``save_embeddings`` to carry on past bad files."""
    _check_kind(kind)
    _check_batch_seconds(batch_seconds)
    model = _model_or_default(model)
    paths = [Path(p) for p in paths]
    results: List[Optional[FileEmbedding]] = [None] * len(paths)
    for index, result in _embed_indexed(paths, model, kind, batch_seconds):
        if isinstance(result, FileFailure):
            raise KwmlpError(result.message)
        results[index] = result
    return results


def embed_file(path: PathLike, model: Optional[KWMLPEmbedder] = None,
               kind: str = "both") -> FileEmbedding:
    """Embed one audio file; see ``embed_files``."""
    return embed_files([path], model, kind)[0]


# provenance

def model_id(model: KWMLPEmbedder) -> str:
    """``kwmlp-`` and 12 hex digits of a SHA-256 over the encoder's weights:
    the same weights give the same id whichever file or format held them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"kwmlp-{digest.hexdigest()[:12]}"


def model_options(model: KWMLPEmbedder) -> str:
    """The ``load_model`` options that change the embeddings, as ``key=value`` words."""
    return (f"layer={model.layer} pooling={model.pooling} scene_frames={model.scene_frames} "
            f"frontend={model.mfcc.backend}")


def _describe_training_data(data: object) -> str:
    """One line from ``metadata["training_data"]`` as ``kwmlp.train.export`` writes it."""
    if not isinstance(data, Mapping):
        return str(data)
    parts = [str(data.get("layout", "unknown layout"))]
    if isinstance(data.get("clips"), Mapping):
        parts.append(", ".join(f"{n} {split}" for split, n in data["clips"].items()) + " clips")
    if isinstance(data.get("voices"), Mapping):
        parts.append(", ".join(f"{len(v)} {split}" for split, v in data["voices"].items())
                     + " voices")
    if data.get("generator"):
        parts.append(f"made by: {data['generator']}")
    return "; ".join(parts)


def model_info(model: KWMLPEmbedder) -> Dict[str, str]:
    """What ``kwmlp info`` shows: identity, sizes, where the weights came
    from, and the checkpoint's metadata (scalars, plus a training-data line)."""
    encoder = model.encoder
    head = count_parameters(encoder.head) + count_parameters(encoder.head_norm)
    total = count_parameters(encoder)
    info = {
        "model id": model_id(model),
        "weights": str(Path(model.weights_path).resolve()),
        "parameters": f"{total:,} ({total - head:,} embedding, {head:,} keyword head)",
        "sample rate": f"{model.sample_rate} Hz",
        "timestamp embedding": f"{model.timestamp_embedding_size} per {HOP_MS:g} ms",
        "scene embedding": str(model.scene_embedding_size),
        "options": model_options(model),
    }
    for key, value in model.metadata.items():
        if key == "training_data":
            info["training data"] = _describe_training_data(value)
        elif isinstance(value, (str, int, float, bool)):
            info[key.replace("_", " ")] = str(value)
    return info


# output files

def find_audio_files(inputs: Iterable[PathLike], recursive: bool = False
                     ) -> Tuple[List[Tuple[Path, Path]], List[FileFailure]]:
    """Expand files and folders to ``(file, path relative to the input it came
    from)`` pairs, each file once, plus a failure for each missing input.

    A file named as an input is taken whatever its extension; in folders,
    only ``AUDIO_EXTENSIONS`` count, hidden files and folders (``.*``) are
    skipped, and subfolders are searched only if ``recursive``."""
    found: Dict[Path, Tuple[Path, Path]] = {}
    failures = []
    for item in map(Path, inputs):
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
    ``relative`` by ``find_audio_files``), by array name; with ``fmt="npz"``
    they all go to one file. See the module docstring."""
    _check_fmt(fmt)
    _check_kind(kind)
    stem = (path if output_dir is None else Path(output_dir) / relative).with_suffix("")
    return {name: stem.with_name(f"{stem.name}.npz" if fmt == "npz" else
                                 f"{stem.name}_{name}.npy")
            for name in ARRAY_NAMES[kind]}


def write_outputs(result: FileEmbedding, outputs: Mapping[str, Path],
                  metadata: Mapping[str, object]) -> None:
    """Write ``result``'s arrays where ``output_paths`` says, each file
    atomically: a ``.npz`` gets its arrays and ``metadata``, a ``.npy`` its array."""
    arrays = result.arrays()
    by_file: Dict[Path, Dict[str, np.ndarray]] = defaultdict(dict)
    for name, path in outputs.items():
        by_file[path][name] = arrays[name]
    for path, file_arrays in by_file.items():
        # File objects, not names: numpy would append ".npz"/".npy" to the temporary's.
        if path.suffix == ".npz":
            write_atomic(path, lambda file, a=file_arrays: np.savez(file, **a, **metadata))
        else:
            (array,) = file_arrays.values()
            write_atomic(path, lambda file, a=array: np.save(file, a))


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


def save_embeddings(inputs: Iterable[PathLike], output_dir: Optional[PathLike] = None,
                    model: Optional[KWMLPEmbedder] = None, *, kind: str = "both",
                    fmt: str = "npz", recursive: bool = False, overwrite: bool = False,
                    batch_seconds: float = DEFAULT_BATCH_SECONDS,
                    progress: bool = False) -> RunSummary:
    """Embed audio files and folders (see ``find_audio_files``) to ``.npz`` or
    ``.npy`` files (see the module docstring); what ``kwmlp embed`` runs.

    Inputs whose outputs all exist are skipped unless ``overwrite``. A bad
    file is logged (``logging.ERROR``, path and reason), recorded in the
    summary, and the rest carry on. ``progress`` shows a tqdm bar on stderr.
    """
    start = time.perf_counter()
    _check_kind(kind)
    _check_fmt(fmt)
    _check_batch_seconds(batch_seconds)
    inputs = [Path(item) for item in inputs]
    model = _model_or_default(model)
    found, failures = find_audio_files(inputs, recursive)
    planned = {path: output_paths(path, relative, output_dir, fmt, kind)
               for path, relative in found}
    clashes = _collisions(planned)
    failures += [FileFailure(path, message) for path, message in clashes.items()]
    todo = [path for path, outputs in planned.items() if path not in clashes
            and (overwrite or not all(output.exists() for output in outputs.values()))]
    skipped = len(planned) - len(clashes) - len(todo)
    for failure in failures:
        logger.error(failure.message)
    if not planned and not failures:
        logger.error("no audio files found in %s", ", ".join(map(str, inputs)))
    metadata = {"model_id": model_id(model), "model_options": model_options(model),
                "sample_rate": model.sample_rate}
    done, audio_s = 0, 0.0
    with tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True) as bar:
        for _, result in _embed_indexed(todo, model, kind, batch_seconds):
            if isinstance(result, FileEmbedding):
                try:
                    write_outputs(result, planned[result.path], metadata)
                    done, audio_s = done + 1, audio_s + result.duration_s
                    logger.debug("%s -> %s: %s", result.path,
                                 ", ".join(sorted(set(map(str, planned[result.path].values())))),
                                 ", ".join(f"{name} {array.shape}"
                                           for name, array in result.arrays().items()))
                except OSError as err:
                    result = FileFailure(result.path, f"{result.path}: cannot write its "
                                                      f"output ({err})")
            if isinstance(result, FileFailure):
                logger.error(result.message)
                failures.append(result)
            bar.update()
            bar.set_postfix_str(f"{audio_s / (time.perf_counter() - start):.1f} audio-s/s",
                                refresh=False)
    return RunSummary(done, skipped, failures, audio_s, time.perf_counter() - start)
