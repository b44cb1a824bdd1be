"""Peak training memory of CLIP with and without gradient checkpointing (remat).

Two measurements:

* ``--method compiled`` (jax backend): XLA's own memory analysis of the jitted
  gradient step (``temp_size_in_bytes``: activations and scratch of one
  step). Exact and needs no run, so full-size presets are cheap to measure.
* ``--method rss`` (any backend): each setting in a fresh subprocess runs
  training steps; the peak resident memory (``ru_maxrss``) after training
  minus the peak after building the model and one inference batch.

Examples:
    KERAS_BACKEND=jax python benchmarks/bench_remat.py --preset vit_b32 --batch-size 32
    KERAS_BACKEND=torch python benchmarks/bench_remat.py --method rss --preset vit_b32 \\
        --layers 4 --batch-size 16
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(args):
    from keras_clip import CLIPConfig
    from keras_clip.presets import from_preset

    if args.config:
        config = CLIPConfig.from_json(args.config)
    else:
        config = from_preset(args.preset, weights=None).config
    if args.layers:
        values = config.to_dict()
        values["vision"]["layers"] = args.layers
        values["text"]["layers"] = args.layers
        config = CLIPConfig.from_dict(values)
    return config


def _batch(config, batch_size):
    import numpy as np

    rng = np.random.default_rng(0)
    size, length = config.vision.image_size, config.text.context_length
    return {
        "images": rng.normal(size=(batch_size, size, size, 3)).astype("float32"),
        "token_ids": rng.integers(1, config.text.vocab_size, (batch_size, length)).astype("int32"),
    }


def compiled_bytes(config, batch_size, remat):
    """XLA's temp memory of one jitted value-and-grad step (jax backend)."""
    import jax

    from keras_clip import CLIP
    from keras_clip.losses import clip_loss

    model = CLIP(config, remat=remat)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_fn(trainable, non_trainable, x):
        y, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return clip_loss(y["image_embeddings"], y["text_embeddings"], 10.0)

    step = jax.jit(jax.value_and_grad(loss_fn))
    compiled = step.lower(trainable, non_trainable, _batch(config, batch_size)).compile()
    analysis = compiled.memory_analysis()
    return {"temp_bytes": int(analysis.temp_size_in_bytes),
            "argument_bytes": int(analysis.argument_size_in_bytes)}


def rss_child(config_json, batch_size, remat, steps):
    """Runs in a subprocess: peak RSS growth from training steps."""
    import keras

    from keras_clip import CLIP, CLIPConfig

    config = CLIPConfig.from_dict(json.loads(config_json))
    model = CLIP(config, remat=remat)
    data = _batch(config, batch_size)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    model.predict_on_batch(data)
    model.optimizer.build(model.trainable_variables)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.time()
    for _ in range(steps):
        model.train_on_batch(data)
    seconds = (time.time() - start) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss_growth_bytes": (peak - base) * 1024, "seconds_per_step": round(seconds, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vit_b32")
    p.add_argument("--config", help="a CLIP config JSON instead of --preset")
    p.add_argument("--layers", type=int, default=None, help="override both towers' depth")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--method", choices=["compiled", "rss"], default=None)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    import keras

    if args.child:  # rss measurement of one setting
        remat = {"none": False}.get(args.child, args.child)
        config = _config(args)
        print(json.dumps(rss_child(json.dumps(config.to_dict()), args.batch_size, remat,
                                   args.steps)))
        return
    backend = keras.backend.backend()
    method = args.method or ("compiled" if backend == "jax" else "rss")
    if method == "compiled" and backend != "jax":
        raise ValueError(f"--method compiled needs the jax backend, the backend is {backend!r}.")
    config = _config(args)
    results = {}
    for remat in ("none", "blocks"):
        if method == "compiled":
            results[remat] = compiled_bytes(config, args.batch_size, remat != "none")
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", remat,
                   "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
            cmd += ["--config", args.config] if args.config else ["--preset", args.preset]
            cmd += ["--layers", str(args.layers)] if args.layers else []
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env=dict(os.environ, PYTHONPATH=ROOT))
            results[remat] = json.loads(out.stdout.strip().splitlines()[-1])
    key = "temp_bytes" if method == "compiled" else "rss_growth_bytes"
    saving = 1 - results["blocks"][key] / max(results["none"][key], 1)
    report = {"backend": backend, "method": method, "model": args.config or args.preset,
              "layers": args.layers, "batch_size": args.batch_size, "results": results,
              "memory_saving": round(saving, 3)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
