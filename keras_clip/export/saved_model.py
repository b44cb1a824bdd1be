"""TensorFlow SavedModel export of one tower, from every Keras backend.

- tensorflow: the tower is traced into a `tf.Module` directly.
- jax: `keras.export.ExportArchive` converts the tower with jax2tf; the result is
  loaded and wrapped so that every backend gives the same signatures.
- torch: torch cannot write a SavedModel, so the model is saved to a temporary
  preset folder and a subprocess with `KERAS_BACKEND=tensorflow` exports it
  (same weights, so the same numbers). Set `route_torch=False` to get an error
  instead.

Folders (signatures identical on every route):
- `image_encoder`, `text_encoder`: `serving_default`, `images` float32
  `(batch, S, S, 3)` or `token_ids` int32 `(batch, L)` -> `embeddings`,
  `normalized_embeddings`. Only core TensorFlow ops: they load with plain
  `tf.saved_model.load` where `tensorflow_text` is not installed (tested), and
  they are what the LiteRT converter reads.
- `text_encoder_strings`: `serving_default` (also named `serve_texts`), `texts`
  tf.string `(batch,)` -> the same plus `token_ids`; tokenizes in the graph
  (`tf_tokenizer.GraphTokenizer`: OpenAI's cleaning in TF ops, OpenAI's word
  pattern, keras-hub's byte-pair encoder on the bundled vocabulary). ids equal
  `keras_clip.CLIPTokenizer`'s on 99.45% of the 6,020 rows of
  `tests/golden/tokenizer_corpus.json.gz`; the rest are ftfy's heuristic
  mojibake repairs (export/README.md). Loading needs `import tensorflow_text`
  (its ops), as TF Serving builds with TF Text ops have.

Example:
    >>> from keras_clip.export.saved_model import export_saved_model
    >>> export_saved_model(model, "text_encoder", "out/text_encoder")  # doctest: +SKIP
    >>> export_saved_model(model, "text_encoder_strings", "out/text_encoder_strings")  # doctest: +SKIP
"""

import os
import subprocess
import sys
import tempfile

import keras

from keras_clip.export.onnx_export import OUTPUT_NAMES, tower_spec

STRINGS = "text_encoder_strings"
SAVED_MODELS = ("image_encoder", "text_encoder", STRINGS)


def export_saved_models(model, names, directory, route_torch=True):
    """Writes each folder in `names` (of `SAVED_MODELS`) to `directory/<name>`; returns the route.

    Under torch one TensorFlow subprocess writes all of them.
    """
    if keras.backend.backend() == "torch" and route_torch:
        export_in_tensorflow_subprocess(model, names, directory)
        return "tensorflow subprocess"
    route = None
    for name in names:
        route = export_saved_model(model, name, os.path.join(directory, name), route_torch)
    return route


def export_saved_model(model, name, path, route_torch=True):
    """Writes SavedModel folder `name` (one of `SAVED_MODELS`) to `path`; returns the route.

    `"text_encoder_strings"` is the text tower behind the in-graph tokenizer.
    """
    if name not in SAVED_MODELS:
        raise ValueError(f"Unknown SavedModel {name!r}; expected one of {SAVED_MODELS}.")
    backend = keras.backend.backend()
    strings = name == STRINGS
    tower, input_name, shape, dtype = tower_spec(model, "text_encoder" if strings else name)
    context_length = model.config.text.context_length if strings else None
    if backend == "tensorflow":
        call = lambda x: tower(x, training=False)
        _save_module(path, call, [tower], input_name, shape, dtype, context_length)
        return "tensorflow"
    if backend == "jax":
        _export_jax(tower, path, input_name, shape, dtype, context_length)
        return "jax2tf"
    if backend == "torch":
        if not route_torch:
            raise ValueError(
                "The torch backend cannot write a TensorFlow SavedModel. Export with "
                "KERAS_BACKEND=tensorflow (or jax), or pass formats=('onnx',)."
            )
        export_in_tensorflow_subprocess(model, [name], os.path.dirname(path) or ".", path)
        return "tensorflow subprocess"
    raise ValueError(f"SavedModel export supports tensorflow, jax and torch; backend is {backend!r}.")


def _save_module(path, call, trackables, input_name, shape, dtype, context_length):
    import tensorflow as tf

    module = tf.Module()
    module.dependencies = list(trackables)
    spec = tf.TensorSpec((None, *shape), dtype, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(x):
        embeddings = tf.cast(call(x), tf.float32)
        normalized = tf.math.l2_normalize(embeddings, axis=-1, epsilon=1e-24)  # max(norm, 1e-12)
        return {OUTPUT_NAMES[0]: embeddings, OUTPUT_NAMES[1]: normalized}

    module.serve = serve
    signatures = {"serving_default": serve}
    if context_length is not None:  # the strings folder: tensorflow_text ops

        from keras_clip.export.tf_tokenizer import GraphTokenizer

        module.tokenizer = GraphTokenizer(context_length)

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="texts")])
        def serve_texts(texts):
            token_ids = module.tokenizer(texts)
            # jax2tf towers refuse an empty batch: a dummy row, sliced away.
            outputs = tf.cond(
                tf.shape(token_ids)[0] > 0, lambda: dict(serve(token_ids)),
                lambda: {k: v[:0] for k, v in serve(tf.zeros([1, context_length], tf.int32)).items()})
            outputs["token_ids"] = token_ids
            return outputs

        module.serve_texts = serve_texts
        signatures = {"serving_default": serve_texts, "serve_texts": serve_texts}
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, path, signatures=signatures, options=options)


def _export_jax(tower, path, input_name, shape, dtype, context_length):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(tower)
    archive.add_endpoint(
        "serve",
        lambda x: tower(x, training=False),
        input_signature=[keras.InputSpec(shape=(None, *shape), dtype=dtype, name=input_name)],
    )
    with tempfile.TemporaryDirectory() as staging:
        archive.write_out(staging, verbose=False)
        loaded = tf.saved_model.load(staging)
        _save_module(path, loaded.serve, [loaded], input_name, shape, dtype, context_length)


def export_in_tensorflow_subprocess(model, names, directory, path=None):
    """Writes `names` from a `KERAS_BACKEND=tensorflow` subprocess (via a temporary preset)."""
    import keras_clip

    with tempfile.TemporaryDirectory() as staging:
        preset = os.path.join(staging, "preset")
        model.save_to_preset(preset)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(keras_clip.__file__)))
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=python_path)
        command = [sys.executable, "-m", "keras_clip.export.saved_model", preset, directory]
        command += list(names) if path is None else [f"{names[0]}={path}"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"The TensorFlow subprocess exporting {list(names)} failed "
                f"(exit {result.returncode}):\n{result.stderr[-4000:]}"
            )


def _main(argv):
    """`python -m keras_clip.export.saved_model PRESET_DIR OUT_DIR TOWER[=PATH]...` (TF)."""
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run with KERAS_BACKEND=tensorflow.")
    from keras_clip.presets import from_preset

    preset, directory, *towers = argv
    model = from_preset(preset)
    for tower in towers:
        name, _, path = tower.partition("=")
        export_saved_model(model, name, path or os.path.join(directory, name))


if __name__ == "__main__":
    _main(sys.argv[1:])
