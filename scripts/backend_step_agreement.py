"""Do TensorFlow, JAX and torch take the same training steps? Finds the first that differs.

Writes the demo model's initial weights (drawn once, in this process) and the
demo's first batches (its own tf.data pipeline) to a folder, then runs
`model.fit` with the demo's optimizer for `--steps` steps on each backend in
a child process from exactly those weights and batches, and compares: the
per-step loss, and every variable after chosen steps (relative L2
difference). Each child also fingerprints the batches it uses as its own
backend's demo pipeline builds them, to show whether the data differ.

What it found (seed 0): identical data on the three backends; TensorFlow's
updates differed from the first applied step, by weight decay on gains, biases
and the temperature (fixed in `keras_clip/training/optimizers.py`) and by
Adam's second moment of the token embedding (fixed in
`keras_clip/models/guarded_step.py`); JAX and torch agreed.

Example:
    $ PYTHONPATH=. python scripts/backend_step_agreement.py --steps 30 --work /tmp/agree
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")


def _demo_batches(samples, batch_size, seed):
    from keras_clip import CLIPTokenizer, data
    from keras_clip.demo import DEMO_CONFIG

    size, context = DEMO_CONFIG["vision"]["image_size"], DEMO_CONFIG["text"]["context_length"]
    shapes = data.SyntheticShapes(image_size=size, seed=seed, split="train")
    dataset = shapes.as_tf_dataset(batch_size, num_samples=samples, training=True, seed=seed,
                                   tokenizer=CLIPTokenizer(context_length=context))
    return list(dataset.as_numpy_iterator())


def _fingerprint(batches):
    digest = hashlib.sha256()
    for batch in batches:
        digest.update(batch["images"].tobytes())
        digest.update(batch["token_ids"].tobytes())
    return digest.hexdigest()[:16]


def _key(index, variable):
    """A variable's name in the files: paths repeat across the towers, so with its index."""
    return f"{index:03d}:{variable.path}"


def _optimizer(model, args):
    from keras_clip.training import build_optimizer

    steps = -(-args.samples // args.batch_size) * args.epochs  # the demo's schedule
    return build_optimizer(model, args.learning_rate, total_steps=steps,
                           warmup_steps=min(30, steps - 1), weight_decay=0.1)


def prepare(args):
    """Writes `init.npz` (weights by path) and `batches.npz` (the first `--steps` batches)."""
    import keras

    import keras_clip
    from keras_clip.demo import DEMO_CONFIG

    keras.utils.set_random_seed(args.seed)
    model = keras_clip.CLIP(DEMO_CONFIG)
    np.savez(os.path.join(args.work, "init.npz"),
             **{_key(i, v): keras.ops.convert_to_numpy(v) for i, v in enumerate(model.weights)})
    batches = _demo_batches(args.samples, args.batch_size, args.seed)
    if args.steps > len(batches):
        raise ValueError(f"--steps must be at most the demo's {len(batches)} batches per epoch, "
                         f"received {args.steps}.")
    batches = batches[:args.steps]
    np.savez(os.path.join(args.work, "batches.npz"),
             images=np.stack([b["images"] for b in batches]),
             token_ids=np.stack([b["token_ids"] for b in batches]))


def child(args):
    """One backend: fit from `init.npz` on `batches.npz`; writes `<backend>.npz` and `.json`."""
    import keras
    import tensorflow as tf

    import keras_clip
    from keras_clip.demo import DEMO_CONFIG

    backend = keras.backend.backend()
    keras.utils.set_random_seed(args.seed)
    used = _fingerprint(_demo_batches(args.steps * args.batch_size, args.batch_size, args.seed))
    model = keras_clip.CLIP(DEMO_CONFIG)
    init = np.load(os.path.join(args.work, "init.npz"))
    for i, variable in enumerate(model.weights):
        variable.assign(init[_key(i, variable)])
    batches = np.load(os.path.join(args.work, "batches.npz"))
    dataset = tf.data.Dataset.from_tensor_slices(
        {"images": batches["images"], "token_ids": batches["token_ids"]})
    model.compile(optimizer=_optimizer(model, args))
    checkpoints = sorted({int(s) for s in args.checkpoints.split(",") if int(s) <= args.steps})
    snapshots, running = {}, []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            running.append(float(logs["loss"]))
            if batch + 1 in checkpoints:
                for i, v in enumerate(self.model.weights):
                    snapshots[f"{batch + 1}/{_key(i, v)}"] = keras.ops.convert_to_numpy(v)

    model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[Record()])
    # Keras logs the epoch's running mean; undo it into per-step losses.
    losses = [k * m - (k - 1) * p for k, (m, p) in enumerate(zip(running, [0.0] + running), 1)]
    np.savez(os.path.join(args.work, f"{backend}.npz"), **snapshots)
    with open(os.path.join(args.work, f"{backend}.json"), "w") as file:
        json.dump({"losses": losses, "batches_fingerprint": used,
                   "skipped_steps": float(model.skipped_steps_tracker.result())}, file)


def relative_difference(a, b):
    scale = max(float(np.linalg.norm(a)), 1e-12)
    return float(np.linalg.norm(a.astype("float64") - b.astype("float64"))) / scale


def compare(args):
    """Prints the agreement table; returns the report dict."""
    results = {}
    for b in BACKENDS:
        with open(os.path.join(args.work, f"{b}.json")) as file:
            results[b] = json.load(file)
    weights = {b: np.load(os.path.join(args.work, f"{b}.npz")) for b in BACKENDS}
    report = {"batch_fingerprints": {b: r["batches_fingerprint"] for b, r in results.items()},
              "skipped_steps": {b: r["skipped_steps"] for b, r in results.items()},
              "losses": {b: r["losses"] for b, r in results.items()}, "weights": {}}
    print("fingerprints of the batches used:", report["batch_fingerprints"])
    print("skipped steps:", report["skipped_steps"])
    print("step  " + "  ".join(f"{b:>10}" for b in BACKENDS))
    for step, values in enumerate(zip(*(results[b]["losses"] for b in BACKENDS)), 1):
        print(f"{step:4d}  " + "  ".join(f"{v:10.6f}" for v in values))
    keys = weights["tensorflow"].files
    for other in ("jax", "torch"):
        for step in sorted({int(k.split("/", 1)[0]) for k in keys}):
            diffs = {k.split("/", 1)[1]: relative_difference(weights["tensorflow"][k],
                                                             weights[other][k])
                     for k in keys if k.startswith(f"{step}/")}
            worst = max(diffs, key=diffs.get)
            report["weights"][f"tensorflow-vs-{other}@{step}"] = {"max": diffs[worst],
                                                                   "variable": worst}
            print(f"tensorflow vs {other:5s} after step {step:3d}: max relative weight "
                  f"difference {diffs[worst]:.2e} ({worst})")
    with open(os.path.join(args.work, "report.json"), "w") as file:
        json.dump(report, file, indent=1)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/backend_step_agreement")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--checkpoints", default="1,2,3,5,10,20,30")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    os.makedirs(args.work, exist_ok=True)
    prepare(args)
    for backend in BACKENDS:
        subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], check=True,
                       env=dict(os.environ, KERAS_BACKEND=backend))
    compare(args)
    return None


if __name__ == "__main__":
    main()
