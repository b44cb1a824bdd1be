"""The two towers of an export folder, on ONNX Runtime or LiteRT, behind one interface.

`load_towers` picks the files the manifest lists for a runtime and precision
(`manifest["onnx"]` or `manifest["litert"]`, `{tower: {precision: file}}`) and
returns `(image_tower, text_tower)`, each with `run(inputs) -> (embeddings,
normalized_embeddings)`, `embed_dim` and `providers`.

Example:
    >>> image, text = load_towers("vit_b32_export", manifest, "onnx", "fp32")  # doctest: +SKIP
    >>> text.run(token_ids)[1].shape  # doctest: +SKIP
    (2, 512)
"""

from clip_edge.graphs import session_for
from clip_edge.litert import LiteRTTower
from clip_edge.manifest import resolve

RUNTIMES = ("onnx", "litert")
TOWERS = (("image_encoder", "images"), ("text_encoder", "token_ids"))


def default_providers():
    """CUDA first when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or available


class OnnxTower:
    """One ONNX tower: `run(inputs)` -> `(embeddings, normalized_embeddings)`."""

    def __init__(self, path, input_name, providers):
        self._session = session_for(path, providers)  # every graph optimisation: ORT's default
        self.input_name = input_name
        self.embed_dim = int(self._session.get_outputs()[0].shape[-1])

    @property
    def providers(self):
        return self._session.get_providers()

    def run(self, inputs):
        embeddings, normalized = self._session.run(["embeddings", "normalized_embeddings"],
                                                   {self.input_name: inputs})
        return embeddings, normalized


def tower_files(folder, manifest, runtime, precision):
    """`{tower: file}` for `runtime` and `precision`, or a ValueError saying what the folder has."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, received {runtime!r:.40}.")
    if not manifest.get(runtime):
        raise ValueError(f"{folder} has no {runtime} towers; export them with `keras-clip export "
                         f"--formats onnx,litert`, or pick the other runtime.")
    files = {}
    for tower, _ in TOWERS:
        variants = manifest[runtime].get(tower, {})
        if precision not in variants:
            raise ValueError(f"No {precision} {runtime} {tower} in {folder}; the manifest lists "
                             f"{sorted(variants) or 'none'}. Export with --{precision} or pick another.")
        files[tower] = variants[precision]
    return files


def load_towers(folder, manifest, runtime, precision, providers=None):
    """`(image_tower, text_tower)` for `runtime` (`"onnx"` or `"litert"`) and `precision`.

    `providers` (onnxruntime's) apply to `"onnx"` only; LiteRT runs on the CPU.
    """
    files = tower_files(folder, manifest, runtime, precision)
    if runtime == "litert":
        return tuple(LiteRTTower(resolve(folder, files[t], f"litert.{t}.{precision}"), name)
                     for t, name in TOWERS)
    providers = list(providers) if providers is not None else default_providers()
    return tuple(OnnxTower(resolve(folder, files[t], f"onnx.{t}.{precision}"), name, providers)
                 for t, name in TOWERS)
