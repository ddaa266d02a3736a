"""The ``kwmlp`` command (also ``python -m kwmlp``): ``embed``, ``spot``,
``export`` and ``info``.

Parsing and reporting only: ``embed`` runs ``kwmlp.files.save_embeddings``
(or, with ``--engine``, ``--workers`` or ``--format parquet``,
``kwmlp.corpus.embed_corpus``), ``spot`` ``kwmlp.keywords.spot_file`` on files
and ``kwmlp.streaming.spot_pcm`` on stdin, ``export``
``kwmlp.onnx_export.export_onnx``, ``info`` shows ``kwmlp.info.model_info``.
Over 300 lines because four commands' options, help texts and exit-status
policy (interrupts, closed pipes) live here and nowhere else.
"""
from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from .audio import DEFAULT_RESAMPLER, RESAMPLERS, load_audio, read_pcm16
from .corpus import DEFAULT_PART_SECONDS, ENGINES, FORMATS, embed_corpus
from .decoding import DEFAULT_BATCH_SECONDS
from .embedder import KWMLPEmbedder, peak_warned_already
from .frontend import SAMPLE_RATE
from .errors import KwmlpError
from .files import RunSummary, save_embeddings
from .hear import load_model
from .info import model_info
from .keywords import (DEFAULT_HOP_MS, DEFAULT_REFRACTORY_MS, DEFAULT_THRESHOLD, NO_LABEL,
                       SMOOTH_MS, Detection, classify, head_words, hop_samples,
                       model_threshold, spot_audio)
from .manifest import MANIFEST_DIR
from .onnx_export import OPSET, check_output_path, export_onnx, output_names, require_onnx
from .plot import check_plot_path, plot_spotting
from .pooling import METHODS as POOLING_METHODS
from .run import PROGRESS_LINE_S
from .streaming import spot_pcm
from .vocabulary import LABELS, WORDS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE  # as a shell reports a tool ended by SIGPIPE: 141

EMBED_EXAMPLES = f"""\
examples:
  kwmlp embed clip.wav                      # writes clip.npz next to clip.wav
  kwmlp embed data/ -o emb/ --recursive     # data/a/b.flac -> emb/a/b.npz
  kwmlp embed a.wav b.ogg --scene-only -o emb/
  kwmlp embed data/ -o emb/ --format npy    # emb/x_embedding.npy, x_timestamps.npy, x_scene.npy
  kwmlp embed data/ -o emb/ --threads 1 --device cpu
  kwmlp embed data/ -o emb/ -r --workers 2  # decode in 2 processes, resume by manifest
  kwmlp embed data/ -o emb/ -r --format parquet              # part files, one row per input
  kwmlp embed data/ -o emb/ -r --engine ray --workers 4      # Ray Data (RAY_ADDRESS: a cluster)

Each .npz holds embedding (T, 64) float32, timestamps (T,) in ms, scene (1024,)
float32, model_id, model_options, sample_rate, resampler and source (the input's
file name). Without -o, outputs go next
to their inputs. With -o, the output folder keeps a manifest ({MANIFEST_DIR}/)
of which file each output came from. Inputs whose outputs exist, complete,
made from this very file as it is now with the same model, options and
arrays, are skipped, so rerunning an interrupted command finishes the rest;
other existing outputs are embedded again; --overwrite recomputes everything.
A folder of another format, or a Parquet folder of another model, options,
resampler or kind, is refused unless --overwrite (which replaces it). The
progress bar shows only on a terminal; otherwise a progress line is logged
every {PROGRESS_LINE_S:g} s.

--engine, --workers and --format parquet need -o.

exit status: 0 all files embedded or skipped; 1 a file failed, no audio was
found, or the model could not be loaded; 2 bad arguments; 130 interrupted
(Ctrl-C), 143 terminated (kill).
"""

SPOT_EXAMPLES = f"""\
examples:
  kwmlp spot rec.wav                         # word, start s, end s, score per line
  kwmlp spot a.wav b.flac --threshold 0.8    # fewer, surer detections
  arecord -q -f S16_LE -r 16000 -c 1 | kwmlp spot -    # live: raw 16 kHz s16le on stdin
  sox -d -q -t raw -r 16000 -e signed -b 16 -c 1 - | kwmlp spot -
  ffmpeg -loglevel quiet -i talk.mp3 -f s16le -ac 1 -ar 16000 - | kwmlp spot -

Prints one line per detected keyword: FILE, WORD, START_S, END_S, SCORE, tab-
separated (FILE is - for stdin; a backslash, tab or newline in it is written \\\\, \\t,
\\n). The checkpoint's head (the {len(WORDS)} words shipped,
or the labels of a kwmlp fit checkpoint) scores a 1 s window every --hop-ms; each
word's probability is averaged over the last {SMOOTH_MS:g} ms of windows (posterior
smoothing), a word is detected while its smoothed probability is the highest, at
least --threshold and above the no-keyword probability, and no new detection starts
within --refractory-ms of the last window of the previous one (the previous word
firing again within it is held back to the end of that run). START_S..END_S is
where the word lies: the overlap of the windows in which it reached the
threshold. On stdin, detections print as they end (up to ~1 s after the word).

exit status: 0 all inputs spotted (with or without detections); 1 an input
failed or the checkpoint has no keyword head; 2 bad arguments; 130 interrupted
(Ctrl-C), 143 terminated (kill).
"""

EXPORT_EXAMPLES = f"""\
examples:
  kwmlp export kwmlp.onnx                   # chunks (batch, 16000) -> embeddings (batch, 98, 64)
  kwmlp export kwmlp.onnx --head            # ... and logits (batch, {len(LABELS)} classes shipped)
  kwmlp export l8.onnx --layer 8 --model my.pt

The graph is the MFCC and encoder for a batch of 1 s chunks at 16 kHz (dynamic
batch axis), ONNX opset {OPSET}. Padding, chunking, stitching and pooling stay in
Python: see the README's "ONNX export" section. Needs the onnx extra:
pip install 'kwmlp[onnx]'.
"""

FIT_EXAMPLES = f"""\
examples:
  kwmlp fit my_words/ -o my.pt               # my_words/<label>/*.wav, a head on the encoder
  kwmlp fit my_words/ -o my.pt --mode finetune --val my_val/
  kwmlp fit wake/ -o wake.pt --negatives chatter/ music/   # one label + "none of these"
  kwmlp spot --model my.pt rec.wav; kwmlp classify --model my.pt clip.wav

DATA_DIR holds one folder of audio per label (any format, rate, channels,
length); _background_/ (silence, noise) and _unknown_/ (other speech and
sounds) hold audio that must map to "{NO_LABEL}". A clip up to 1 s is one
window, centred; a longer clip gives a window every 250 ms. head (default)
fits a new head on the encoder's features of augmented copies (the HEAR
embeddings stay bit-identical); finetune then trains every weight. Without
--val, files named <speaker>_nohash_<n> are split by speaker, others at
random. Needs no extra; simulated rooms join the augmentation with the train
extra (pip install 'kwmlp[train]').

exit status: 0 fitted from every file; 1 the folder cannot be fitted, or a file
could not be read (named; the checkpoint is fitted on the rest and written, as
embed writes the other outputs); 2 bad arguments.
"""

CLASSIFY_EXAMPLES = f"""\
examples:
  kwmlp classify clip.wav take2.flac         # FILE, LABEL, SCORE per line
  kwmlp classify --model my.pt *.wav --threshold 0.7
  sox take.mp3 -t raw -r 16000 -c 1 -e signed -b 16 - | kwmlp classify -

Prints FILE<TAB>LABEL<TAB>SCORE for each file: the best word in the clip's best
1 s window and its probability, or {NO_LABEL} when that probability is below the
threshold (default: the checkpoint's own, as the shipped weights and every kwmlp fit
store one, else {DEFAULT_THRESHOLD}) or
not above the window's no-keyword probability; SCORE is the best word's probability
either way. A backslash, tab or newline in FILE is written \\\\, \\t, \\n.

exit status: 0 all files classified; 1 a file failed; 2 bad arguments.
"""

INFO_EXAMPLES = """\
examples:
  kwmlp info                    # the shipped weights
  kwmlp info --model my.pt      # a checkpoint of either format
"""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seed(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 2**63:  # what torch.manual_seed takes
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text}")
    return value


def _thread_count(text: str) -> int:
    value = _positive_int(text)
    available = os.cpu_count() or 1
    if value > available:
        raise argparse.ArgumentTypeError(f"must be at most {available}, the CPUs this "
                                         f"machine has, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _hop_ms(text: str) -> float:
    value = _float(text)
    try:
        hop_samples(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def _add_model_option(parser: argparse.ArgumentParser,
                      help: str = "checkpoint (default: shipped weights)") -> None:
    parser.add_argument("--model", metavar="FILE", help=help)


def _build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The ``kwmlp`` parser and each command's own (whose usage its errors print)."""
    parser = argparse.ArgumentParser(
        prog="kwmlp", description="KW-MLP audio embeddings (HEAR 2021 API) from audio files.",
        epilog="run 'kwmlp COMMAND --help' for a command's options and examples")
    parser.add_argument("--version", action="version", version=f"kwmlp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser(
        "embed", help="embed audio files and folders to .npz/.npy files or Parquet parts",
        description="Embed audio files (any format libsndfile reads, any sample rate,\n"
                    "any channel count) and write one output per input.",
        epilog=EMBED_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    embed.add_argument("paths", nargs="+", metavar="PATH", help="audio files and folders")
    embed.add_argument("-o", "--output-dir",
                       help="write outputs here, mirroring each input folder's tree "
                            "(default: next to each input)")
    kind = embed.add_mutually_exclusive_group()
    kind.add_argument("--scene-only", dest="kind", action="store_const", const="scene",
                      default="both", help="write only the scene embedding")
    kind.add_argument("--timestamp-only", dest="kind", action="store_const",
                      const="timestamp", help="write only timestamp embeddings and times")
    _add_model_option(embed)
    embed.add_argument("-r", "--recursive", action="store_true",
                       help="search input folders recursively")
    embed.add_argument("--format", choices=FORMATS, default="npz",
                       help="npz: one file per input (default); npy: one file per array; "
                            "parquet: part files, one row per input (needs -o)")
    embed.add_argument("--engine", choices=ENGINES,
                       help="local processes or Ray Data (needs -o; default: local, "
                            "decoding in a thread of this process)")
    embed.add_argument("--workers", type=_positive_int, metavar="N",
                       help="local: decoding processes; ray: model actors (implies "
                            "--engine local)")
    embed.add_argument("--ray-address", metavar="ADDRESS",
                       help="Ray cluster to use with --engine ray (default: RAY_ADDRESS, "
                            "else a local Ray instance)")
    embed.add_argument("--part-seconds", type=_positive_float, metavar="S",
                       help=f"audio per Parquet part file (default: {DEFAULT_PART_SECONDS:g})")
    embed.add_argument("--overwrite", action="store_true",
                       help="recompute inputs whose outputs already exist")
    embed.add_argument("--device", choices=("cpu", "cuda"),
                       help="default: cuda when available")
    embed.add_argument("--threads", type=_thread_count, metavar="N",
                       help="CPU threads for torch, at most the CPU count "
                            "(default: torch's choice)")
    embed.add_argument("--layer", type=_positive_int,
                       help="take embeddings after this many blocks (default: all)")
    embed.add_argument("--pooling", choices=POOLING_METHODS,
                       help="scene pooling (default: iterative, as published)")
    embed.add_argument("--resampler", choices=RESAMPLERS, default=DEFAULT_RESAMPLER,
                       help="to 16 kHz: soxr (default, libsoxr HQ) or resampy (kaiser_best, "
                            "as openl3)")
    embed.add_argument("--batch-seconds", type=_positive_float, default=DEFAULT_BATCH_SECONDS,
                       metavar="S", help="audio read per batch (default: %(default)s)")
    embed.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar or lines (errors and the summary still print)")
    embed.add_argument("-v", "--verbose", action="store_true",
                       help="list every output written, with its arrays' shapes")

    spot = commands.add_parser(
        "spot", help="find keywords (the shipped 35 words, or a fitted checkpoint's labels) "
                     "in audio files or raw PCM on stdin",
        description="Spot keywords with the checkpoint's head: the 35 words of the shipped "
                    "weights, or the labels of a kwmlp fit checkpoint (--model).",
        epilog=SPOT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    spot.add_argument("paths", nargs="+", metavar="FILE",
                      help="audio files, or - for raw 16 kHz mono s16le PCM on stdin")
    spot.add_argument("--threshold", type=_probability,
                      help=f"smoothed probability a word needs (default: the checkpoint's "
                           f"own, else {DEFAULT_THRESHOLD})")
    spot.add_argument("--hop-ms", type=_hop_ms, default=DEFAULT_HOP_MS,
                      help="ms between 1 s windows, a multiple of 10 (default: %(default)s)")
    spot.add_argument("--refractory-ms", type=_non_negative_float,
                      default=DEFAULT_REFRACTORY_MS,
                      help="ms after a detection before the next may start "
                           "(default: %(default)s)")
    _add_model_option(spot)
    spot.add_argument("--threads", type=_thread_count, metavar="N",
                      help="CPU threads for torch (default: torch's choice)")
    spot.add_argument("--plot", metavar="OUT.png",
                      help="draw the audio, each word's probability, the threshold and "
                           "the detections (one FILE; .png, .pdf, .svg, .eps or .ps; never "
                           "over a file kwmlp did not draw; needs the plot extra)")

    classify = commands.add_parser(
        "classify", help="one label per audio file: the clip-level answer",
        description="Classify whole clips with the checkpoint's head.",
        epilog=CLASSIFY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    classify.add_argument("paths", nargs="+", metavar="FILE",
                          help="audio files, or - for raw 16 kHz mono s16le PCM on stdin "
                               "(one clip, read to its end)")
    _add_model_option(classify)
    classify.add_argument("--threshold", type=_probability,
                          help="probability the best word needs (default: the checkpoint's)")

    fit = commands.add_parser(
        "fit", help="fit a classifier for your own labelled folder of audio",
        description="Fit a keyword/sound classifier on the KW-MLP encoder.",
        epilog=FIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("data_dir", metavar="DATA_DIR", help="one sub-folder of audio per label")
    fit.add_argument("-o", "--output", required=True, metavar="OUT.pt",
                     help="the checkpoint to write")
    fit.add_argument("--mode", default="head", help="head (default) or finetune")
    fit.add_argument("--val", metavar="DIR", help="validation clips, in DATA_DIR's layout")
    fit.add_argument("--negatives", nargs="+", default=[], metavar="DIR",
                     help="folders of audio that must map to none of the labels")
    _add_model_option(fit, "base checkpoint (default: shipped weights)")
    fit.add_argument("--epochs", type=_positive_int,
                     help="head: L-BFGS steps; finetune: passes over the clips")
    fit.add_argument("--seed", type=_seed, default=0)
    fit.add_argument("--threads", type=_thread_count, metavar="N",
                     help="CPU threads for torch (default: torch's choice)")

    export = commands.add_parser(
        "export", help="export the MFCC + encoder for 1 s chunks to ONNX",
        description="Write the per-chunk graph (MFCC, encoder, optionally the keyword\n"
                    "head) as an ONNX model.",
        epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    _add_model_option(export)
    export.add_argument("--layer", type=_positive_int,
                        help="embeddings after this many blocks (default: all)")
    export.add_argument("--head", action="store_true",
                        help="also output the keyword head's logits (all blocks)")

    info = commands.add_parser(
        "info", help="describe a model: id, sizes, weights, training data",
        description="Describe the model kwmlp embed would use.",
        epilog=INFO_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_option(info)
    return parser, commands.choices


def uses_corpus_pipeline(args: argparse.Namespace) -> bool:
    """Whether ``embed`` runs ``embed_corpus`` rather than ``save_embeddings``."""
    return bool(args.engine or args.workers or args.ray_address or args.format == "parquet")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name); exits with status 2 on bad
    arguments, as argparse does. No file system access."""
    top, commands = _build_parser()
    args = top.parse_args(list(argv))
    parser = commands[args.command]
    if args.command == "fit":
        from .train.fit import MODES  # only `kwmlp fit` loads the training package

        if args.mode not in MODES:
            parser.error(f"--mode must be one of {', '.join(MODES)}, got {args.mode!r}")
    if args.command == "spot" and args.plot and (len(args.paths) != 1 or args.paths == ["-"]):
        parser.error("--plot draws one FILE (not - for stdin)")
    written = {"export": "output", "fit": "output", "spot": "plot", "embed": "output_dir"}
    if getattr(args, written.get(args.command, ""), None) == "-":
        parser.error(f"{args.command} writes files: - (standard output) cannot take them; "
                     f"name a file (./- if you mean one called -)")
    if args.command == "embed" and uses_corpus_pipeline(args):
        if args.output_dir is None:
            parser.error("--engine, --workers, --ray-address and --format parquet need "
                         "-o/--output-dir, the folder that keeps the outputs and their manifest")
        if args.ray_address and args.engine != "ray":
            parser.error("--ray-address goes with --engine ray")
    if args.command == "embed" and args.part_seconds is not None and args.format != "parquet":
        parser.error("--part-seconds sizes Parquet part files: it goes with --format parquet")
    return args


def _load(args: argparse.Namespace) -> KWMLPEmbedder:
    options = _model_options(args)
    if args.command == "export":
        options["device"] = "cpu"
    return load_model(args.model or "", **options)


def _model_options(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in ("layer", "pooling", "device")
            if getattr(args, name, None) is not None}


def _report(summary: RunSummary) -> int:
    print(f"kwmlp: {summary}", file=sys.stderr)
    nothing_found = summary.done + summary.skipped + len(summary.failures) == 0
    return EXIT_FAILED if summary.failures or nothing_found else EXIT_OK


def _embed(args: argparse.Namespace, model: KWMLPEmbedder) -> int:
    return _report(save_embeddings(args.paths, args.output_dir, model, kind=args.kind,
                                   format=args.format, recursive=args.recursive,
                                   overwrite=args.overwrite, batch_seconds=args.batch_seconds,
                                   resampler=args.resampler, progress=not args.quiet))


def _embed_corpus(args: argparse.Namespace) -> int:
    return _report(embed_corpus(
        args.paths, args.output_dir, engine=args.engine or "local", workers=args.workers,
        format=args.format, recursive=args.recursive, overwrite=args.overwrite, kind=args.kind,
        batch_seconds=args.batch_seconds, resampler=args.resampler,
        part_seconds=args.part_seconds or DEFAULT_PART_SECONDS, ray_address=args.ray_address,
        progress=not args.quiet,
        model_file_path=args.model or "", **_model_options(args)))


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(text: str) -> str:
    r"""``text`` as one tab-separated field: backslash, tab, newline and carriage
    return written as ``\\``, ``\t``, ``\n``, ``\r``, so each record stays one line."""
    return text.translate(_TSV_ESCAPES)


def _print_detections(name: str, detections: Sequence[Detection]) -> None:
    for d in detections:
        print(f"{_field(name)}\t{_field(d.word)}\t{d.start_ms / 1000:.2f}\t"
              f"{d.end_ms / 1000:.2f}\t{d.score:.3f}", flush=True)


def _load_or_report(path: str) -> Optional[np.ndarray]:
    """The file's 16 kHz mono samples, or None after logging why it cannot be read."""
    try:
        return load_audio(path)[0]
    except KwmlpError as err:
        logging.error("error: %s", err)
        return None


def _spot(args: argparse.Namespace, model: KWMLPEmbedder) -> int:
    options = dict(hop_ms=args.hop_ms, threshold=args.threshold,
                   refractory_ms=args.refractory_ms)
    status = EXIT_OK
    for path in args.paths:
        if path == "-":
            try:
                for detection in spot_pcm(sys.stdin.buffer, model, **options):
                    _print_detections(path, [detection])
            except KwmlpError as err:
                logging.error(f"error: stdin: {err}")
                status = EXIT_FAILED
            continue
        audio = _load_or_report(path)
        if audio is None:
            status = EXIT_FAILED
            continue
        recognition, detections = spot_audio(audio, model, **options)
        _print_detections(path, detections)
        if args.plot:
            plot_spotting(args.plot, audio, recognition, detections,
                          model_threshold(model, args.threshold))
            print(f"kwmlp: drew {args.plot}", file=sys.stderr)
    return status


def _read_stdin() -> Optional[np.ndarray]:
    """All of stdin as raw 16 kHz mono s16le PCM, or None after saying it is empty."""
    blocks = list(read_pcm16(sys.stdin.buffer, SAMPLE_RATE))
    if not blocks:
        logging.error("error: no audio on stdin (classify - reads raw 16 kHz mono s16le PCM)")
        return None
    return np.concatenate(blocks)


def _classify(args: argparse.Namespace, model: KWMLPEmbedder) -> int:
    status = EXIT_OK
    for path in args.paths:
        audio = _read_stdin() if path == "-" else _load_or_report(path)
        if audio is None:
            status = EXIT_FAILED
            continue
        with peak_warned_already():  # load_audio has named a loud file already
            (answer,) = classify(audio, model, threshold=args.threshold)
        print(f"{_field(path)}\t{_field(answer.label)}\t{answer.score:.3f}", flush=True)
    return status


def _fit(args: argparse.Namespace) -> int:
    from .train.fit import fit

    try:
        with logging_redirect_tqdm():  # an unreadable file's message stays off the bar
            report = fit(args.data_dir, args.output, mode=args.mode, val_dir=args.val,
                         negatives=args.negatives, model_file_path=args.model or "",
                         epochs=args.epochs, seed=args.seed)
    except (KwmlpError, OSError, ValueError) as err:
        logging.error("error: %s", err)
        return EXIT_FAILED
    print(report, file=sys.stderr)
    return EXIT_FAILED if report.failures else EXIT_OK


def _export(args: argparse.Namespace, model: KWMLPEmbedder) -> int:
    export_onnx(model, args.output, head=args.head)
    print(f"kwmlp: wrote {args.output} (opset {OPSET}, outputs: "
          f"{', '.join(output_names(args.head))})", file=sys.stderr)
    return EXIT_OK


def _info(model: KWMLPEmbedder) -> int:
    info = model_info(model)
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key + ':':<{width + 1}} {value}")
    return EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM (plain ``kill``): unwinds like Ctrl-C, so temporaries are removed,
    and exits 143 as a terminated Unix tool does."""


def _interrupt(signum: int, frame: object) -> None:
    raise Terminated


def _stdout_closed() -> bool:
    """Whether standard output's reader has gone (``kwmlp spot x.wav | head -1``),
    so a broken pipe elsewhere (a worker's) is told apart from ours: the write end
    of a pipe (or socket) nobody reads polls as an error or hang-up."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a file
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
        return False
    # Point fd 1 at /dev/null: the interpreter's last flush would fail once more.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return True


def _formatwarning(message: Warning, category: type, filename: str, lineno: int,
                   line: Optional[str] = None) -> str:
    return f"warning: {message}"


def _run(args: argparse.Namespace) -> int:
    """Carry out the parsed command; returns its exit status."""
    if args.command == "embed" and uses_corpus_pipeline(args):
        try:
            with logging_redirect_tqdm():
                return _embed_corpus(args)
        except BrokenPipeError:  # stdout's reader left: main's policy, not a bad option
            raise
        except (OSError, ValueError) as err:  # missing/bad checkpoint or option
            logging.error("error: %s", err)
            return EXIT_FAILED
    if args.command == "fit":
        return _fit(args)
    if args.command == "export":  # say so before the model is loaded
        require_onnx()
        check_output_path(args.output)
    if args.command == "spot" and args.plot:
        check_plot_path(args.plot)
    try:
        model = _load(args)
    except (KwmlpError, OSError, ValueError) as err:  # missing/bad checkpoint or option
        logging.error("error: %s", err)
        return EXIT_FAILED
    if args.command == "info":
        return _info(model)
    if args.command in ("spot", "classify"):
        head_words(model)  # a checkpoint without a keyword head fails before any input
        return _spot(args, model) if args.command == "spot" else _classify(args, model)
    if args.command == "export":
        return _export(args, model)
    with logging_redirect_tqdm():
        return _embed(args, model)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``kwmlp`` console script; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Library warnings and errors go through logging, which tqdm keeps off its bar.
    logging.basicConfig(format="kwmlp: %(message)s", level=logging.INFO)
    if getattr(args, "verbose", False):
        logging.getLogger("kwmlp").setLevel(logging.DEBUG)  # ours only, not numba's
    warnings.formatwarning = _formatwarning
    logging.captureWarnings(True)
    signal.signal(signal.SIGTERM, _interrupt)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        logging.error("error: --device cuda, but torch sees no CUDA device")
        return EXIT_FAILED
    try:
        status = _run(args)
        sys.stdout.flush()  # here, so a reader that left is seen before exit
        return status
    except KwmlpError as err:  # a run that cannot start, e.g. -o names a file
        logging.error("error: %s", err)
        return EXIT_FAILED
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        return EXIT_CLOSED_PIPE  # quietly, as Unix tools do when their reader stops
    except KeyboardInterrupt as interruption:
        if args.command == "embed":
            logging.error("interrupted; outputs written so far are complete, and rerunning "
                          "the same command skips them and finishes the rest")
        else:
            logging.error("interrupted")
        return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
