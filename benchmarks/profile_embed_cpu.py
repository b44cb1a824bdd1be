"""Where a folder-embedding job's CPU goes: CPU ms per image for each stage, per system.

Wall-clock splits on a shared machine mostly measure the other jobs; CPU time
spent by the thread (decode, resize) or the process (the model, all its
threads) is much less sensitive to load. With those figures and the core
count, the best wall time of each pipeline follows:

- open_clip's README loop runs decode + `preprocess` on one thread, then the
  model on all cores: `decode + resize + model_cpu / cores` ms per image
  (at best; the model never scales perfectly);
- keras_clip's `embed_folder` overlaps them, so all cores share all the work:
  `(decode + resize + model_cpu) / cores`.

    python benchmarks/profile_embed_cpu.py [--images 64] [--reference-python PY]

Caveat: the model's thread pools (oneDNN, Eigen, OpenMP) spin while they
wait, so on a loaded machine its process CPU time includes some spinning:
compare model figures to each other with their wall time beside them.

Runs each side in a subprocess (keras_clip with KERAS_BACKEND=tensorflow,
open_clip in the reference venv), one stage at a time in one thread (so no
stage competes with another), and prints one JSON object; `--output` writes it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BATCHES = {"keras_clip": 64, "open_clip": 32, "clip_edge": 64}


def _cpu_ms(fn, clock=time.thread_time):
    start = clock()
    out = fn()
    return out, 1000 * (clock() - start)


def _model_cpu(call, batch, repeats=2):
    """Process CPU ms per image of `call()` (one batch), after one warm-up call."""
    call()
    times = [_cpu_ms(call, time.process_time)[1] for _ in range(repeats)]
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        walls.append(1000 * (time.perf_counter() - start))
    return {"cpu_ms": min(times) / batch, "wall_ms": min(walls) / batch}


def keras_side(paths, edge_folder):
    import keras

    import keras_clip
    from PIL import Image

    from keras_clip.inference.embed_folder import preprocessing_of
    from keras_clip.preprocessing import preprocess_numpy
    from keras_clip.inference.precision import for_precision

    keras.utils.set_random_seed(0)
    model = keras_clip.from_preset("vit_b32", weights=None)
    options = preprocessing_of(model)
    decode = resize = 0.0
    pixels = []
    for path in paths:  # as embed_folder.load_image, timed by this thread's CPU clock
        start = time.thread_time()
        with Image.open(path) as image:
            image.load()
            middle = time.thread_time()
            pixels.append(preprocess_numpy(image, **options)[0])
        decode += 1000 * (middle - start)
        resize += 1000 * (time.thread_time() - middle)
    batch = np.stack((pixels * 2)[:BATCHES["keras_clip"]])
    report = {"decode_ms": decode / len(paths), "resize_ms": resize / len(paths),
              "batch": len(batch)}
    for precision in ("fp32", "bf16"):
        tower, _ = for_precision(model, precision)
        report[f"model_{precision}"] = _model_cpu(lambda t=tower: t.encode_image(batch), len(batch))
    if edge_folder:
        import clip_edge

        for precision in ("fp32", "int8"):
            edge = clip_edge.ClipEdge(edge_folder, precision=precision, verify=False)
            if precision == "fp32":
                _, ms = _cpu_ms(lambda e=edge: e.preprocess(paths))
                report["edge_decode_resize_ms"] = ms / len(paths)
            report[f"edge_model_{precision}"] = _model_cpu(
                lambda e=edge: e.encode_pixels(batch), len(batch))
    return report


def open_clip_side(paths):
    import open_clip
    import torch
    from PIL import Image

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32-quickgelu",
                                                                 pretrained=None)
    model.eval()
    decode = resize = 0.0
    pixels = []
    for path in paths:
        start = time.thread_time()
        image = Image.open(path)
        image.load()
        middle = time.thread_time()
        pixels.append(preprocess(image))
        decode += middle - start
        resize += time.thread_time() - middle
    batch = torch.stack(pixels[:BATCHES["open_clip"]])

    def call():
        with torch.no_grad():
            return model.encode_image(batch)

    return {"decode_ms": 1000 * decode / len(paths), "resize_ms": 1000 * resize / len(paths),
            "batch": len(batch), "model_fp32": _model_cpu(call, len(batch)),
            "torch": torch.__version__, "open_clip": open_clip.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("keras_clip", "open_clip"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--edge-folder", default=None)
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.side:
        paths = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder))
        report = (keras_side(paths, args.edge_folder) if args.side == "keras_clip"
                  else open_clip_side(paths))
        print(json.dumps(report))
        return 0
    sys.path.insert(0, HERE)
    from bench_embed_folder import write_jpegs
    from common import cpu_flags

    folder = tempfile.mkdtemp(prefix="profile_embed_")
    write_jpegs(folder, args.images, seed=3)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.path.dirname(HERE))
    report = {"images": args.images, "cores": os.cpu_count(), "flags": cpu_flags(),
              "load_start": os.getloadavg()[0]}
    for side, python in (("open_clip", args.reference_python), ("keras_clip", sys.executable)):
        argv = [python, __file__, "--side", side, "--folder", folder]
        if side == "keras_clip" and args.edge_folder:
            argv += ["--edge-folder", args.edge_folder]
        done = subprocess.run(argv, env=dict(env, PYTHONPATH="") if side == "open_clip" else env,
                              capture_output=True, text=True, check=True)
        report[side] = json.loads(done.stdout.strip().splitlines()[-1])
    report["load_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=1)
    if args.output:
        with open(args.output, "w") as file:
            file.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
