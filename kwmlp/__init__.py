"""kwmlp: audio embeddings from KW-MLP, an all-MLP encoder over MFCCs.

``import kwmlp`` is a HEAR 2021 module::

    model = kwmlp.load_model()
    emb, ts = kwmlp.get_timestamp_embeddings(audio, model)  # (n, T, 64), (n, T) ms
    scene = kwmlp.get_scene_embeddings(audio, model)  # (n, 1024)

``model`` is a ``KWMLPEmbedder``, the whole pipeline as one ``nn.Module``.
Beyond HEAR: ``recognize``/``spot`` (the 35-word keyword head over 1 s
windows, ``kwmlp.keywords``) and ``Stream`` (audio pushed in pieces,
``kwmlp.streaming``); ONNX export is ``kwmlp.onnx_export``.
"""
from .audio import load_audio
from .corpus import embed_corpus
from .embedder import KWMLPEmbedder
from .errors import KwmlpError
from .files import FileEmbedding, embed_file, embed_files, save_embeddings
from .hear import get_scene_embeddings, get_timestamp_embeddings, load_model
from .keywords import Classification, Detection, Recognition, classify, recognize, spot
from .parquet import read_parquet_embeddings
from .streaming import Stream, StreamOutput

__version__ = "0.1.0"


def fit(*args, **kwargs):
    """Fit a classifier for your own labelled folder: ``kwmlp.train.fit.fit``
    (imported here, on first use, so ``import kwmlp`` never loads training code)."""
    from .train.fit import fit as fit_folder

    return fit_folder(*args, **kwargs)

__all__ = ["KwmlpError", "KWMLPEmbedder", "load_model", "get_timestamp_embeddings",
           "get_scene_embeddings",
           "load_audio", "embed_file", "embed_files", "save_embeddings", "FileEmbedding",
           "embed_corpus", "read_parquet_embeddings",
           "recognize", "spot", "classify", "fit", "Recognition", "Detection",
           "Classification", "Stream", "StreamOutput"]
