"""The torch backend's inference path for the ResNet and text towers.

On torch every Keras op runs eagerly, so a tower call pays Keras' per-layer
machinery (`Layer.__call__`, dtype and name scopes, input conversion) and
BatchNorm's three elementwise passes per convolution, which dominate at
batch 1. For inference without gradients this module runs the same
computation with `torch.nn.functional` on the tower's own variables: each
BatchNorm folded into its convolution (`W * gamma / sqrt(var + eps)`, bias
`beta - mean * gamma / sqrt(var + eps)`), fused linear layers and PyTorch's
scaled-dot-product attention.

The folded tensors are cached per tower and rebuilt whenever any variable
changes (a new tensor or an in-place update: `assign`, `set_weights`,
`load_weights`, an optimizer step), so checkpoints and saved variables are
untouched. It is used only when all of these hold: torch backend, not
training, gradients disabled (`predict_on_batch`, `encode_image`,
`encode_text` and `evaluate` run under `torch.no_grad`), float32 layers
without LoRA or quantization, a concrete input tensor, and no tracing,
export or stateless scope. Anything else runs the functional graph.

Example:
    >>> import torch
    >>> with torch.no_grad():                                # doctest: +SKIP
    ...     embeddings = tower(images, training=False)      # this path
"""

import keras
import numpy as np
import torch
import torch.nn.functional as F
from keras.src.backend.common.stateless_scope import in_stateless_scope

_ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,  # exact (erf) GELU, as keras_clip.layers.activations.gelu
}


def forward(tower, inputs):
    """`tower`'s output on `inputs` by this path, or None where it does not apply."""
    if isinstance(inputs, np.ndarray):  # as the functional graph would convert it
        inputs = keras.ops.convert_to_tensor(inputs, dtype=tower.inputs[0].dtype)
    if (
        torch.is_grad_enabled()
        or not isinstance(inputs, torch.Tensor)
        or inputs.device.type == "meta"
        or in_stateless_scope()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
    ):
        return None
    key = tuple((id(p), p._version) for p in tower.parameters())
    cached = getattr(tower, "_torch_inference_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, plan(tower))
        tower._torch_inference_cache = cached
    runner = cached[1]
    return None if runner is None else runner(inputs)


def plan(tower):
    """A function computing `tower`'s inference output, or None if the tower is not eligible."""
    if not eligible(tower):
        return None
    return RUNNERS[tower.torch_inference](tower)


def eligible(tower):
    """True if every layer is float32 with plain (not LoRA, not quantized) weights."""
    for layer in tower._flatten_layers(include_self=False):
        if layer.dtype_policy.compute_dtype != "float32" or layer.dtype_policy.variable_dtype != "float32":
            return False
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return False
    return True


def _value(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _linear(dense):
    """(weight (out, in), bias or None) of a Keras Dense layer, as F.linear takes them."""
    bias = _value(dense.bias) if dense.use_bias else None
    return _value(dense.kernel).T, bias


def _conv_bn(conv, bn, padding):
    """F.conv2d arguments of `conv` followed by inference-mode `bn`, folded into one."""
    if conv.use_bias or not (bn.center and bn.scale) or conv.groups != 1:
        raise ValueError(f"Cannot fold {bn.name} into {conv.name}.")
    scale = _value(bn.gamma) * torch.rsqrt(_value(bn.moving_variance) + bn.epsilon)
    kernel = _value(conv.kernel).permute(3, 2, 0, 1)  # (out, in, kh, kw)
    weight = (kernel * scale[:, None, None, None]).contiguous()
    bias = _value(bn.beta) - _value(bn.moving_mean) * scale
    return {"weight": weight, "bias": bias, "stride": conv.strides, "padding": padding}


def resnet_runner(tower):
    """Inference of a `ModifiedResNetEncoder`, channels-first inside whatever its layout."""
    get = tower.get_layer
    stem = [_conv_bn(get(f"conv{i}"), get(f"bn{i}"), 1) for i in (1, 2, 3)]
    blocks = [_bottleneck(get(name)) for name in tower.block_names(tower.config)]
    pool = _attention_pool(get("attnpool"))

    def run(images):  # (B, S, S, 3)
        x = images.permute(0, 3, 1, 2).contiguous()  # (B, 3, S, S)
        for conv in stem:
            x = torch.relu_(F.conv2d(x, **conv))
        x = F.avg_pool2d(x, 2)
        for block in blocks:
            x = block(x)
        return pool(x)  # (B, embed_dim)

    return run


def _bottleneck(block):
    conv1 = _conv_bn(block.conv1, block.bn1, 0)
    conv2 = _conv_bn(block.conv2, block.bn2, 1)
    conv3 = _conv_bn(block.conv3, block.bn3, 0)
    stride = block.stride
    downsample = (
        _conv_bn(block.downsample_conv, block.downsample_bn, 0) if block.has_downsample else None
    )

    def run(x):  # (B, C, H, W)
        out = torch.relu_(F.conv2d(x, **conv1))
        out = torch.relu_(F.conv2d(out, **conv2))
        if stride > 1:
            out = F.avg_pool2d(out, stride)
            x = F.avg_pool2d(x, stride)
        out = F.conv2d(out, **conv3)
        if downsample is not None:
            x = F.conv2d(x, **downsample)
        return torch.relu_(out.add_(x))

    return run


def _attention_pool(layer):
    heads, head_dim = layer.num_heads, layer.head_dim
    positions = _value(layer.positional_embedding)  # (HW + 1, C)
    q, k, v, c = (_linear(d) for d in (layer.q_proj, layer.k_proj, layer.v_proj, layer.c_proj))

    def run(features):  # (B, C, H, W)
        batch = features.shape[0]
        tokens = features.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1) + positions  # (B, T, C)
        split = lambda t: t.view(batch, -1, heads, head_dim).transpose(1, 2)  # (B, H, T, Dh)
        query = split(F.linear(tokens[:, :1], *q))
        pooled = F.scaled_dot_product_attention(
            query, split(F.linear(tokens, *k)), split(F.linear(tokens, *v))
        )  # (B, H, 1, Dh)
        return F.linear(pooled.reshape(batch, -1), *c)

    return run


def text_runner(tower):
    """Inference of a `TextTransformerEncoder`."""
    get = tower.get_layer
    embeddings = get("embeddings")
    tokens, positions = _value(embeddings.token_embedding), _value(embeddings.positional_embedding)
    blocks = [_residual_block(get(name)) for name in tower.block_names(tower.config)]
    ln_final = _layer_norm(get("ln_final"))
    projection = _value(get("text_projection").kernel)  # (width, embed_dim)

    def run(token_ids):  # (B, L)
        ids = token_ids.long()
        x = F.embedding(ids, tokens) + positions  # (B, L, D)
        for block in blocks:
            x = block(x)
        x = ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), ids.argmax(-1)]  # (B, D)
        return pooled @ projection

    return run


def _layer_norm(layer):
    if layer.rms_scaling or not (layer.center and layer.scale):
        raise ValueError(f"Unsupported LayerNormalization settings in {layer.name}.")
    args = (_value(layer.gamma), _value(layer.beta), layer.epsilon)
    return lambda x: F.layer_norm(x, x.shape[-1:], *args)


def _residual_block(block):
    ln_1, ln_2 = _layer_norm(block.ln_1), _layer_norm(block.ln_2)
    attention = block.attn
    heads, head_dim, causal = attention.num_heads, attention.head_dim, attention.causal
    in_proj, out_proj = _linear(attention.in_proj), _linear(attention.out_proj)
    c_fc, c_proj = _linear(block.c_fc), _linear(block.c_proj)
    activation = _ACTIVATIONS[block.activation]

    def run(x):  # (B, L, D)
        batch, length, width = x.shape
        qkv = F.linear(ln_1(x), *in_proj).view(batch, length, 3, heads, head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, Dh)
        out = F.scaled_dot_product_attention(query, key, value, is_causal=causal)
        x = x + F.linear(out.transpose(1, 2).reshape(batch, length, width), *out_proj)
        return x + F.linear(activation(F.linear(ln_2(x), *c_fc)), *c_proj)

    return run


RUNNERS = {"resnet": resnet_runner, "text": text_runner}
