"""``kwmlp spot FILE --plot OUT.png``: what the keyword head heard, drawn with
matplotlib (the ``plot`` extra): the waveform, each word's probability per
1 s window (the words that come near the threshold), the threshold, and the
detections as shaded spans."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ._types import PathLike
from .atomic import write_atomic
from .errors import KwmlpError
from .extras import require
from .frontend import SAMPLE_RATE
from .keywords import Detection, Recognition

SHOWN_WORDS = 8  # at most this many words' curves, those that rose highest
SHOWN_FROM = 0.5  # of the threshold: words that never rise this near are left out
# The picture's Creator, which tells a file kwmlp drew (and may draw again) from any
# other; these formats carry it (matplotlib refuses metadata in the others).
MARK = "kwmlp spot --plot"
MARK_SPAN = 64 * 1024  # bytes read at each end of an existing picture for MARK
FORMATS = ("png", "pdf", "svg", "eps", "ps")


def require_plot():
    """``matplotlib.pyplot`` on a file-only backend, or ``KwmlpError`` naming the extra."""
    matplotlib = require("matplotlib", "plot", "--plot")
    matplotlib.use("Agg")  # a PNG file, no display
    return require("matplotlib.pyplot", "plot", "--plot")


def _drawn_by_kwmlp(path: Path) -> bool:
    """Whether ``MARK`` lies in the file's first or last ``MARK_SPAN`` bytes, where
    matplotlib writes it (PDF: its Info dict at the end; the others: the header),
    so a large file of someone else's is never read whole."""
    try:
        with path.open("rb") as file:
            head = file.read(MARK_SPAN)
            file.seek(max(file.seek(0, 2) - MARK_SPAN, 0))
            return MARK.encode() in head or MARK.encode() in file.read()
    except OSError:
        return False


def check_plot_path(path: PathLike) -> None:
    """Raise ``KwmlpError`` unless ``path`` can take the picture: its folder
    exists, its extension is one of ``FORMATS``, and it is no file that kwmlp did
    not draw (a picture of yours is never written over). Cheap, so the CLI calls
    it before spotting."""
    path = Path(path)
    require_plot()
    if path.is_dir() or not path.parent.is_dir():
        raise KwmlpError(f"{path}: cannot write the picture there (name a file in an "
                         f"existing folder, e.g. spot.png)")
    if path.suffix.lower().lstrip(".") not in FORMATS:
        raise KwmlpError(f"{path}: --plot draws {', '.join(FORMATS)}; name the picture "
                         f"with one of those extensions, e.g. .png")
    if path.exists() and not _drawn_by_kwmlp(path):
        raise KwmlpError(f"{path}: exists and kwmlp did not draw it, so --plot will not "
                         f"write over it; remove it or name another file")


def plot_spotting(path: PathLike, audio: np.ndarray, recognition: Recognition,
                  detections: List[Detection], threshold: float) -> None:
    """Draw to ``path`` (whole or not at all; ``check_plot_path``) one sound's
    ``recognition`` (``kwmlp.recognize`` of ``audio``, 16 kHz ``(n_samples,)``) and
    its ``detections``."""
    check_plot_path(path)
    path, plt = Path(path), require_plot()
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5),
                                         gridspec_kw={"height_ratios": [1, 2]})
    seconds = np.arange(len(audio)) / SAMPLE_RATE
    top.plot(seconds, audio, linewidth=0.5, color="0.3")
    top.set_ylabel("audio")
    probabilities = recognition.probabilities[0].numpy()  # (n_windows, n_words)
    centres_s = (recognition.start_ms.numpy() + 500.0) / 1000  # window centres
    peaks = probabilities.max(axis=0) if len(probabilities) else np.zeros(0)
    shown = [i for i in np.argsort(-peaks)[:SHOWN_WORDS] if peaks[i] >= SHOWN_FROM * threshold]
    for i in shown:
        bottom.plot(centres_s, probabilities[:, i], label=recognition.words[i])
    bottom.axhline(threshold, color="k", linestyle="--", linewidth=1, label="threshold")
    for axis in (top, bottom):
        for d in detections:
            axis.axvspan(d.start_ms / 1000, d.end_ms / 1000, color="tab:green", alpha=0.15)
    for d in detections:
        bottom.annotate(f"{d.word} {d.score:.2f}", (d.start_ms / 1000, 1.0), fontsize=8,
                        va="top")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("time (s); windows at their centres, detections shaded")
    bottom.set_ylabel("word probability")
    bottom.legend(loc="upper right", fontsize=7, ncol=2)
    figure.tight_layout()
    write_atomic(path, lambda file: figure.savefig(
        file, format=path.suffix.lower().lstrip("."), dpi=100, metadata={"Creator": MARK}))
    plt.close(figure)
