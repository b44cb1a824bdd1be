"""keras_clip worker: one Keras backend per process (set KERAS_BACKEND before starting).

    KERAS_BACKEND=jax python benchmarks/worker_keras.py --checkpoints DIR

Requests: `infer` with a `variant` (`fp32`, `bf16`, optionally suffixed
`-predict` (Keras' `predict_on_batch`), `-xla` on TensorFlow or `-compile` on torch), `train` (model.compile(AdamW) +
train_on_batch, optionally `xla` / `remat`), `matmul`, `clear`, `versions`.
The plain variants go through `model.encode_image` / `model.encode_text`,
the path users call.
"""

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import (  # noqa: E402
    current_rss_mb,
    head_rows,
    make_inputs,
    peak_rss_mb,
    serve,
    time_calls,
    tower_input,
    warm_up,
)

import keras  # noqa: E402

import keras_clip  # noqa: E402

BACKEND = keras.backend.backend()
THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
if BACKEND == "torch":
    import torch

    torch.set_num_threads(THREADS)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def compiled_tower(tower, mode):
    """A function numpy -> numpy running `tower` under the backend's compiler."""
    if mode == "predict":  # Keras' predict path (encode_* before it used XLA on TF)
        return lambda x: to_numpy(tower.predict_on_batch(x))
    if mode == "xla" and BACKEND == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: tower(x, training=False), jit_compile=True)
        return lambda x: fn(x).numpy()
    if mode == "compile" and BACKEND == "torch":
        import torch

        fn = torch.compile(lambda x: tower(x, training=False))

        def run(x):
            with torch.no_grad():
                return to_numpy(fn(torch.as_tensor(x)))

        return run
    if mode == "jit" and BACKEND == "jax":
        import jax

        state = (tower.trainable_variables, tower.non_trainable_variables)
        state = tuple([v.value for v in vs] for vs in state)
        fn = jax.jit(lambda s, x: tower.stateless_call(s[0], s[1], x, training=False)[0])
        return lambda x: np.asarray(fn(state, x))
    raise ValueError(f"variant mode {mode!r} is not for backend {BACKEND}")


class KerasWorker:
    def __init__(self, directory):
        self.directory = directory
        self.models = {}
        self.cases = {}
        self.train_state = None

    def model(self, name, dtype):
        key = (name, dtype)
        if key not in self.models:
            path = os.path.join(self.directory, f"{name}.safetensors")
            self.models[key] = keras_clip.from_preset(
                path, dtype={"fp32": None, "bf16": "bfloat16"}[dtype])
        return self.models[key]

    def infer(self, req):
        key = (req["model"], req["tower"], req["batch"], req["variant"])
        info = {}
        if key not in self.cases:
            dtype, _, mode = req["variant"].partition("-")
            model = self.model(req["model"], dtype)
            tower = model.image_encoder if req["tower"] == "image" else model.text_encoder
            if mode:
                fn = compiled_tower(tower, mode)
            else:
                encode = model.encode_image if req["tower"] == "image" else model.encode_text
                fn = lambda x, encode=encode: to_numpy(encode(x))  # noqa: E731
            x = tower_input(req["model"], req["tower"], req["batch"])
            out, seconds = warm_up(fn, x, req.get("warmup", 2))
            info = {"setup_s": seconds, "rows": head_rows(out)}
            self.cases[key] = (fn, x)
        fn, x = self.cases[key]
        return dict(info, seconds=time_calls(fn, x, req.get("iters", 1)))

    def train(self, req):
        if self.train_state is None:
            variant = req.get("variant", "default")
            model = keras_clip.from_preset(
                os.path.join(self.directory, f"{req['model']}.safetensors"),
                remat=variant == "remat")
            rss = current_rss_mb()
            optimizer = keras.optimizers.AdamW(learning_rate=1e-5, weight_decay=0.2,
                                               beta_1=0.9, beta_2=0.98, epsilon=1e-6)
            jit = {"xla": True, "eager": False}.get(variant, "auto")
            model.compile(optimizer=optimizer, jit_compile=jit)
            images, token_ids = make_inputs(224, req["batch"])
            batch = {"images": images, "token_ids": token_ids}

            def step():
                return float(model.train_on_batch(batch, return_dict=True)["loss"])

            start = time.perf_counter()
            losses = [step() for _ in range(req.get("warmup", 2))]
            self.train_state = (step, {"setup_s": time.perf_counter() - start,
                                       "rss_after_load_mb": rss, "warmup_losses": losses,
                                       "jit_compile": str(model.jit_compile)})
        step, info = self.train_state
        start = time.perf_counter()
        for _ in range(req.get("iters", 1)):
            loss = step()
        seconds = (time.perf_counter() - start) / req.get("iters", 1)
        return dict(info, seconds=seconds, loss=loss, peak_rss_mb=peak_rss_mb())

    def matmul(self, req):
        n = req.get("n", 2048)
        dtype = {"fp32": "float32", "bf16": "bfloat16"}[req.get("dtype", "fp32")]
        rng = np.random.default_rng(0)
        a = keras.ops.cast(rng.normal(size=(n, n)).astype("float32"), dtype)
        b = keras.ops.cast(rng.normal(size=(n, n)).astype("float32"), dtype)
        if BACKEND == "tensorflow":
            import tensorflow as tf

            mm = tf.function(tf.matmul)
            fn = lambda _: mm(a, b).numpy()  # noqa: E731
        elif BACKEND == "jax":
            import jax

            mm = jax.jit(lambda a, b: a @ b)
            fn = lambda _: mm(a, b).block_until_ready()  # noqa: E731
        else:
            import torch

            fn = lambda _: torch.mm(a, b)  # noqa: E731
        fn(None)
        seconds = time_calls(fn, None, req.get("iters", 5))
        return {"seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}

    def handle(self, req):
        op = req["op"]
        if op == "clear":
            self.models.clear()
            self.cases.clear()
            keras.backend.clear_session()
            gc.collect()
            return {}
        if op == "versions":
            versions = {"keras": keras.__version__, "backend": BACKEND}
            module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
            versions[BACKEND] = __import__(module).__version__
            return versions
        return getattr(self, op)(req)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", metavar="DIR", required=True)
    args = parser.parse_args()
    serve(KerasWorker(args.checkpoints).handle)


if __name__ == "__main__":
    main()
