"""JAX-backend training step vs open_clip's, side by side, and where the JAX step's time goes.

    python benchmarks/bench_jax_train.py --reference-python /work/refenv/bin/python
    python benchmarks/bench_jax_train.py --layers 12          # full ViT-B/32 (slow on 2 cores)

A ViT-B/32-width CLIP (vision 768 wide, text 512, `--layers` blocks in each
tower; 12 is ViT-B/32 itself) trains at batch 32 with AdamW (lr 1e-5, betas
0.9/0.98, eps 1e-6, decay 0.2): keras_clip on the JAX backend through
`model.train_on_batch` (what `fit` runs), the same with XLA's oneDNN flags,
and open_clip (forward, `ClipLoss`, backward, `torch.optim.AdamW`), each in
its own process (peak RSS is that process's), in rounds with a rotating order.
Then, in each process, the step split into forward, forward + backward and
optimizer update, each timed alone (jitted on JAX); on JAX also: is the step
compiled once, are the donated buffers freed, the compiled step's HLO op
counts, and a 2048² fp32 matmul per side. Writes
`results/<machine class>/jax_train.json`.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np
from common import (
    CONTEXT_LENGTH,
    VOCAB_SIZE,
    cpu_flags,
    current_rss_mb,
    machine_class,
    make_inputs,
    peak_rss_mb,
    serve,
)

BATCH = 32
ONEDNN_XLA_FLAGS = "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot"
OPTIMIZER = {"learning_rate": 1e-5, "beta_1": 0.9, "beta_2": 0.98, "epsilon": 1e-6,
             "weight_decay": 0.2}


def best_of(fn, iters):
    """Median seconds of `iters` calls of `fn` (after one untimed call)."""
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_config(layers):
    return {"embed_dim": 512,
            "vision": {"type": "vit", "image_size": 224, "width": 768, "layers": layers,
                       "patch_size": 32},
            "text": {"width": 512, "layers": layers, "context_length": CONTEXT_LENGTH,
                     "vocab_size": VOCAB_SIZE}}


class JaxSide:
    """keras_clip's CLIP on the JAX backend, compiled as `fit` compiles it."""

    def __init__(self, layers):
        import jax
        import keras

        from keras_clip.models.clip import CLIP

        self.jax, self.keras = jax, keras
        self.compiles = 0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)
        keras.utils.set_random_seed(0)
        self.model = CLIP(keras_config(layers))
        opt = OPTIMIZER
        self.model.compile(optimizer=keras.optimizers.AdamW(
            learning_rate=opt["learning_rate"], weight_decay=opt["weight_decay"],
            beta_1=opt["beta_1"], beta_2=opt["beta_2"], epsilon=opt["epsilon"]))
        images, token_ids = make_inputs(224, BATCH)
        self.batch = {"images": images, "token_ids": token_ids}
        self.rss_after_load = current_rss_mb()

    def _on_event(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.compiles += 1

    def step(self):
        return float(self.model.train_on_batch(self.batch, return_dict=True)["loss"])

    def state(self):
        m = self.model
        return tuple([v.value for v in vs] for vs in (
            m.trainable_variables, m.non_trainable_variables, m.optimizer.variables,
            m.metrics_variables))

    def profile(self, iters):
        jax, m = self.jax, self.model
        first = m.trainable_variables[0].value
        before = self.compiles
        self.step()
        info = {"jit_compile": str(m.jit_compile),
                "compiles_during_a_warm_step": self.compiles - before,
                "donated_weights_freed": bool(first.is_deleted())}
        trainable, non_trainable, optimizer_vars, metrics_vars = self.state()
        data = (self.batch, None, None)
        step = jax.jit(m.train_step, donate_argnums=0)
        hlo = step.lower(self.state(), data).compile().as_text()
        info["hlo_ops"] = {op: hlo.count(f" {op}(") for op in (
            "fusion", "dot", "convolution", "custom-call", "copy", "transpose", "while",
            "conditional")}
        info["hlo_dot_ops_in_fusions_or_onednn"] = hlo.count("__onednn")

        def loss_fn(tv):
            return m.compute_loss_and_updates(tv, non_trainable, metrics_vars, self.batch, None,
                                              None, training=True,
                                              optimizer_variables=optimizer_vars)[0]

        forward = jax.jit(loss_fn)
        backward = jax.jit(jax.value_and_grad(loss_fn))
        grads = backward(trainable)[1]
        update = jax.jit(lambda ov, g, tv: m.optimizer.stateless_apply(ov, g, tv))
        info["seconds"] = {
            "forward": best_of(lambda: forward(trainable).block_until_ready(), iters),
            "forward_backward": best_of(
                lambda: jax.block_until_ready(backward(trainable)), iters),
            "optimizer": best_of(
                lambda: jax.block_until_ready(update(optimizer_vars, grads, trainable)), iters),
        }
        return info

    def matmul(self, n=2048):
        jnp = self.jax.numpy
        a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), "float32")
        mm = self.jax.jit(lambda a: a @ a)
        return 2 * n**3 / best_of(lambda: mm(a).block_until_ready(), 3) / 1e9


class TorchSide:
    """open_clip's CLIP with the same shapes, `ClipLoss` and `torch.optim.AdamW`."""

    def __init__(self, layers):
        import torch
        from open_clip.loss import ClipLoss
        from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

        self.torch = torch
        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        self.model = CLIP(512, CLIPVisionCfg(image_size=224, patch_size=32, width=768,
                                             layers=layers, head_width=64),
                          CLIPTextCfg(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE,
                                      width=512, heads=8, layers=layers),
                          quick_gelu=True).train()
        opt = OPTIMIZER
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=opt["learning_rate"], betas=(opt["beta_1"], opt["beta_2"]),
            eps=opt["epsilon"], weight_decay=opt["weight_decay"])
        self.loss_fn = ClipLoss()
        images, token_ids = make_inputs(224, BATCH)
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        self.token_ids = torch.from_numpy(token_ids.astype("int64"))
        self.rss_after_load = current_rss_mb()

    def loss(self):
        return self.loss_fn(*self.model(self.images, self.token_ids))

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        with self.torch.no_grad():
            self.model.logit_scale.clamp_(0, np.log(100))
        return float(loss)

    def profile(self, iters):
        torch = self.torch

        def forward():
            with torch.no_grad():
                self.loss()

        def forward_backward():
            self.optimizer.zero_grad(set_to_none=True)
            self.loss().backward()

        forward_backward()
        return {"seconds": {"forward": best_of(forward, iters),
                            "forward_backward": best_of(forward_backward, iters),
                            "optimizer": best_of(self.optimizer.step, iters)},
                "optimizer_foreach": self.optimizer.defaults.get("foreach")}

    def matmul(self, n=2048):
        a = self.torch.randn(n, n)
        return 2 * n**3 / best_of(lambda: self.torch.mm(a, a), 3) / 1e9


def worker(kind, layers):
    side = JaxSide(layers) if kind == "jax" else TorchSide(layers)

    def handle(req):
        op = req["op"]
        if op == "train":
            start = time.perf_counter()
            losses = [side.step() for _ in range(req.get("warmup", 0))]
            setup = time.perf_counter() - start
            start = time.perf_counter()
            loss = side.step()
            return {"seconds": time.perf_counter() - start, "loss": loss,
                    "warmup_losses": losses, "setup_s": setup,
                    "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": side.rss_after_load}
        if op == "profile":
            return dict(side.profile(req.get("iters", 2)), matmul_2048_fp32_gflops=side.matmul())
        raise ValueError(f"unknown op {op!r}")

    serve(handle)


# ---- driver -------------------------------------------------------------------------
SYSTEMS = {"open_clip": "torch", "keras_clip-jax": "jax", "keras_clip-jax+onednn": "jax+onednn"}


def summarise(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values} if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, default=3,
                        help="blocks per tower (12 = ViT-B/32; default 3 to fit 2 cores)")
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--profile-iters", type=int, default=2)
    parser.add_argument("--log-dir", default="/tmp/bench_jax_train_logs")
    parser.add_argument("--output", default=None, help="default results/<class>/jax_train.json")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.layers)
        return 0
    from run import Worker

    os.makedirs(args.log_dir, exist_ok=True)
    flags = cpu_flags()
    me = os.path.abspath(__file__)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.path.dirname(HERE),
           "KERAS_BACKEND": "jax"}
    names = args.systems.split(",")
    workers = {}
    for name in names:
        kind = SYSTEMS[name]
        argv_ = ["--worker", kind.split("+")[0], "--layers", str(args.layers)]
        if kind == "torch":
            workers[name] = Worker(name, [args.reference_python, me, *argv_],
                                   env=dict(env, PYTHONPATH=""), log_dir=args.log_dir)
        else:
            wenv = dict(env, XLA_FLAGS=ONEDNN_XLA_FLAGS) if kind.endswith("onednn") else env
            workers[name] = Worker(name, [sys.executable, me, *argv_], env=wenv,
                                   log_dir=args.log_dir)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu_flags": flags, "machine_class": machine_class(flags), "cores": os.cpu_count(),
               "batch": BATCH, "layers_per_tower": args.layers, "optimizer": OPTIMIZER,
               "xla_flags_onednn": ONEDNN_XLA_FLAGS, "systems": {}}
    loads = [os.getloadavg()[0]]
    seconds = {n: [] for n in names}
    try:
        for name, w in workers.items():
            reply = w.call({"op": "train", "warmup": args.warmup}, timeout=1800)
            results["systems"][name] = {k: reply[k] for k in ("setup_s", "warmup_losses",
                                                              "rss_after_load_mb")}
            print(f"warm {name}: setup {reply['setup_s']:.0f} s losses {reply['warmup_losses']}",
                  flush=True)
        for r in range(args.rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                reply = workers[name].call({"op": "train"})
                seconds[name].append(reply["seconds"])
                results["systems"][name]["peak_rss_mb"] = reply["peak_rss_mb"]
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}: " + ", ".join(f"{n} {BATCH / seconds[n][-1]:.2f}/s"
                                                for n in names), flush=True)
        for name, w in workers.items():
            results["systems"][name]["profile"] = prof = w.call(
                {"op": "profile", "iters": args.profile_iters}, timeout=1800)
            prof.pop("ok", None)
            print(f"profile {name}: {prof}", flush=True)
    finally:
        for w in workers.values():
            w.close()
    for name in names:
        entry = results["systems"][name]
        entry["samples_per_s"] = summarise([BATCH / t for t in seconds[name]])
        if "open_clip" in seconds:
            entry["ratio_vs_open_clip"] = summarise(
                [ref / t for ref, t in zip(seconds["open_clip"], seconds[name])])
            entry["peak_rss_ratio_vs_open_clip"] = (
                entry["peak_rss_mb"] / results["systems"]["open_clip"]["peak_rss_mb"])
    results["load_1min"] = [round(x, 1) for x in loads]
    out = args.output or os.path.join(HERE, "results", machine_class(flags), "jax_train.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
