"""bf16 inference of the ViT-B/32 image tower on each Keras backend vs open_clip.

    python benchmarks/bench_bf16.py --reference-python /work/refenv/bin/python

Side by side, in rounds with a rotating order (ratios paired per round):
keras_clip's `from_preset("vit_b32", weights=None, dtype="bfloat16")` image
tower through `encode_image` on TensorFlow, JAX and torch, TensorFlow's tower
in a `tf.function` without XLA (`bf16-graph`: oneDNN; what `encode_image` runs
for bf16 since this benchmark), JAX with XLA's oneDNN flags, against
open_clip's ViT-B-32-quickgelu in fp32 and under `torch.autocast(bfloat16)`.
Each bf16 row reports its cosine to the fp32 Keras model with the same
weights. One 2048² matmul per backend and dtype tells whether the backend's
bf16 matmul has a hardware path (AMX / AVX-512 BF16). Writes
`results/<machine class>/bf16.json`.
"""

import argparse
import datetime
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np
from common import (
    cpu_flags,
    machine_class,
    make_inputs,
    serve,
    time_calls,
    warm_up,
)

BATCH = 32
ONEDNN_XLA_FLAGS = "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot"


def _matmul_seconds(fn, iters=3):
    fn()
    return min(time_calls(lambda _: fn(), None, 1) for _ in range(iters))


def _cosines(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


class KerasSide:
    """fp32 and bf16 image towers with the same random weights, one backend."""

    def __init__(self):
        import keras

        import keras_clip

        self.keras = keras
        self.backend = keras.backend.backend()
        if self.backend == "torch":
            import torch

            torch.set_num_threads(os.cpu_count())
        keras.utils.set_random_seed(0)
        self.models = {"fp32": keras_clip.from_preset("vit_b32", weights=None)}
        bf16 = keras_clip.from_preset("vit_b32", weights=None, dtype="bfloat16")
        bf16.set_weights(self.models["fp32"].get_weights())
        self.models["bf16"] = bf16
        self.x = make_inputs(224, BATCH)[0]
        self.fns, self.outputs = {}, {}

    def to_numpy(self, y):
        ops = self.keras.ops
        return np.asarray(ops.convert_to_numpy(ops.cast(y, "float32")))

    def function(self, variant):
        dtype, _, mode = variant.partition("-")
        model = self.models[dtype]
        if not mode:
            return lambda x: self.to_numpy(model.encode_image(x))
        if mode == "graph" and self.backend == "tensorflow":  # TF graph, oneDNN, no XLA
            import tensorflow as tf

            fn = tf.function(lambda x: model.image_encoder(x, training=False), jit_compile=False)
            return lambda x: self.to_numpy(fn(x))
        raise ValueError(f"variant {variant!r} is not for backend {self.backend}")

    def infer(self, req):
        variant = req["variant"]
        info = {}
        if variant not in self.fns:
            fn = self.function(variant)
            out, seconds = warm_up(fn, self.x, 1)
            self.fns[variant], self.outputs[variant] = fn, out
            info["setup_s"] = seconds
            if "fp32" not in self.outputs:
                self.outputs["fp32"] = self.function("fp32")(self.x)
            cos = _cosines(out, self.outputs["fp32"])
            info["cosine_to_fp32"] = {"min": float(cos.min()), "mean": float(cos.mean())}
        return dict(info, seconds=time_calls(self.fns[variant], self.x, req.get("iters", 1)))

    def matmul(self, req):
        n, dtype = req.get("n", 2048), req["dtype"]
        ops = self.keras.ops
        rng = np.random.default_rng(0)
        a = ops.cast(rng.normal(size=(n, n)).astype("float32"), dtype)
        b = ops.cast(rng.normal(size=(n, n)).astype("float32"), dtype)
        if self.backend == "tensorflow":
            import tensorflow as tf

            mm = tf.function(tf.matmul, jit_compile=req.get("xla", False))
            fn = lambda: mm(a, b).numpy()
        elif self.backend == "jax":
            import jax

            mm = jax.jit(lambda a, b: a @ b)
            fn = lambda: mm(a, b).block_until_ready()
        else:
            import torch

            fn = lambda: torch.mm(a, b)
        seconds = _matmul_seconds(fn)
        return {"seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


class ReferenceSide:
    """open_clip's ViT-B-32-quickgelu image tower, fp32 and bf16 autocast (reference venv)."""

    def __init__(self):
        import open_clip
        import torch

        self.torch = torch
        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        self.model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
        x = make_inputs(224, BATCH)[0]
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        self.fns, self.outputs = {}, {}

    def function(self, variant):
        torch = self.torch

        def run(x):
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=variant == "bf16-autocast"):
                return self.model.encode_image(x).float().numpy()

        return run

    def infer(self, req):
        variant = req["variant"]
        info = {}
        if variant not in self.fns:
            fn = self.function(variant)
            out, info["setup_s"] = warm_up(fn, self.x, 1)
            self.fns[variant], self.outputs[variant] = fn, out
            if "fp32" not in self.outputs:
                self.outputs["fp32"] = self.function("fp32")(self.x)
            cos = _cosines(out, self.outputs["fp32"])
            info["cosine_to_fp32"] = {"min": float(cos.min()), "mean": float(cos.mean())}
        return dict(info, seconds=time_calls(self.fns[variant], self.x, req.get("iters", 1)))

    def matmul(self, req):
        torch = self.torch
        n = req.get("n", 2048)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[req["dtype"]]
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        seconds = _matmul_seconds(lambda: torch.mm(a, b))
        return {"seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


def worker(kind):
    side = KerasSide() if kind == "keras" else ReferenceSide()

    def handle(req):
        if req["op"] == "versions":
            if kind == "keras":
                return {"backend": side.backend, "keras": side.keras.__version__}
            import open_clip

            return {"torch": side.torch.__version__, "open_clip": open_clip.__version__}
        return getattr(side, req["op"])(req)

    serve(handle)


# ---- driver -------------------------------------------------------------------------
SYSTEMS = {  # name: (worker, variant)
    "open_clip/fp32": ("reference", "fp32"),
    "open_clip/bf16-autocast": ("reference", "bf16-autocast"),
    "keras_clip-tensorflow/fp32": ("tensorflow", "fp32"),
    "keras_clip-tensorflow/bf16": ("tensorflow", "bf16"),
    "keras_clip-tensorflow/bf16-graph": ("tensorflow", "bf16-graph"),
    "keras_clip-jax/fp32": ("jax", "fp32"),
    "keras_clip-jax/bf16": ("jax", "bf16"),
    "keras_clip-jax+onednn/bf16": ("jax+onednn", "bf16"),
    "keras_clip-torch/fp32": ("torch", "fp32"),
    "keras_clip-torch/bf16": ("torch", "bf16"),
}


def load():
    return os.getloadavg()[0]


def start_workers(names, reference_python, log_dir):
    from run import Worker

    me = os.path.abspath(__file__)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.path.dirname(HERE)}
    workers = {}
    for name in names:
        if name == "reference":
            workers[name] = Worker(name, [reference_python, me, "--worker", "reference"],
                                   env=dict(env, PYTHONPATH=""), log_dir=log_dir)
            continue
        backend, _, extra = name.partition("+")
        wenv = dict(env, KERAS_BACKEND=backend)
        if extra == "onednn":
            wenv["XLA_FLAGS"] = ONEDNN_XLA_FLAGS
        workers[name] = Worker(name, [sys.executable, me, "--worker", "keras"], env=wenv,
                               log_dir=log_dir)
    return workers


def summarise(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values} if values else None


def measure_group(workers, systems, rounds, results, seconds, loads):
    """Warm up, then `rounds` rotating rounds over `systems` (all on live `workers`)."""
    for s, (w, variant) in systems.items():
        reply = workers[w].call({"op": "infer", "variant": variant, "iters": 1}, timeout=1800)
        if "setup_s" in reply:  # first warm-up of this system (open_clip's: once)
            results["systems"][s] = {k: reply[k] for k in ("setup_s", "cosine_to_fp32")}
            print(f"warm {s}: setup {reply['setup_s']:.0f} s cos {reply['cosine_to_fp32']}",
                  flush=True)
    names = list(systems)
    for r in range(rounds):
        shift = r % len(names)
        for s in names[shift:] + names[:shift]:
            w, variant = systems[s]
            seconds[s].append(workers[w].call({"op": "infer", "variant": variant})["seconds"])
        loads.append(round(load(), 1))
        print(f"round {r + 1}: " + ", ".join(f"{s} {BATCH / seconds[s][-1]:.1f}"
                                            for s in names), flush=True)


def matmuls(name, w, results):
    """One 2048² matmul per dtype (and, on TensorFlow, with and without XLA)."""
    for dtype in ("float32", "bfloat16"):
        for xla in ((False, True) if name == "tensorflow" else (False,)):
            key = f"{name}/{dtype}" + ("/xla" if xla else "")
            reply = w.call({"op": "matmul", "dtype": dtype, "xla": xla})
            results["matmul_2048_gflops"][key] = round(reply["gflops"], 1)
            print(f"matmul {key}: {reply['gflops']:.0f} GFLOP/s  load {load():.1f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("keras", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated system names (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log-dir", default="/tmp/bench_bf16_logs")
    parser.add_argument("--output", default=None, help="default results/<class>/bf16.json")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    systems = {s: SYSTEMS[s] for s in args.systems.split(",")}
    os.makedirs(args.log_dir, exist_ok=True)
    flags = cpu_flags()
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu_flags": flags, "machine_class": machine_class(flags),
               "cores": os.cpu_count(), "batch": BATCH, "model": "vit_b32 image tower",
               "versions": {}, "matmul_2048_gflops": {}, "systems": {}}
    reference = {s: v for s, v in systems.items() if v[0] == "reference"}
    groups = sorted({w for w, _ in systems.values()} - {"reference"})
    seconds = {s: [] for s in systems}
    paired = {}  # system -> the open_clip fp32 seconds of the same rounds
    loads = [round(load(), 1)]
    # one Keras worker at a time (memory), each next to the same open_clip worker
    ref = start_workers(["reference"], args.reference_python, args.log_dir)
    try:
        results["versions"]["reference"] = ref["reference"].call({"op": "versions"})
        matmuls("reference", ref["reference"], results)
        for group in groups:
            workers = dict(ref, **start_workers([group], args.reference_python, args.log_dir))
            try:
                results["versions"][group] = workers[group].call({"op": "versions"})
                matmuls(group, workers[group], results)
                mine = {s: v for s, v in systems.items() if v[0] == group}
                before = len(seconds.get("open_clip/fp32", []))
                measure_group(workers, dict(reference, **mine), args.rounds, results, seconds,
                              loads)
                for s in mine:
                    paired[s] = seconds.get("open_clip/fp32", [])[before:]
            finally:
                workers[group].close()
    finally:
        ref["reference"].close()
    for s in systems:
        entry = results["systems"][s]
        entry["images_per_s"] = summarise([BATCH / t for t in seconds[s]])
        if "open_clip/fp32" in systems:
            refs = paired.get(s, seconds["open_clip/fp32"])
            entry["ratio_vs_open_clip_fp32"] = summarise(
                [r / t for r, t in zip(refs, seconds[s])])
    results["load_1min"] = loads
    out = args.output or os.path.join(HERE, "results", machine_class(flags), "bf16.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
