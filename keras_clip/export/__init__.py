"""Export CLIP's image and text towers separately to ONNX and TensorFlow SavedModel.

`export_towers` writes, into one folder:

- `image_encoder.onnx`, `text_encoder.onnx` (and `.fp16.onnx` / `.int8.onnx`
  variants on request): input `images` float32 `(batch, S, S, 3)` or
  `token_ids` int32 `(batch, 77)`; outputs `embeddings` and
  `normalized_embeddings`; the manifest's values in `metadata_props`.
- SavedModels `image_encoder/`, `text_encoder/` (`serving_default`; the text
  one also `serve_texts` on raw `tf.string` captions).
- `bpe_simple_vocab_16e6.txt.gz`, the tokenizer vocabulary the edge runtime reads.
- `manifest.json`: preprocessing and tokenizer constants, embedding size, logit
  scale, every file's SHA-256, exporter versions and timings.

Routes per backend: see `onnx_export` and `saved_model`. Under the torch
backend the SavedModels are written by a TensorFlow subprocess.

Example:
    >>> import keras_clip
    >>> from keras_clip.export import export_towers
    >>> model = keras_clip.from_preset("vit_b32", weights=None)
    >>> manifest = export_towers(model, "vit_b32_export", int8=True)  # doctest: +SKIP
    >>> sorted(manifest["onnx"]["image_encoder"])  # doctest: +SKIP
    ['fp32', 'int8']
"""

import importlib

# Loaded on first use, so `keras-clip export --help` imports no backend.
_PUBLIC = {"FORMAT_VERSION": "manifest", "read_manifest": "manifest", "verify_files": "manifest",
           "FORMATS": "towers", "export_towers": "towers"}
__all__ = ["FORMAT_VERSION", "export_towers", "read_manifest", "verify_files"]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_clip.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"keras_clip.export.{_PUBLIC[name]}"), name)
