"""A folder of JPEGs to embeddings on disk: keras_clip vs open_clip's loop vs the edge runtime.

The job users run: decode, preprocess, encode, write. The benchmark writes
N JPEGs of mixed sizes (300-1,200 px a side, smooth content plus noise,
quality 90) into a temporary folder, split into equal parts, and times, part
by part in an order rotated every round (so load drifts hit every system):

- `keras_clip/<backend>`: `keras_clip.inference.embed_folder` (what
  `keras-clip embed --images` runs): thread-pool decoding + PIL-exact
  preprocessing overlapped with batched encoding, shards written as it goes;
- `open_clip`: the loop open_clip's README shows, in the reference venv: PIL
  `Image.open`, its `preprocess`, `encode_image` on batches of 32 under
  `torch.no_grad()`, `torch.set_num_threads(cores)`, `np.save` at the end;
- `clip_edge/<precision>`: the edge runtime on an export folder, as
  `clip-edge embed` runs it (preprocess a batch, then encode it).

Every system uses ViT-B/32 with random weights (throughput only; each
system's own; keras_clip's fp32 and bf16 workers share theirs), all cores, and
a warm-up folder outside the timing. Reports images/s per part, the paired
ratio to open_clip, each system's own split of the time (decode, resize +
normalise, model, write) and the cosine of bf16 / int8 rows to their fp32
twin. The set-up of each system and each system's run on each part hold the
shared lock `--lock` (flock(2)); the report is rewritten after every part.

    python benchmarks/bench_embed_folder.py --edge-folder /tmp/vit_b32_export
        [--images 2000] [--backends tensorflow] [--precisions fp32,bf16]
        [--edge-precisions fp32,int8] [--reference-python /work/refenv/bin/python]

(the edge folder: `keras-clip export vit_b32 --random-weights --formats onnx
--int8 static`).
"""

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

WARM_UP = 64  # images embedded once before timing


# --------------------------------------------------------------------- images
def write_jpegs(folder, count, seed=0, workers=None):
    """`count` JPEGs, 300-1,200 px a side, of smooth random content with noise."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    sizes = np.random.default_rng(seed).integers(300, 1201, (count, 2))

    def one(i):
        rng = np.random.default_rng(seed * 100_003 + i)
        height, width = (int(s) for s in sizes[i])
        coarse = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
        noisy = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)

    with ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        list(pool.map(one, range(count)))


def split(folder, parts):
    """Moves the folder's JPEGs into `parts` equal sub-folders; returns their paths."""
    names = sorted(os.listdir(folder))
    paths = []
    for p in range(parts):
        part = os.path.join(folder, f"part{p}")
        os.makedirs(part)
        for name in names[p::parts]:
            os.rename(os.path.join(folder, name), os.path.join(part, name))
        paths.append(part)
    return paths


# -------------------------------------------------------------------- workers
class OursWorker:
    """keras_clip's `embed_folder` (run under KERAS_BACKEND set by the driver)."""

    def __init__(self, request):
        import keras

        import keras_clip
        from keras_clip.inference import embed_folder

        self.embed = embed_folder
        self.batch_size = request["batch_size"]
        self.precision = request["precision"]
        self.out = os.path.join(request["scratch"],
                                f"ours_{keras.backend.backend()}_{self.precision}.npy")
        keras.utils.set_random_seed(0)  # fp32 and bf16 workers hold the same weights
        self.model = keras_clip.from_preset("vit_b32", weights=None)
        self.versions = {"keras": keras.__version__, "backend": keras.backend.backend(),
                         "precision": self.precision}

    def run(self, folder):
        result = self.embed(self.model, folder, self.out, batch_size=self.batch_size,
                            verbose=False, restart=True, precision=self.precision)
        return {"images": result.images, "wall_s": result.wall_s, "decode_s": result.decode_s,
                "preprocess_s": result.preprocess_s, "model_s": result.model_s,
                "write_s": result.write_s, "output": self.out}


class OpenClipWorker:
    """open_clip's README loop: PIL open, `preprocess`, `encode_image` in batches of 32."""

    def __init__(self, request):
        import open_clip
        import torch

        torch.set_num_threads(request["threads"])
        self.torch = torch
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            "ViT-B-32-quickgelu", pretrained=None)
        self.model.eval()
        self.out = os.path.join(request["scratch"], "open_clip.npy")
        self.versions = {"open_clip": open_clip.__version__, "torch": torch.__version__,
                         "threads": torch.get_num_threads()}

    def run(self, folder):
        from PIL import Image

        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        times = dict.fromkeys(("decode_s", "preprocess_s", "model_s", "write_s"), 0.0)
        start, features = time.perf_counter(), []
        for b in range(0, len(paths), 32):
            pixels = []
            for path in paths[b:b + 32]:
                t0 = time.perf_counter()
                image = Image.open(path)
                image.load()
                t1 = time.perf_counter()
                pixels.append(self.preprocess(image))
                times["decode_s"] += t1 - t0
                times["preprocess_s"] += time.perf_counter() - t1
            t0 = time.perf_counter()
            with self.torch.no_grad():
                features.append(self.model.encode_image(self.torch.stack(pixels)).numpy())
            times["model_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        np.save(self.out, np.concatenate(features))
        times["write_s"] = time.perf_counter() - t0
        return dict(times, images=len(paths), wall_s=time.perf_counter() - start)


class EdgeWorker:
    """clip_edge on an export folder, batch by batch as `clip-edge embed` runs it."""

    def __init__(self, request):
        import clip_edge
        import onnxruntime

        self.edge = clip_edge.ClipEdge(request["edge_folder"], precision=request["precision"],
                                       verify=False)
        self.batch_size = request["batch_size"]
        self.out = os.path.join(request["scratch"], f"edge_{request['precision']}.npy")
        self.versions = {"onnxruntime": onnxruntime.__version__,
                         "preprocessing": self.edge.preprocessing}

    def run(self, folder):
        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        times = dict.fromkeys(("decode_s", "preprocess_s", "model_s", "write_s"), 0.0)
        start, features = time.perf_counter(), []
        for b in range(0, len(paths), self.batch_size):
            t0 = time.perf_counter()
            pixels = self.edge.preprocess(paths[b:b + self.batch_size])  # decode + resize
            t1 = time.perf_counter()
            features.append(self.edge.encode_pixels(pixels, normalized=True))
            times["preprocess_s"] += t1 - t0
            times["model_s"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        np.save(self.out, np.concatenate(features))
        times["write_s"] = time.perf_counter() - t0
        return dict(times, images=len(paths), wall_s=time.perf_counter() - start, output=self.out)


WORKERS = {"ours": OursWorker, "open_clip": OpenClipWorker, "edge": EdgeWorker}


def serve_worker(kind):
    state = {}

    def handle(request):
        if request["op"] == "setup":
            start = time.perf_counter()
            state["worker"] = WORKERS[kind](request)
            state["worker"].run(request["warm_up"])
            return {"versions": state["worker"].versions, "setup_s": time.perf_counter() - start}
        return state["worker"].run(request["folder"])

    common.serve(handle)


# --------------------------------------------------------------------- driver
class Process:
    """A worker process answering one JSON line per request (see `common.serve`)."""

    def __init__(self, argv, env, log):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True, env=env)
        self.call(None)  # the ready line

    def call(self, request):
        if request is not None:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline() or '{"ok": false, "error": "worker died"}')
        if not reply.get("ok"):
            raise RuntimeError(f"{reply.get('error')}\n{reply.get('traceback', '')}")
        return reply

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=60)


def start_systems(args, scratch, warm_up, log, loads):
    script = os.path.abspath(__file__)
    base = {"op": "setup", "scratch": scratch, "threads": args.threads, "warm_up": warm_up}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.path.dirname(HERE))
    plans = [("open_clip", [args.reference_python, script, "--worker", "open_clip"], env,
              dict(base))]
    for backend in args.backends:
        for precision in args.precisions:
            plans.append((f"keras_clip/{backend}/{precision}",
                          [sys.executable, script, "--worker", "ours"],
                          dict(env, KERAS_BACKEND=backend),
                          dict(base, batch_size=args.batch_size, precision=precision)))
    if args.edge_folder:
        for precision in args.edge_precisions:
            plans.append((f"clip_edge/{precision}", [sys.executable, script, "--worker", "edge"],
                          env, dict(base, edge_folder=args.edge_folder, precision=precision,
                                    batch_size=args.batch_size)))
    systems = {}
    for name, argv, environment, request in plans:
        with locked(args.lock, f"set-up {name}", loads):  # its warm-up loads the CPU
            process = Process(argv, environment, log)
            reply = process.call(request)
        systems[name] = {"process": process, "versions": reply["versions"],
                         "setup_s": reply["setup_s"], "parts": []}
    return systems


@contextlib.contextmanager
def locked(path, phase, loads):
    """Holds the shared benchmark lock (flock(2), as the `flock` command takes it) for a phase:
    one system's set-up, or one system on one part, so that no locked run is long.

    Appends `{"phase", "waited_s", "seconds", "load_start", "load_end"}` to `loads`.
    """
    asked = time.perf_counter()
    with open(path or os.devnull, "a") as handle:
        if path:
            fcntl.flock(handle, fcntl.LOCK_EX)
        start, load = time.perf_counter(), os.getloadavg()
        common_log(f"{phase}: lock held after {start - asked:.0f} s, load {load[0]:.2f}")
        try:
            yield
        finally:
            loads.append({"phase": phase, "waited_s": round(start - asked, 1),
                          "seconds": round(time.perf_counter() - start, 1),
                          "load_start": load[0], "load_end": os.getloadavg()[0]})


# fp32 system -> its lower-precision twins with the same weights (compared row by row)
TWINS = (("keras_clip/tensorflow/fp32", "keras_clip/tensorflow/bf16"),
         ("keras_clip/jax/fp32", "keras_clip/jax/bf16"),
         ("keras_clip/torch/fp32", "keras_clip/torch/bf16"),
         ("clip_edge/fp32", "clip_edge/int8"))


def pair_cosines(systems, part):
    """Per-row cosine of each low-precision system's output to its fp32 twin's, this part."""
    found = {}
    for reference, other in TWINS:
        if reference in systems and other in systems:
            a = np.load(systems[reference]["parts"][part]["output"]).astype(np.float64)
            b = np.load(systems[other]["parts"][part]["output"]).astype(np.float64)
            found[other] = ((a * b).sum(1) / np.linalg.norm(a, axis=1)
                            / np.linalg.norm(b, axis=1)).tolist()
    return found


def summarise_cosines(per_part):
    rows = {}
    for name in {n for part in per_part for n in part}:
        values = np.concatenate([part[name] for part in per_part if name in part])
        rows[name] = {"min": float(values.min()), "mean": float(values.mean()),
                      "rows": int(values.size)}
    return rows


def common_log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def summarise(systems):
    base = systems["open_clip"]["parts"]
    rows = {}
    for name, system in systems.items():
        parts = system["parts"]
        rates = [p["images"] / p["wall_s"] for p in parts]
        totals = {k: sum(p[k] for p in parts) for k in
                  ("images", "wall_s", "decode_s", "preprocess_s", "model_s", "write_s")}
        rows[name] = {
            "images_per_s": {"median": statistics.median(rates), "min": min(rates),
                             "max": max(rates)},
            "ratio_vs_open_clip": None if name == "open_clip" else _stats(
                [p["images"] / p["wall_s"] / (q["images"] / q["wall_s"])
                 for p, q in zip(parts, base)]),
            "ms_per_image": {k[:-2]: 1000 * totals[k] / totals["images"]
                             for k in ("wall_s", "decode_s", "preprocess_s", "model_s",
                                       "write_s")},
            "images": totals["images"], "setup_s": system["setup_s"],
            "versions": system["versions"]}
    return rows


def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def markdown(figures):
    m = figures["machine"]
    lines = [f"## Folder of JPEGs to embeddings ({figures['date']})", "",
             f"{figures['images']} JPEGs (300-1,200 px, quality 90) in {figures['parts']} parts, "
             f"ViT-B/32 random weights, {m['cores']} cores, flags {', '.join(m['flags'])}; "
             f"load average {m['load_start'][0]:.2f} at start, {m['load_end'][0]:.2f} at end "
             "(the machine is shared with other jobs). Time split is each system's own "
             "ms per image: keras_clip's decode and resize run in worker threads that overlap "
             "each other and the model, so they add up to more than the wall time.", "",
             "| system | images/s median [min-max] | vs open_clip (paired) | wall ms/img | decode | "
             "resize + normalise | model | write |", "|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(figures["systems"].items(),
                            key=lambda kv: -kv[1]["images_per_s"]["median"]):
        r, t = row["ratio_vs_open_clip"], row["ms_per_image"]
        rate = row["images_per_s"]
        lines.append(
            f"| {name} | {rate['median']:.1f} [{rate['min']:.1f}-{rate['max']:.1f}] | "
            + ("1" if r is None else f"**{r['median']:.2f}x** [{r['min']:.2f}-{r['max']:.2f}]")
            + f" | {t['wall']:.1f} | {t['decode']:.1f} | {t['preprocess']:.1f} | "
            f"{t['model']:.1f} | {t['write']:.2f} |")
    lines += ["", "Cosine of each row to the fp32 twin with the same weights, on these JPEGs:", ""]
    lines += [f"- {name}: min {c['min']:.5f}, mean {c['mean']:.5f} ({c['rows']} rows)"
              for name, c in sorted(figures["cosine_to_fp32"].items())]
    lines += ["", f"Load per phase (each phase held `{figures['lock']}`):", "",
              "| phase | waited s | seconds | load start | load end |", "|---|---|---|---|---|"]
    lines += [f"| {p['phase']} | {p['waited_s']} | {p['seconds']} | {p['load_start']:.2f} | "
              f"{p['load_end']:.2f} |" for p in m["load_per_phase"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=2000, help="JPEGs to write")
    parser.add_argument("--parts", type=int, default=4, help="rounds (one part each)")
    parser.add_argument("--backends", default="tensorflow", help="keras_clip backends")
    parser.add_argument("--batch-size", type=int, default=64, help="keras_clip / clip_edge batch")
    parser.add_argument("--edge-folder", help="a `keras-clip export vit_b32` folder (else no edge)")
    parser.add_argument("--edge-precisions", default="fp32")
    parser.add_argument("--precisions", default="fp32",
                        help="keras_clip precisions (embed_folder's precision=): fp32,bf16")
    parser.add_argument("--lock", default="/tmp/bench.lock",
                        help="flock(2) file held for the set-up and for each part, so that one "
                             "benchmark times at a time ('' for none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--results-dir", default=None,
                        help="default: benchmarks/results/<machine class>")
    args = parser.parse_args(argv)
    if args.worker:
        return serve_worker(args.worker)
    args.backends = [b for b in args.backends.split(",") if b]
    args.edge_precisions = [p for p in args.edge_precisions.split(",") if p]
    args.precisions = [p for p in args.precisions.split(",") if p]
    flags = common.cpu_flags()
    results_dir = args.results_dir or common.results_dir(flags)
    load_start = os.getloadavg()
    loads, cosines = [], []
    scratch = tempfile.mkdtemp(prefix="bench_embed_")
    try:
        common_log(f"writing {args.images + WARM_UP} JPEGs to {scratch}")
        write_jpegs(os.path.join(scratch, "warm"), WARM_UP, seed=1)
        write_jpegs(os.path.join(scratch, "images"), args.images)
        parts = split(os.path.join(scratch, "images"), args.parts)
        with open(os.path.join(scratch, "workers.log"), "w") as log:
            systems = start_systems(args, scratch, os.path.join(scratch, "warm"), log, loads)
            names = list(systems)
            for r, part in enumerate(parts):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    with locked(args.lock, f"part {r} {name}", loads):
                        reply = systems[name]["process"].call({"op": "embed", "folder": part})
                    systems[name]["parts"].append(reply)
                    common_log(f"part {r}: {name} {reply['images'] / reply['wall_s']:.1f} img/s")
                cosines.append(pair_cosines(systems, r))
                report(args, results_dir, flags, load_start, loads, cosines, systems,
                       parts_done=r + 1)  # after every part: a stopped run keeps its figures
            for system in systems.values():
                system["process"].close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def report(args, results_dir, flags, load_start, loads, cosines, systems, parts_done):
    figures = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "images": sum(p["images"] for p in systems["open_clip"]["parts"]),
               "parts": parts_done, "batch_size": args.batch_size,
               "machine": {"cores": os.cpu_count(), "flags": flags,
                           "class": common.machine_class(flags), "load_start": load_start,
                           "load_end": os.getloadavg(), "load_per_phase": loads},
               "lock": args.lock, "cosine_to_fp32": summarise_cosines(cosines),
               "systems": summarise(systems)}
    common.write_report(results_dir, "embed_folder", figures, markdown(figures))
    common_log(f"wrote {results_dir}/embed_folder.{{json,md}} ({parts_done} parts)")


if __name__ == "__main__":
    sys.exit(main())
