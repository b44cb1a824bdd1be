"""Forward + backward of each piece of the ViT-B/32 training step, JAX (keras_clip) vs torch (open_clip).

    python benchmarks/bench_jax_train_pieces.py                 # both sides, every core
    python benchmarks/bench_jax_train_pieces.py --pieces vit_block,text_block --iters 9

Each piece runs at ViT-B/32's sizes, batch 32, and is differentiated through
`sum(output * r)` with a fixed random `r`: one vision residual block (50
tokens, width 768, 12 heads), one causal text block (77 tokens, 512, 8
heads), the 32x32 patch-embedding convolution (gradient of its kernel), the
token + positional embedding (gradient of the 49408 x 512 table), a
LayerNorm, an attention softmax, the CLIP loss. keras_clip's layers run
jitted on the JAX backend; the torch side runs open_clip's modules in the
reference Python. Each side runs in its own process pinned to `--cores`;
reported: wall seconds (min of `--iters`) and process CPU seconds (median),
the CPU time being the figure that survives a shared machine. Pinning to
one core is not a fair test: XLA's and OpenMP's idle workers spin on the
same core (JAX's block then takes 5x its CPU time); torch's CPU time
includes OpenMP's spin-waits (tens of ms on the smallest pieces). Writes
`results/<machine class>/jax_train_pieces.json`.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np
from common import VOCAB_SIZE, cpu_flags, machine_class

BATCH = 32
PIECES = {  # name: shapes (ViT-B/32 at batch 32)
    "vit_block": {"tokens": 50, "width": 768, "heads": 12, "causal": False},
    "text_block": {"tokens": 77, "width": 512, "heads": 8, "causal": True},
    "patch_conv": {"image": 224, "patch": 32, "width": 768},
    "token_embedding": {"tokens": 77, "width": 512, "vocab": VOCAB_SIZE},
    "layer_norm": {"tokens": 50, "width": 768},
    "softmax": {"heads": 12, "tokens": 50},
    "clip_loss": {"embed": 512},
}


def inputs(name, spec, seed=0):
    """The piece's numpy inputs (the same on both sides) and the output's shape."""
    rng = np.random.default_rng(seed)
    if name.endswith("_block") or name == "layer_norm":
        shape = (BATCH, spec["tokens"], spec["width"])
        return {"x": rng.normal(size=shape).astype("float32")}, shape
    if name == "patch_conv":
        grid = spec["image"] // spec["patch"]
        return ({"x": rng.normal(size=(BATCH, spec["image"], spec["image"], 3)).astype("float32")},
                (BATCH, grid, grid, spec["width"]))
    if name == "token_embedding":
        ids = rng.integers(0, spec["vocab"], (BATCH, spec["tokens"])).astype("int32")
        return {"ids": ids}, (BATCH, spec["tokens"], spec["width"])
    if name == "softmax":
        shape = (BATCH, spec["heads"], spec["tokens"], spec["tokens"])
        return {"x": rng.normal(size=shape).astype("float32")}, shape
    if name == "clip_loss":
        return {"image": rng.normal(size=(BATCH, spec["embed"])).astype("float32"),
                "text": rng.normal(size=(BATCH, spec["embed"])).astype("float32")}, ()
    raise ValueError(f"unknown piece {name!r}; expected one of {sorted(PIECES)}")


def measure(fn, iters):
    """(min wall seconds, median process CPU seconds) of `iters` calls after one untimed call."""
    fn()
    walls, cpus = [], []
    for _ in range(iters):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(cpus)


# ---- JAX side (keras_clip's layers) -------------------------------------------------
def jax_piece(name, spec):
    """(differentiable loss(params, data), params, data) for one piece on JAX."""
    import jax.numpy as jnp
    import keras

    from keras_clip import losses
    from keras_clip.layers.embeddings import TokenAndPositionEmbedding
    from keras_clip.layers.residual_block import ResidualAttentionBlock

    data, out_shape = inputs(name, spec)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    data["r"] = jnp.asarray(np.random.default_rng(1).normal(size=out_shape), "float32")
    if name.endswith("_block"):
        layer = ResidualAttentionBlock(spec["heads"], 4 * spec["width"], causal=spec["causal"])
        layer.build(data["x"].shape)
    elif name == "patch_conv":
        layer = keras.layers.Conv2D(spec["width"], spec["patch"], strides=spec["patch"],
                                    use_bias=False)
        layer.build(data["x"].shape)
    elif name == "token_embedding":
        layer = TokenAndPositionEmbedding(spec["vocab"], spec["tokens"], spec["width"])
        layer.build(data["ids"].shape)
    elif name == "layer_norm":
        layer = keras.layers.LayerNormalization(epsilon=1e-5)
        layer.build(data["x"].shape)
    else:
        layer = None
    if name == "softmax":
        return (lambda p, d: jnp.sum(keras.ops.softmax(d["x"] + p, axis=-1) * d["r"]),
                jnp.zeros(()), data)
    if name == "clip_loss":
        return (lambda p, d: losses.clip_loss(d["image"] * p, d["text"], 100.0),
                jnp.ones(()), data)
    params = [v.value for v in layer.trainable_variables]
    key = "ids" if name == "token_embedding" else "x"

    def loss(params, d):
        return jnp.sum(layer.stateless_call(params, [], d[key])[0] * d["r"])

    return loss, params, data


def run_jax(names, iters):
    return {name: jax_times(name, iters) for name in names}


def jax_times(name, iters):
    import jax

    loss, params, data = jax_piece(name, PIECES[name])
    forward = jax.jit(loss)
    # The gradient of the inputs too for the blocks and the norm, as in a deep model.
    argnums = (0, 1) if name.endswith("_block") or name == "layer_norm" else 0
    grad = jax.jit(jax.grad(loss, argnums=argnums))
    hlo = grad.lower(params, data).compile().as_text()
    return {
        "forward": measure(lambda: forward(params, data).block_until_ready(), iters),
        "forward_backward": measure(lambda: jax.block_until_ready(grad(params, data)),
                                    iters),
        "hlo_ops": {op: hlo.count(f" {op}(") for op in (
            "dot", "convolution", "transpose", "copy", "scatter", "fusion")},
    }


# ---- torch side (open_clip's modules, reference Python) -----------------------------
def run_torch(names, iters):
    import torch

    torch.manual_seed(0)
    return {name: torch_times(name, iters) for name in names}


def torch_times(name, iters):
    import torch
    from open_clip.loss import ClipLoss
    from open_clip.model import QuickGELU
    from open_clip.transformer import ResidualAttentionBlock

    spec = PIECES[name]
    data, out_shape = inputs(name, spec)
    data = {k: torch.from_numpy(v) for k, v in data.items()}
    r = torch.from_numpy(np.random.default_rng(1).normal(size=out_shape).astype("float32"))
    x = data.get("x")
    if name.endswith("_block"):
        module = ResidualAttentionBlock(spec["width"], spec["heads"], act_layer=QuickGELU)
        length = spec["tokens"]
        mask = (torch.full((length, length), float("-inf")).triu_(1)
                if spec["causal"] else None)
        x.requires_grad_(True)

        def call():
            return module(x, attn_mask=mask)
    elif name == "patch_conv":
        module = torch.nn.Conv2d(3, spec["width"], spec["patch"], spec["patch"], bias=False)
        x = x.permute(0, 3, 1, 2).contiguous()
        r = r.permute(0, 3, 1, 2).contiguous()

        def call():
            return module(x)
    elif name == "token_embedding":
        module = torch.nn.Embedding(spec["vocab"], spec["width"])
        positions = torch.nn.Parameter(torch.zeros(spec["tokens"], spec["width"]))
        ids = data["ids"].long()

        def call():
            return module(ids) + positions
    elif name == "layer_norm":
        module = torch.nn.LayerNorm(spec["width"])
        x.requires_grad_(True)

        def call():
            return module(x)
    elif name == "softmax":
        module = None
        x.requires_grad_(True)

        def call():
            return torch.softmax(x, dim=-1)
    else:
        module = None
        image = data["image"].requires_grad_(True)
        loss_fn = ClipLoss()

        def call():
            return loss_fn(image, data["text"], torch.tensor(100.0))

    def forward():
        with torch.no_grad():
            out = call()
            return out if name == "clip_loss" else (out * r).sum()

    def forward_backward():
        if module is not None:
            module.zero_grad(set_to_none=True)
        out = call()
        (out if name == "clip_loss" else (out * r).sum()).backward()

    return {"forward": measure(forward, iters),
            "forward_backward": measure(forward_backward, iters)}


# ---- driver -------------------------------------------------------------------------
def run_side(side, args):
    """Runs one side in a subprocess pinned to `args.cores`; returns its results."""
    python = args.reference_python if side == "torch" else sys.executable
    cores = ",".join(str(c) for c in args.cores)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="jax",
               PYTHONPATH="" if side == "torch" else os.path.dirname(HERE))
    cmd = [python, os.path.abspath(__file__), "--side", side, "--pieces", ",".join(args.pieces),
           "--iters", str(args.iters), "--cores", cores]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results):
    lines = ["| piece | JAX fwd | torch fwd | JAX fwd+bwd | torch fwd+bwd | JAX bwd / torch bwd |",
             "|---|---|---|---|---|---|"]
    for name in results["jax"]:
        j, t = results["jax"][name], results["torch"][name]
        jb = j["forward_backward"][1] - j["forward"][1]
        tb = t["forward_backward"][1] - t["forward"][1]
        lines.append(f"| {name} | {j['forward'][1] * 1e3:.0f} | {t['forward'][1] * 1e3:.0f} | "
                     f"{j['forward_backward'][1] * 1e3:.0f} | "
                     f"{t['forward_backward'][1] * 1e3:.0f} | {jb / max(tb, 1e-9):.2f} |")
    return "\n".join(lines)


def parse_cores(text):
    return [int(c) for c in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--pieces", type=lambda s: s.split(","), default=list(PIECES))
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--cores", type=parse_cores, default=sorted(os.sched_getaffinity(0)),
                        help="CPU cores each side is pinned to, e.g. 0,1 (default: all)")
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--output", default=None,
                        help="default results/<machine class>/jax_train_pieces.json")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.pieces) - set(PIECES))
    if unknown:
        parser.error(f"unknown pieces {unknown}; expected some of {sorted(PIECES)}")
    if args.side:
        os.sched_setaffinity(0, args.cores)
        if args.side == "torch":
            import torch

            torch.set_num_threads(len(args.cores))
        run = run_jax if args.side == "jax" else run_torch
        print(json.dumps(run(args.pieces, args.iters)))
        return 0
    flags = cpu_flags()
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cpu_flags": flags, "cores": args.cores, "batch": BATCH, "pieces": PIECES,
              "load_1min_before": round(os.getloadavg()[0], 1),
              "units": "[min wall s, median process CPU s] per call"}
    report["jax"] = run_side("jax", args)
    report["torch"] = run_side("torch", args)
    report["load_1min_after"] = round(os.getloadavg()[0], 1)
    out = args.output or os.path.join(HERE, "results", machine_class(flags),
                                      "jax_train_pieces.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(table(report))
    print(f"process CPU ms; load {report['load_1min_before']} -> {report['load_1min_after']}; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
