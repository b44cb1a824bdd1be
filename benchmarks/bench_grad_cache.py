"""Memory and speed of gradient caching (`compile(micro_batch_size=m)`) vs the plain step.

Two measurements:

* ``--method compiled`` (jax backend): XLA's memory analysis of the whole
  jitted training step (`keras_clip`'s guarded step: forward, loss,
  gradients, SGD update), inputs given as shapes only. `temp` is the step's
  scratch (activations, gradients), `arguments` the weights, optimizer state
  and the batch. Exact and needs no run, so batch 1,024 is cheap to measure.
* ``--method rss`` (any backend, measures speed too): each setting runs in a fresh subprocess: build a ViT-B/32-width CLIP (vision
width 768, patch 32, 224 px; text width 512; embed 512) with `--layers`
blocks per tower, put one random batch on the backend, run one inference
micro-batch, then `train_on_batch` (SGD) once to warm up and `--steps` times
timed. Step memory: the peak resident memory (`ru_maxrss`) after training
minus the peak before it (model, optimizer and the batch itself already
resident). Throughput: samples per second of the timed steps.

Settings: the plain step at batch `--micro` (the baseline), then the cached
step with `micro_batch_size=--micro` at each of `--batches` (stopping at the
first that fails, e.g. out of memory).

Examples:
    KERAS_BACKEND=jax python benchmarks/bench_grad_cache.py --method compiled \
        --batches 256 1024 --out benchmarks/results/grad_cache_compiled.json
    KERAS_BACKEND=torch python benchmarks/bench_grad_cache.py --layers 2 \\
        --batches 256 1024 --out benchmarks/results/grad_cache.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _config(layers):
    return {"name": "vit_b32_width", "embed_dim": 512,
            "vision": {"type": "vit", "image_size": 224, "patch_size": 32, "width": 768,
                       "layers": layers},
            "text": {"width": 512, "layers": layers, "context_length": 77,
                     "vocab_size": 49408}}


def compiled(args, batch, micro_batch_size):
    """XLA's memory analysis of the jitted guarded train step (jax backend)."""
    import jax
    import keras

    from keras_clip import CLIP
    from keras_clip.models.guarded_step import jax_train_step

    keras.utils.set_random_seed(0)
    model = CLIP(_config(args.layers))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), micro_batch_size=micro_batch_size)
    model.optimizer.build(model.trainable_variables)
    state = tuple([v.value for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
        model.metrics_variables))
    data = {"images": jax.ShapeDtypeStruct((batch, 224, 224, 3), "float32"),
            "token_ids": jax.ShapeDtypeStruct((batch, 77), "int32")}
    step = jax.jit(lambda state, data: jax_train_step(model, state, data))
    analysis = step.lower(state, data).compile().memory_analysis()
    mib = 1024 * 1024
    return {"batch": batch, "micro_batch_size": micro_batch_size,
            "temp_mib": round(analysis.temp_size_in_bytes / mib, 1),
            "arguments_mib": round(analysis.argument_size_in_bytes / mib, 1)}


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args):
    """One setting; prints one JSON line."""
    import keras
    import numpy as np
    from keras import ops

    from keras_clip import CLIP

    keras.utils.set_random_seed(0)
    model = CLIP(_config(args.layers))
    rng = np.random.default_rng(0)
    batch = {"images": ops.convert_to_tensor(
                 rng.normal(size=(args.batch, 224, 224, 3)).astype("float32")),
             "token_ids": ops.convert_to_tensor(
                 rng.integers(1, 49408, (args.batch, 77)).astype("int32"))}
    model.encode_image(np.zeros((args.micro, 224, 224, 3), "float32"))
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  micro_batch_size=None if args.plain else args.micro)
    before = _rss_mib()
    model.train_on_batch(batch)  # warm-up (tracing / compilation)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(batch)
    seconds = (time.perf_counter() - start) / args.steps
    print(json.dumps({"batch": args.batch, "micro_batch_size": None if args.plain else args.micro,
                      "step_memory_mib": round(_rss_mib() - before, 1),
                      "resident_before_mib": round(before, 1),
                      "seconds_per_step": round(seconds, 2),
                      "samples_per_second": round(args.batch / seconds, 2)}), flush=True)


def _machine():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags |= set(line.split(":")[1].split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return {"cpu_flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "load_average": os.getloadavg()}


def _run(args, batch, plain):
    command = [sys.executable, __file__, "--worker", "--layers", str(args.layers),
               "--micro", str(args.micro), "--steps", str(args.steps), "--batch", str(batch)]
    proc = subprocess.run(command + (["--plain"] if plain else []), cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True)
    if proc.returncode:
        return {"batch": batch, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--method", choices=["compiled", "rss"], default="rss")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--micro", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import keras

    report = {"backend": keras.backend.backend(), "method": args.method, "layers": args.layers,
              "micro": args.micro, "machine_before": _machine(), "runs": []}
    if args.method == "compiled":
        base = compiled(args, args.micro, None)
        report["runs"].append(base)
        print(json.dumps(base), flush=True)
        for batch in args.batches:
            for micro in (None, args.micro):
                result = compiled(args, batch, micro)
                result["temp_ratio"] = round(result["temp_mib"] / base["temp_mib"], 2)
                report["runs"].append(result)
                print(json.dumps(result), flush=True)
        report["machine_after"] = _machine()
        return _write(report, args.out)
    base = _run(args, args.micro, plain=True)
    report["runs"].append(base)
    print(json.dumps(base), flush=True)
    for batch in args.batches:
        result = _run(args, batch, plain=False)
        if "error" not in result and "error" not in base:
            result["memory_ratio"] = round(result["step_memory_mib"] / base["step_memory_mib"], 2)
            result["throughput_ratio"] = round(
                result["samples_per_second"] / base["samples_per_second"], 2)
        report["runs"].append(result)
        print(json.dumps(result), flush=True)
        if "error" in result:
            break
    report["machine_after"] = _machine()
    _write(report, args.out)


def _write(report, out):
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
