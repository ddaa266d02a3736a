"""Finding a run's inputs and planning their outputs: files and folders ->
audio files, each with the path below the input it came from, and the inputs
that must be refused (two writing one output, an output replacing an input)."""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._types import PathLike
from .audio import AUDIO_EXTENSIONS
from .errors import KwmlpError
from .results import FileFailure

logger = logging.getLogger(__name__)

Plan = Dict[Path, Tuple[Path, Dict[str, Path]]]  # input -> (path below its input, outputs)


def as_paths(paths: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """One path or several as a list: a lone ``str`` is one path, not its characters."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths]


def find_audio_files(inputs: Union[PathLike, Iterable[PathLike]], recursive: bool = False
                     ) -> Tuple[List[Tuple[Path, Path]], List[FileFailure]]:
    """Expand files and folders to ``(file, path relative to the input it came
    from)`` pairs, each file once, plus a failure for each missing input.

    A file named as an input is taken whatever its extension; in folders,
    only ``AUDIO_EXTENSIONS`` count, hidden files and folders (``.*``) are
    skipped, and subfolders are searched only if ``recursive``. One file
    under two names (a symbolic link beside it) is taken once, under its own
    name rather than the link's, and the name left out is logged."""
    found: Dict[Path, Tuple[Path, Path]] = {}
    failures = []
    for item in as_paths(inputs):
        if item.is_file():
            _take(found, item, Path(item.name))
        elif item.is_dir():
            for folder, subfolders, names in os.walk(item):
                subfolders[:] = sorted(d for d in subfolders
                                       if recursive and not d.startswith("."))
                for name in sorted(names):
                    path = Path(folder) / name
                    if name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
                        continue
                    if path.exists() and not path.is_file():
                        failures.append(_not_a_file(path))
                    else:  # a broken link too: reading it fails, naming it
                        _take(found, path, path.relative_to(item))
        elif item.exists():
            failures.append(_not_a_file(item))
        else:
            failures.append(FileFailure(item, f"{item}: no such file or folder"))
    return list(found.values()), failures


def _not_a_file(path: Path) -> FileFailure:
    return FileFailure(path, f"{path}: not a regular file or folder (a pipe or device); "
                             f"save the audio to a file first")


def _take(found: Dict[Path, Tuple[Path, Path]], path: Path, relative: Path) -> None:
    """Add ``(path, relative)`` to ``found`` (by resolved file) unless its file is
    there already; a file's own name wins over a link's."""
    key = path.resolve()
    kept = found.get(key)
    if kept is None:
        found[key] = (path, relative)
        return
    dropped = path
    if kept[0].is_symlink() and not path.is_symlink():
        found[key], dropped = (path, relative), kept[0]
    logger.info("%s: the same file as %s, embedded once under that name", dropped,
                found[key][0])


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


def check_output_dir(output_dir: Optional[PathLike]) -> None:
    """``KwmlpError`` if ``output_dir`` (None: beside the inputs) is empty, or it or
    the nearest of its parents that exists is not a folder."""
    if output_dir is None:
        return
    if str(output_dir) == "":
        raise KwmlpError("the output folder is an empty string (an unset variable?); name "
                         "a folder, or . for this one")
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise KwmlpError(f"{output_dir}: exists and is not a folder; name a folder for the "
                         f"outputs")
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not path.exists() and not existing.is_dir():
        raise KwmlpError(f"{output_dir}: {existing} is a file, so no folder can be made "
                         f"below it; name another output folder")


def plan_outputs(inputs: Union[PathLike, Iterable[PathLike]], recursive: bool,
                 outputs_of: Callable[[Path, Path], Dict[str, Path]]
                 ) -> Tuple[Plan, List[FileFailure]]:
    """The inputs found (``find_audio_files``) that may be embedded, each with
    its path relative to its input and its outputs, ``outputs_of(path,
    relative)`` (a sink's), and the failures: missing inputs, and inputs whose
    output would clash with another's or replace an input."""
    inputs = as_paths(inputs)
    found, failures = find_audio_files(inputs, recursive)
    planned = {path: outputs_of(path, relative) for path, relative in found}
    refused = {**_collisions(planned), **_replacing_inputs(planned)}
    failures += [FileFailure(path, message) for path, message in refused.items()]
    kept = {path: (relative, planned[path]) for path, relative in found if path not in refused}
    if not found and not failures:
        logger.error("no audio files found in %s", ", ".join(map(str, inputs)))
    return kept, failures
