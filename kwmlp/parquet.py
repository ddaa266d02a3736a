"""Parquet output of a corpus run (``embed_corpus(format="parquet")``), and its reader.

A run writes part files ``kwmlp-part-<time ns>-<pid>-<seq>.parquet`` directly under
the output folder, each atomically (a temporary of its own, fsync, rename),
each holding one row per input with the columns

==================  =========================================  ==================
column              type                                       value
==================  =========================================  ==================
``path``            string                                     the input's path relative to its input folder (``/``-separated)
``model_id``        string                                     ``kwmlp-<12 hex of the weights>``
``model_options``   string                                     JSON object, e.g. ``{"layer": "12", "pooling": "iterative", ...}``
``sample_rate``     int32                                      16000
``resampler``       string                                     ``soxr`` or ``resampy``
``duration_s``      float64                                    seconds of audio at 16 kHz
``scene``           fixed_size_list<float32>[1024]             ``(1024,)``; null unless asked for
``embedding``       list<fixed_size_list<float32>[64]>         ``(T, 64)``, one row per 10 ms; null unless asked for
``timestamps``      list<float32>                              ``(T,)`` in ms; null unless asked for
==================  =========================================  ==================

A name that is not valid UTF-8 is stored with its bad bytes as ``\\xNN``
escapes. The run's manifest (``kwmlp.manifest``) says which part holds the
current row of each path; ``read_parquet_embeddings`` follows it. Only a file
whose source changed between runs has an older row too (in an older part).
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from itertools import count
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Tuple

import numpy as np

from ._types import PathLike
from .atomic import write_atomic
from .errors import KwmlpError
from .extras import require
from .manifest import MANIFEST_DIR, read_records, read_settings

PART_PREFIX, PART_SUFFIX = "kwmlp-part-", ".parquet"
FORMAT_VERSION = b"1"  # schema metadata ``kwmlp_parquet_version``


def _pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or ``KwmlpError`` naming the extra."""
    return (require("pyarrow", "parquet", "Parquet output"),
            require("pyarrow.parquet", "parquet", "Parquet output"))


def row_key(relative: Path) -> str:
    """A path relative to its input as the ``path`` column (and manifest key)
    holds it: ``/``-separated, bytes that are not UTF-8 as ``\\xNN``."""
    return os.fsencode(relative.as_posix()).decode("utf-8", "backslashreplace")


def options_json(model_options: str) -> str:
    """``KWMLPEmbedder.model_options()``'s ``key=value`` words as a JSON object."""
    return json.dumps(dict(word.split("=", 1) for word in model_options.split()))


def _schema(pa, scene_size: int, embedding_size: int):
    return pa.schema([
        ("path", pa.string()), ("model_id", pa.string()), ("model_options", pa.string()),
        ("sample_rate", pa.int32()), ("resampler", pa.string()), ("duration_s", pa.float64()),
        ("scene", pa.list_(pa.float32(), scene_size)),
        ("embedding", pa.list_(pa.list_(pa.float32(), embedding_size))),
        ("timestamps", pa.list_(pa.float32())),
    ], metadata={b"kwmlp_parquet_version": FORMAT_VERSION})


def rows_table(rows: List[Tuple[str, float, Mapping[str, np.ndarray]]],
               metadata: Mapping[str, object], scene_size: int, embedding_size: int):
    """A ``pyarrow.Table`` of ``(key, duration_s, arrays)`` rows (``arrays`` as
    ``FileEmbedding.arrays()`` gives them) made as ``metadata``
    (``sinks.run_metadata``) says."""
    pa, _ = _pyarrow()
    schema = _schema(pa, scene_size, embedding_size)
    n = len(rows)

    def column(name: str, build):
        if n and name not in rows[0][2]:  # every row holds the arrays its run's kind asks for
            return pa.nulls(n, schema.field(name).type)
        return build([arrays[name] for _, _, arrays in rows])

    def offsets(arrays: List[np.ndarray]):
        return pa.array(np.concatenate([[0], np.cumsum([len(a) for a in arrays])]), pa.int32())

    def flat(arrays: List[np.ndarray]):
        return pa.array(np.concatenate(arrays) if arrays else np.zeros(0, np.float32),
                        pa.float32())

    columns = {
        "path": pa.array([key for key, _, _ in rows], pa.string()),
        "model_id": pa.array([metadata["model_id"]] * n, pa.string()),
        "model_options": pa.array([options_json(metadata["model_options"])] * n, pa.string()),
        "sample_rate": pa.array([metadata["sample_rate"]] * n, pa.int32()),
        "resampler": pa.array([metadata["resampler"]] * n, pa.string()),
        "duration_s": pa.array([duration_s for _, duration_s, _ in rows], pa.float64()),
        "scene": column("scene", lambda arrays: pa.FixedSizeListArray.from_arrays(
            flat(arrays), scene_size)),
        "embedding": column("embedding", lambda arrays: pa.ListArray.from_arrays(
            offsets(arrays),
            pa.FixedSizeListArray.from_arrays(flat([a.ravel() for a in arrays]),
                                              embedding_size))),
        "timestamps": column("timestamps", lambda arrays: pa.ListArray.from_arrays(
            offsets(arrays), flat(arrays))),
    }
    return pa.Table.from_pydict(columns, schema=schema)


class PartWriter:
    """Writes part files into ``output_dir``, each atomically, named uniquely."""

    def __init__(self, output_dir: Path):
        _pyarrow()  # fail before embedding anything
        self.output_dir = output_dir
        self._seq = count()

    def new_name(self) -> str:
        """A part name no other part, run or process has."""
        return (f"{PART_PREFIX}{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}"
                f"{PART_SUFFIX}")

    def write(self, name: str, table) -> None:
        """Write ``table`` as the part ``name`` (from ``new_name``)."""
        _, pq = _pyarrow()
        write_atomic(self.output_dir / name, lambda file: pq.write_table(table, file))


def foreign_parquet_files(output_dir: Path, recorded: Mapping[str, Mapping]) -> List[Path]:
    """The ``.parquet`` files in ``output_dir`` that no record lists: a reader
    of the whole folder (pandas, pyarrow) would read them with the parts."""
    listed = {name for entry in recorded.values() for name in entry["outputs"]}
    return sorted(path for path in output_dir.glob(f"*{PART_SUFFIX}")
                  if path.name not in listed)


def _read_part(pq, path: Path):
    """A part's table, or ``KwmlpError`` for a file that is no kwmlp part."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise KwmlpError(f"{path}: missing; the manifest lists it as holding embeddings "
                         f"(deleted since?). Rerun the embedding to redo its rows") from None
    except OSError as err:  # pyarrow's ArrowInvalid is an OSError too
        raise KwmlpError(f"{path}: cannot read it as Parquet ({err})") from None
    if (table.schema.metadata or {}).get(b"kwmlp_parquet_version") is None:
        raise KwmlpError(f"{path}: not a kwmlp part (no kwmlp_parquet_version in its schema "
                         f"metadata); read it with pyarrow or pandas")
    return table


def _table_rows(table) -> Iterator[Tuple[str, Dict[str, object]]]:
    """``(path, record)`` per row of a part's table; see ``read_parquet_embeddings``."""
    if table.num_rows == 0:
        return
    scalars = {name: table.column(name).to_pylist()
               for name in ("path", "model_id", "model_options", "sample_rate", "resampler",
                            "duration_s")}
    arrays: Dict[str, List[np.ndarray]] = {}
    for name in ("scene", "embedding", "timestamps"):
        column = table.column(name).combine_chunks()
        if column.null_count == len(column):
            continue
        values = column.flatten()
        if name == "embedding":
            width = column.type.value_type.list_size
            values = values.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        else:
            values = values.to_numpy(zero_copy_only=False)
        if name == "scene":
            arrays[name] = list(values.reshape(len(column), -1))
        else:
            bounds = column.offsets.to_numpy()
            arrays[name] = [values[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    for i, key in enumerate(scalars["path"]):
        record: Dict[str, object] = {name: arrays[name][i] for name in arrays}
        record.update(model_id=scalars["model_id"][i],
                      model_options=json.loads(scalars["model_options"][i]),
                      sample_rate=scalars["sample_rate"][i], resampler=scalars["resampler"][i],
                      duration_s=scalars["duration_s"][i])
        yield key, record


def read_parquet_embeddings(path: PathLike) -> Dict[str, Dict[str, object]]:
    """Read what ``embed_corpus(format="parquet")`` wrote: ``path`` is its
    output folder (the current row of every recorded input, as the manifest
    lists them) or one part file (all its rows).

    Returns ``{path relative to its input: record}``, each record holding
    ``embedding`` ``(T, 64)`` float32, ``timestamps`` ``(T,)`` float32 in ms,
    ``scene`` ``(1024,)`` float32 (those the run computed), ``model_id``,
    ``model_options`` (dict), ``sample_rate``, ``resampler`` and
    ``duration_s``. Only recorded parts are read. Raises ``KwmlpError`` for a
    folder without a manifest or of another format, a recorded part that is
    missing, and a file that is no kwmlp part."""
    _, pq = _pyarrow()
    path = Path(path)
    if not path.is_dir():
        return dict(_table_rows(_read_part(pq, path)))
    settings = read_settings(path)
    if settings is None:
        raise KwmlpError(f"{path}: no {MANIFEST_DIR}/ here, so not the output folder of "
                         f"embed_corpus(format='parquet'); name the folder or a part file")
    if settings["outputs"] != "parquet":
        raise KwmlpError(f"{path}: holds npz/npy outputs, not Parquet parts; read them with "
                         f"numpy")
    keys_by_part: Dict[str, set] = defaultdict(set)
    for key, entry in read_records(path).items():
        keys_by_part[entry["outputs"][0]].add(key)
    result = {}
    for part, keys in sorted(keys_by_part.items()):
        result.update((key, record) for key, record in _table_rows(_read_part(pq, path / part))
                      if key in keys)
    return result
