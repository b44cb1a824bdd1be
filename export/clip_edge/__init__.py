"""clip_edge: run CLIP towers exported by keras_clip with ONNX Runtime or LiteRT.

Needs numpy, pillow, regex, ftfy and onnxruntime (or onnxruntime-gpu) with
onnxruntime-extensions for the tokenizer graph, or ai-edge-litert; never
imports keras, tensorflow, jax or torch.

Example:
    >>> from clip_edge import ClipEdge
    >>> edge = ClipEdge("vit_b32_export")  # doctest: +SKIP
    >>> edge.zero_shot(["cat.jpg"], ["cat", "dog"])  # doctest: +SKIP
    array([[0.97, 0.03]], dtype=float32)
    >>> edge.verify().passed  # the folder's conformance.npz on this device  # doctest: +SKIP
    True
"""

from clip_edge.manifest import FORMAT_VERSION, read_manifest
from clip_edge.preprocess import preprocess
from clip_edge.runtime import ClipEdge
from clip_edge.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = ["ClipEdge", "FORMAT_VERSION", "Tokenizer", "preprocess", "read_manifest"]
