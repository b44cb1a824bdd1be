"""The folder's pre-processing graphs: `text_tokenizer.onnx`, `image_preprocessor.onnx`
and `image_bytes_preprocessor.onnx`.

`GraphTokenizer` feeds captions (str) to the tokenizer graph, which needs the
onnxruntime-extensions custom-op library (`pip install "clip-edge[cpu]"`
installs it). `GraphPreprocessor` feeds raw uint8 images, one at a time, to
the preprocessing graph (standard ONNX ops). Inputs are checked here first, so
bad input is a one-line ValueError rather than an ONNX Runtime error.

Example:
    >>> tokenizer = GraphTokenizer(session_for("vit_b32_export/text_tokenizer.onnx", [], True))  # doctest: +SKIP
    >>> tokenizer(["a photo of a cat"])[0, :7]  # doctest: +SKIP
    array([49406,   320,  1125,   539,   320,  2368, 49407], dtype=int32)
"""

import glob
import importlib.machinery
import importlib.util
import io
import os

import numpy as np
from PIL import Image, JpegImagePlugin

from clip_edge.preprocess import each_image, image_list, to_pil
from clip_edge.tokenizer import check_texts

EXTENSIONS_HINT = 'pip install "clip-edge[cpu]" (or onnxruntime-extensions)'


def extensions_library():
    """Path of onnxruntime-extensions' custom-op library, found without importing the package.

    Importing `onnxruntime_extensions` pulls in torch when it is installed; the
    shared library is all ONNX Runtime needs.
    """
    spec = importlib.util.find_spec("onnxruntime_extensions")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            found = glob.glob(os.path.join(glob.escape(folder), "_extensions_pydll" + suffix))
            if found:
                return found[0]
    raise ValueError(f"text_tokenizer.onnx needs onnxruntime-extensions: {EXTENSIONS_HINT}.")


def has_extensions():
    """Whether onnxruntime-extensions' library is installed."""
    try:
        extensions_library()
    except ValueError:
        return False
    return True


def session_for(path, providers, custom_ops=False):
    """An onnxruntime session for a graph; a file it cannot load is a ValueError naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if custom_ops:
        options.register_custom_ops_library(extensions_library())
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as error:  # onnxruntime's errors derive from Exception only
        raise ValueError(f"ONNX Runtime cannot load {path}: {error}") from error


class GraphTokenizer:
    """Captions -> int32 `(B, L)` token ids through `text_tokenizer.onnx`."""

    def __init__(self, session, context_length):
        self.session = session
        self.context_length = context_length

    def __call__(self, texts):
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.context_length), np.int32)
        (ids,) = self.session.run(["token_ids"], {"texts": np.array(texts, dtype=object)})
        return ids.astype(np.int32)


# PIL modes the graph takes as they are (channels 1, 3, 4); others are converted.
_GRAPH_MODES = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "LA": "RGBA", "1": "L"}


def to_uint8(image):
    """A path, file bytes, PIL image or uint8/uint16 array -> uint8 `(H, W, C)`, C in 1, 3, 4.

    Uses the same checks and 16-bit rule as the Python path (`preprocess.to_pil`).

    Example:
        >>> to_uint8(np.zeros((5, 7), np.uint8)).shape
        (5, 7, 1)
    """
    pil = to_pil(image)
    mode = _GRAPH_MODES.get(pil.mode)
    if mode is None:
        mode = "RGBA" if pil.mode == "P" and "transparency" in pil.info else "RGB"
    array = np.asarray(pil if pil.mode == mode else pil.convert(mode))
    return np.ascontiguousarray(array[:, :, None] if array.ndim == 2 else array)


def file_bytes(image):
    """A path's or bytes object's file bytes, or None for a PIL image or an array."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    return None


def decodes_like_pillow(data):
    """Whether `image_bytes_preprocessor.onnx` decodes `data` to Pillow's pixels.

    Measured: 8-bit RGB / grayscale / palette PNG without transparency and
    baseline JPEG without chroma subsampling (4:4:4 or grayscale) give Pillow's
    pixels (JPEG: IDCT rounding, one grey level at most); subsampled JPEGs differ
    in chroma upsampling, alpha is dropped, 16-bit PNGs are misread, CMYK is
    refused. The decoder also ends the process on other formats.
    """
    with Image.open(io.BytesIO(data)) as probe:
        if "transparency" in probe.info:
            return False
        if probe.format == "PNG":
            return probe.mode in ("RGB", "L", "P")
        if probe.format == "JPEG":
            return (probe.mode in ("RGB", "L") and "progressive" not in probe.info
                    and JpegImagePlugin.get_sampling(probe) in (-1, 0))
    return False


class GraphPreprocessor:
    """Images -> float32 `(B, S, S, 3)` through `image_preprocessor.onnx`, one image per run.

    With `bytes_session` (`image_bytes_preprocessor.onnx`), file bytes and paths
    that Pillow decodes without error and that `decodes_like_pillow` go to that
    graph as they are; everything else is decoded by Pillow first.
    """

    def __init__(self, session, bytes_session=None):
        self.session = session
        self.bytes_session = bytes_session

    def _one(self, image):
        pil = to_pil(image)  # checks the file: the decoder must never see a broken one
        data = file_bytes(image) if self.bytes_session is not None else None
        if data is not None and decodes_like_pillow(data):
            encoded = np.frombuffer(data, np.uint8)
            return self.bytes_session.run(["images"], {"image_bytes": encoded})[0]
        return self.session.run(["images"], {"image": to_uint8(pil)})[0]

    def __call__(self, images):
        images = image_list(images)
        if not images:
            raise ValueError("Received no images.")
        return np.concatenate(each_image(images, self._one)).astype(np.float32)
