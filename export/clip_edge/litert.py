"""LiteRT (`.tflite`) towers, run with ai-edge-litert (imported only when used).

Each tower file has one signature, `serving_default`: input `images` float32
`(batch, S, S, 3)` or `token_ids` int32 `(batch, L)`, outputs `embeddings` and
`normalized_embeddings`; the signature runner resizes the batch axis itself.

Example:
    >>> tower = LiteRTTower("vit_b32_export/text_encoder.tflite", "token_ids")  # doctest: +SKIP
    >>> tower.run(token_ids)[0].shape  # doctest: +SKIP
    (2, 512)
"""

import numpy as np

INSTALL_HINT = 'pip install "clip-edge[litert]"'


def interpreter_class():
    """`ai_edge_litert.interpreter.Interpreter`, or a ValueError saying how to install it."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ValueError(f'runtime="litert" needs ai-edge-litert: {INSTALL_HINT}.') from error
    return Interpreter


class LiteRTTower:
    """One `.tflite` tower: `run(inputs)` -> `(embeddings, normalized_embeddings)`.

    LiteRT runs on the CPU (its XNNPACK delegate); `providers` says so.

    Args:
        path: the `.tflite` file.
        input_name: `"images"` or `"token_ids"`.
    """

    providers = ("LiteRT",)

    def __init__(self, path, input_name):
        interpreter = interpreter_class()
        try:
            self._runner = interpreter(model_path=str(path)).get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"LiteRT cannot load {path}: {error}") from error
        self.input_name = input_name
        details = self._runner.get_output_details()
        self.embed_dim = int(details["embeddings"]["shape"][-1])

    def run(self, inputs):
        dtype = np.float32 if self.input_name == "images" else np.int32
        outputs = self._runner(**{self.input_name: np.ascontiguousarray(inputs, dtype)})
        return outputs["embeddings"], outputs["normalized_embeddings"]
