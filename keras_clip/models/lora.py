"""Low-rank adapters (LoRA, Hu et al. 2021) on CLIP's dense layers: `enable_lora` / `merge_lora`.

Built on Keras' own `Dense.enable_lora`: the adapted kernel is
`W + (alpha / rank) * A @ B`, with `B` initialised to zeros so the model's
outputs at `enable_lora` are the base model's. Every other weight is frozen;
only the adapters train. Keras writes the merged kernel when it saves a LoRA
layer and zeroes the adapters when it loads one, which would leave a reloaded
model with dead adapters (`A = B = 0` have zero gradients), so the adapted
layers here save the base kernel and the adapters as they are, and the CLIP
config records the LoRA settings: `.keras` files and preset folders give back
the same adapters.

Example:
    >>> model.enable_lora(4)                  # doctest: +SKIP
    >>> model.compile(optimizer="adamw"); model.fit(data)  # doctest: +SKIP
    >>> model.merge_lora()                    # plain Dense layers again, for export
"""

import json
import os

from keras import ops

TOWERS = ("image", "text")
TARGETS = ("attention", "mlp")
LORA_FILE = "lora.json"


def _blocks(tower):
    return [tower.get_layer(name) for name in type(tower).block_names(tower.config)]


def target_layers(tower, targets):
    """The `Dense` layers of `tower` that LoRA `targets` (`"attention"`, `"mlp"`) name.

    Transformer blocks: `attn.in_proj`, `attn.out_proj` (attention) and `c_fc`,
    `c_proj` (mlp). ResNet image tower: the attention pool's `q_proj`, `k_proj`,
    `v_proj`, `c_proj` (attention); its convolutions take no adapters.
    """
    found = []
    names = {layer.name for layer in tower.layers}
    if "attnpool" in names:
        pool = tower.get_layer("attnpool")
        if "attention" in targets:
            found += [pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj]
        return found
    for block in _blocks(tower):
        if "attention" in targets:
            found += [block.attn.in_proj, block.attn.out_proj]
        if "mlp" in targets:
            found += [block.c_fc, block.c_proj]
    return found


def _names(value, allowed, what):
    values = (value,) if isinstance(value, str) else tuple(value)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"`{what}` must be a non-empty subset of {allowed}; received {value!r}.")
    return tuple(v for v in allowed if v in values)


def _save_adapted(layer, store):
    store["0"] = layer._kernel
    variables = [layer.bias] if layer.bias is not None else []
    for index, variable in enumerate(variables + [layer.lora_kernel_a, layer.lora_kernel_b], 1):
        store[str(index)] = variable


def _load_adapted(layer, store):
    variables = [layer._kernel] + ([layer.bias] if layer.bias is not None else [])
    variables += [layer.lora_kernel_a, layer.lora_kernel_b]
    if len(store.keys()) != len(variables):
        raise ValueError(
            f"Layer {layer.path!r} holds LoRA adapters ({len(variables)} variables), but the "
            f"saved weights have {len(store.keys())}; expected weights saved from a model "
            "with the same enable_lora settings.")
    for index, variable in enumerate(variables):
        variable.assign(store[str(index)])


class LoRAMixin:
    """`enable_lora` / `merge_lora` for `keras_clip.CLIP` (see the module docstring).

    The host calls `self._restore_lora(lora)` at the end of `__init__` and
    implements `_towers_changed()` (drops compiled inference functions).
    """

    lora_config = None

    def _restore_lora(self, lora):
        self._lora_layers = []
        if lora:
            self.enable_lora(**lora)

    @property
    def lora_enabled(self):
        return bool(self.lora_config)

    @property
    def lora_layers(self):
        """The `Dense` layers that hold adapters (empty without LoRA)."""
        return list(self._lora_layers)

    def enable_lora(self, rank, towers=TOWERS, targets=TARGETS, alpha=None):
        """Adds rank-`rank` adapters to the towers' dense layers and freezes everything else.

        Args:
            rank: adapter rank (a positive int).
            towers: `"image"`, `"text"` or both.
            targets: `"attention"` (QKV and output projections) and/or `"mlp"`.
            alpha: scale numerator (`alpha / rank` multiplies `A @ B`); default `rank`.

        Compile again after enabling (the trainable weights changed).

        Example:
            >>> model.enable_lora(4, towers="image")  # doctest: +SKIP
        """
        if self.lora_enabled:
            raise ValueError(
                f"LoRA is already enabled on this model (rank {self.lora_config['rank']}); "
                "call merge_lora() before enabling it again.")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
            raise ValueError(f"`rank` must be a positive integer, received {rank!r}.")
        towers = _names(towers, TOWERS, "towers")
        targets = _names(targets, TARGETS, "targets")
        alpha = rank if alpha is None else alpha
        if not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"`alpha` must be a positive number, received {alpha!r}.")
        layers = []
        for name in towers:
            layers += target_layers(getattr(self, f"{name}_encoder"), targets)
        if not layers:
            raise ValueError(f"No dense layer of the {' and '.join(towers)} tower(s) matches "
                             f"targets {targets}; the ResNet image tower has only "
                             "'attention' targets (its attention pool).")
        sublayers = list(self._flatten_layers(include_self=False))
        self._trainable_before_lora = ([(layer, layer.trainable) for layer in sublayers],
                                       [(v, v.trainable) for v in self.weights])
        for layer in sublayers:  # BatchNorm too: a non-trainable one keeps its statistics
            layer.trainable = False
        for layer in layers:
            layer.trainable = True
            layer.enable_lora(rank, lora_alpha=alpha)  # freezes the kernel
            if layer.bias is not None:
                layer.bias.trainable = False
            layer.save_own_variables = lambda store, layer=layer: _save_adapted(layer, store)
            layer.load_own_variables = lambda store, layer=layer: _load_adapted(layer, store)
        self._lora_layers = layers
        self.lora_config = {"rank": rank, "towers": list(towers), "targets": list(targets),
                            "alpha": alpha}
        self._towers_changed()

    def merge_lora(self):
        """Folds the adapters into the kernels: plain `Dense` layers, the same outputs.

        The trainable flags go back to what they were before `enable_lora`.

        Example:
            >>> model.merge_lora()  # doctest: +SKIP
        """
        if not self.lora_enabled:
            raise ValueError("merge_lora() needs LoRA adapters; this model has none "
                             "(call enable_lora(rank) first).")
        for layer in self._lora_layers:
            merged = ops.cast(layer.kernel, layer._kernel.dtype)  # W + (alpha / rank) A @ B
            layer._kernel.assign(merged)
            for variable in (layer.lora_kernel_a, layer.lora_kernel_b):
                layer._untrack_variable(variable)
            del layer.lora_kernel_a, layer.lora_kernel_b
            del layer.save_own_variables, layer.load_own_variables
            layer.lora_enabled, layer.lora_rank, layer.lora_alpha = False, None, None
        layer_flags, variable_flags = self._trainable_before_lora
        for layer, trainable in layer_flags:
            layer.trainable = trainable
        for variable, trainable in variable_flags:
            variable.trainable = trainable
        self._lora_layers, self.lora_config = [], None
        self._towers_changed()


def write_lora_file(model, folder):
    """Writes `lora.json` (the LoRA settings) to a preset folder if `model` has adapters."""
    path = os.path.join(folder, LORA_FILE)
    if model.lora_enabled:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(model.lora_config, file, indent=2)
    elif os.path.exists(path):
        os.remove(path)


def read_lora_file(folder):
    """The LoRA settings a preset folder records (`None` without `lora.json`)."""
    path = os.path.join(folder, LORA_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        try:
            values = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error.msg}); expected the LoRA "
                             "settings save_to_preset writes.") from None
    if not isinstance(values, dict) or "rank" not in values:
        raise ValueError(f"{path} lacks 'rank'; expected the LoRA settings save_to_preset "
                         "writes.")
    return values

