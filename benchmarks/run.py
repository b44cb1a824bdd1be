"""keras_clip vs open_clip / transformers, side by side on this machine: one command.

    python benchmarks/run.py                 # everything (about 40 minutes on 2 cores)
    python benchmarks/run.py --quick         # smoke run: fewer cases and rounds
    python benchmarks/run.py --only inference --only training

What it does:

1. Writes random-weight open_clip checkpoints (OpenAI key names, .safetensors)
   once, with the reference Python: ViT-B/32, RN50 and a mid-size ViT. Every
   system loads the same files (keras_clip through `keras_clip.from_preset(path)`).
2. Exports keras_clip's towers to ONNX (fp32, fp16, int8) with
   `keras_clip.export.export_towers`.
3. Starts long-lived workers: keras_clip on each backend (`KERAS_BACKEND`),
   onnxruntime, and open_clip + transformers in the reference Python. Each case
   is first warmed up (compilation included), then measured in *rounds*: every
   round runs each system once, in a rotating order, so drift and other load hit
   all of them alike. Medians and min-max over rounds are reported; ratios to
   open_clip are taken per round (paired) and summarised the same way.
4. Training steps run in one fresh worker process per system (so `ru_maxrss`
   is that system's peak memory), also interleaved in rounds.
5. Runs `benchmarks/bench_data.py` for the input pipelines.

Results go under the machine class of this CPU (`common.machine_class` of its
AVX2 / AVX-512 / VNNI / BF16 / AMX flags, e.g. `amx`, `avx512_bf16`, `avx2`):
`benchmarks/results/<class>/{inference,training,flops,data,machine}.json` and
that class's `README.md`; `benchmarks/results/README.md` then shows one table
per class measured so far (both written by `benchmarks/report.py`). Other
classes' results are left as they are.

The reference Python (`--reference-python` or `KERAS_CLIP_REFERENCE_PYTHON`)
needs open_clip and transformers; create it with

    python -m venv /work/refenv
    /work/refenv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        open-clip-torch transformers safetensors
"""

import argparse
import datetime
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from common import (  # noqa: E402
    CACHE_DIR,
    RESULTS,
    cpu_flags,
    machine_class,
    vit_image_flops,
)

BACKENDS = ("tensorflow", "jax", "torch")
KERAS_VARIANTS = {
    # encode_* runs XLA on TensorFlow; "-predict" is Keras' predict_on_batch (no XLA)
    "tensorflow": ("fp32", "fp32-predict", "bf16"),
    "jax": ("fp32", "bf16"),
    "torch": ("fp32", "bf16"),
}
ONNX_VARIANTS = ("fp32", "fp16", "int8")
REFERENCE = "open_clip/fp32"


class WorkerError(RuntimeError):
    pass


class Worker:
    """A worker subprocess speaking one JSON line per request and per reply."""

    def __init__(self, name, argv, env=None, log_dir=None, start_timeout=600):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name.replace('/', '_')}.log")
        self.log = open(self.log_path, "a")
        self.log.write(f"\n==== {datetime.datetime.utcnow().isoformat()} {' '.join(argv)}\n")
        self.log.flush()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env=dict(os.environ, **(env or {})), text=True, bufsize=1, cwd=REPO)
        self.alive = True
        self.ready = self._read(start_timeout)

    def _read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close(force=True)
            raise WorkerError(f"{self.name}: no reply within {timeout:.0f} s (log {self.log_path})")
        line = self.proc.stdout.readline()
        if not line:
            self.alive = False
            raise WorkerError(f"{self.name}: worker exited (log {self.log_path})")
        return json.loads(line)

    def call(self, request, timeout=900):
        if not self.alive:
            raise WorkerError(f"{self.name}: worker is not running")
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as error:
            self.alive = False
            raise WorkerError(f"{self.name}: worker exited (log {self.log_path})") from error
        reply = self._read(timeout)
        if not reply.get("ok"):
            raise WorkerError(f"{self.name}: {reply.get('error')}\n{reply.get('traceback', '')}")
        return reply

    def close(self, force=False):
        if self.proc.poll() is None:
            try:
                if not force:
                    self.proc.stdin.write('{"op": "exit"}\n')
                    self.proc.stdin.flush()
                    self.proc.wait(30)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.alive = False
        self.log.close()


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def cosine(a, b):
    import numpy as np

    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float((num / den).min())


def log(message):
    stamp = datetime.datetime.utcnow().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


def describe_machine():
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "date_utc": datetime.datetime.utcnow().isoformat()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["simd"] = cpu_flags()
    info["machine_class"] = machine_class(info["simd"])
    try:
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    return info


class Harness:
    def __init__(self, args):
        self.args = args
        self.cache = os.path.abspath(args.cache_dir)
        self.checkpoints = os.path.join(self.cache, "checkpoints")
        self.exports = os.path.join(self.cache, "onnx")
        self.logs = os.path.join(self.cache, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.results_dir = os.path.abspath(args.results_dir)
        os.makedirs(self.results_dir, exist_ok=True)
        self.partial = None
        self.env = {"BENCH_THREADS": str(args.threads), "TF_CPP_MIN_LOG_LEVEL": "2",
                    "PYTHONPATH": REPO}

    # ---- workers -----------------------------------------------------------------
    def keras_worker(self, backend, name=None):
        return Worker(name or f"keras-{backend}",
                      [sys.executable, os.path.join(HERE, "worker_keras.py"),
                       "--checkpoints", self.checkpoints],
                      env=dict(self.env, KERAS_BACKEND=backend), log_dir=self.logs)

    def reference_worker(self, name="reference"):
        return Worker(name, [self.args.reference_python,
                             os.path.join(HERE, "worker_reference.py"),
                             "--checkpoints", self.checkpoints],
                      env=dict(self.env, PYTHONPATH=""), log_dir=self.logs)

    def onnx_worker(self):
        return Worker("onnx", [sys.executable, os.path.join(HERE, "worker_onnx.py"),
                               "--exports", self.exports], env=self.env, log_dir=self.logs)

    # ---- preparation ------------------------------------------------------------
    def prepare_checkpoints(self):
        names = ("vit_b32", "rn50", "mid")
        if all(os.path.exists(os.path.join(self.checkpoints, f"{n}.safetensors")) for n in names):
            return
        log("writing random-weight open_clip checkpoints")
        subprocess.run([self.args.reference_python, os.path.join(HERE, "worker_reference.py"),
                        "--make-checkpoints", self.checkpoints], check=True, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=""))

    def prepare_exports(self, models):
        done = []
        for model in models:
            out = os.path.join(self.exports, model)
            if os.path.exists(os.path.join(out, "manifest.json")):
                done.append(model)
                continue
            log(f"exporting {model} to ONNX (fp32, fp16, int8) with keras_clip.export")
            with open(os.path.join(self.logs, f"export_{model}.log"), "a") as logf:
                result = subprocess.run(
                    [sys.executable, os.path.join(HERE, "worker_onnx.py"), "--export",
                     os.path.join(self.checkpoints, f"{model}.safetensors"), out],
                    stdout=logf, stderr=logf, cwd=REPO,
                    env=dict(os.environ, **self.env, KERAS_BACKEND=self.args.export_backend))
            if result.returncode == 0:
                done.append(model)
            else:
                log(f"  export of {model} failed (see {logf.name}); ONNX rows skipped")
        return done

    # ---- interleaved rounds -----------------------------------------------------
    def interleave(self, cases, systems, request, rounds, budget_s, label):
        """Warm up every (case, system), then `rounds` rounds of one call each.

        `systems`: {system: (worker, extra request fields, cases it runs or None)}.
        Returns {case_key: {system: {"setup": reply, "seconds": [...]}}}.
        """
        out = {}
        for case in cases:
            for system, (worker, extra, only) in systems.items():
                if only is not None and case["key"] not in only:
                    continue
                entry = out.setdefault(case["key"], {}).setdefault(system, {"seconds": []})
                try:
                    reply = worker.call(dict(request(case), **extra, warmup=2, iters=1),
                                        timeout=self.args.setup_timeout)
                    entry["setup"] = {k: v for k, v in reply.items() if k != "ok"}
                    log(f"  warm {label} {case['key']:<22} {system:<30} "
                        f"setup {reply.get('setup_s', 0):6.1f} s")
                except WorkerError as error:
                    entry["error"] = str(error)[:3000]
                    log(f"  FAILED {case['key']} {system}: {str(error).splitlines()[0][:200]}")
        start = time.perf_counter()
        for r in range(rounds):
            round_start = time.perf_counter()
            for case in cases:
                entries = out.get(case["key"], {})
                names = [s for s in systems if s in entries and "error" not in entries[s]]
                shift = r % max(len(names), 1)
                for system in names[shift:] + names[:shift]:
                    worker, extra, _ = systems[system]
                    try:
                        reply = worker.call(dict(request(case), **extra, iters=case["iters"]),
                                            timeout=self.args.setup_timeout)
                        entries[system]["seconds"].append(reply["seconds"])
                        for key in ("peak_rss_mb", "loss"):
                            if key in reply:
                                entries[system][key] = reply[key]
                    except WorkerError as error:
                        entries[system]["error"] = str(error)[:3000]
                        log(f"  FAILED {case['key']} {system}: {str(error).splitlines()[0][:200]}")
            took = time.perf_counter() - round_start
            elapsed = time.perf_counter() - start
            log(f"  {label} round {r + 1}/{rounds} took {took:.0f} s")
            if r + 1 >= 2 and elapsed + took > budget_s and r + 1 < rounds:
                log(f"  {label}: stopping after {r + 1} rounds (time budget {budget_s:.0f} s)")
                break
        return out

    # ---- sections -----------------------------------------------------------------
    def inference(self):
        args = self.args
        models = args.models
        exported = self.prepare_exports(models) if "onnx" in args.systems else []
        workers, systems = {}, {}
        try:
            if "open_clip" in args.systems or "transformers" in args.systems:
                workers["reference"] = self.reference_worker()
            for backend in args.backends:
                workers[backend] = self.keras_worker(backend)
            if exported:
                workers["onnx"] = self.onnx_worker()
            results, matmul = {}, {}
            for model in models:
                cases = [
                    {"key": f"{model}/image/b1", "model": model, "tower": "image", "batch": 1,
                     "iters": 3 if args.quick else (10 if model == "vit_b32" else 4)},
                    {"key": f"{model}/image/b32", "model": model, "tower": "image",
                     "batch": 32, "iters": 1},
                    {"key": f"{model}/text/b32", "model": model, "tower": "text", "batch": 32,
                     "iters": 1},
                ]
                systems = {}
                if "reference" in workers:
                    systems[REFERENCE] = (workers["reference"], {"system": "open_clip"}, None)
                    if model == "vit_b32" and "transformers" in args.systems:
                        systems["transformers/fp32"] = (
                            workers["reference"], {"system": "transformers"}, None)
                for backend in args.backends:
                    for variant in KERAS_VARIANTS[backend]:
                        if variant.startswith("bf16") and (model != "vit_b32" or (
                                args.quick and backend != "tensorflow")):
                            continue  # bf16: the ViT-B/32 target only
                        # bf16 (no bf16 matmul units on most CPUs) only at batch 32
                        only = ({f"{model}/image/b32", f"{model}/text/b32"}
                                if variant.startswith("bf16") else None)
                        if f"keras_clip-{backend}/{variant}" in args.skip:
                            continue
                        systems[f"keras_clip-{backend}/{variant}"] = (
                            workers[backend], {"system": "keras_clip", "variant": variant}, only)
                    if backend == "torch" and args.torch_compile:
                        systems["keras_clip-torch/fp32-compile"] = (
                            workers[backend], {"system": "keras_clip", "variant": "fp32-compile"},
                            None)
                if model in exported:
                    for variant in ONNX_VARIANTS:
                        systems[f"onnx/{variant}"] = (
                            workers["onnx"], {"system": "onnx", "variant": variant}, None)
                log(f"inference {model}: {len(systems)} systems x {len(cases)} cases")
                measured = self.interleave(
                    cases, systems, lambda c: {"op": "infer", "model": c["model"],
                                               "tower": c["tower"], "batch": c["batch"]},
                    args.rounds, args.inference_budget / len(models), f"inference {model}")
                for case in cases:
                    results[case["key"]] = self.summarise_inference(case, measured[case["key"]])
                for worker in workers.values():
                    if worker.alive:
                        try:
                            worker.call({"op": "clear"})
                        except WorkerError:
                            pass
            matmul = self.matmuls(workers)
            versions = self.versions(workers)
        finally:
            for worker in workers.values():
                worker.close()
        flops = self.flop_utilisation(results, matmul)
        return {"cases": results, "versions": versions, "rounds": args.rounds}, flops

    def summarise_inference(self, case, entries):
        ref = entries.get(REFERENCE, {})
        ref_rows = ref.get("setup", {}).get("rows")
        out = {}
        for system, entry in entries.items():
            rates = [case["batch"] / s for s in entry["seconds"]]
            row = {"samples_per_s": summary(rates)}
            setup = entry.get("setup", {})
            row["setup_s"] = setup.get("setup_s")
            if "error" in entry:
                row["error"] = entry["error"]
            if ref_rows and setup.get("rows"):
                row["cosine_vs_open_clip"] = cosine(setup["rows"], ref_rows)
            if system.startswith("keras_clip") and "/bf16" in system:
                fp32 = entries.get(system.split("/")[0] + "/fp32", {}).get("setup", {})
                if fp32.get("rows") and setup.get("rows"):
                    row["cosine_vs_fp32"] = cosine(setup["rows"], fp32["rows"])
            if system.startswith("onnx/") and system != "onnx/fp32":
                fp32 = entries.get("onnx/fp32", {}).get("setup", {})
                if fp32.get("rows") and setup.get("rows"):
                    row["cosine_vs_fp32"] = cosine(setup["rows"], fp32["rows"])
            ref_seconds = ref.get("seconds", [])
            if system != REFERENCE and ref_seconds and entry["seconds"]:
                n = min(len(ref_seconds), len(entry["seconds"]))
                row["ratio_vs_open_clip"] = summary(
                    [ref_seconds[i] / entry["seconds"][i] for i in range(n)])
            out[system] = row
        return out

    def matmuls(self, workers):
        log("matmul fp32 2048² and bf16 1024² (the practical FLOP limit)")
        out = {}
        plan = [(name, w, dtype) for name, w in workers.items() if name != "onnx"
                for dtype in ("fp32", "bf16")]
        for _ in range(self.args.matmul_rounds):
            for name, worker, dtype in plan:
                if not worker.alive:
                    continue
                label = ("torch (open_clip env)" if name == "reference" else name) + f"/{dtype}"
                try:
                    # bf16 matmuls can be emulated (slow) where the CPU has no bf16 units
                    n, iters = (2048, 5) if dtype == "fp32" else (1024, 2)
                    reply = worker.call({"op": "matmul", "dtype": dtype, "n": n, "iters": iters},
                                        timeout=300)
                    out.setdefault(label, []).append(reply["gflops"])
                except WorkerError as error:
                    log(f"  matmul {label} failed: {str(error)[:200]}")
        return {k: summary(v) for k, v in out.items()}

    def versions(self, workers):
        out = {}
        for name, worker in workers.items():
            try:
                out[name] = {k: v for k, v in worker.call({"op": "versions"}).items() if k != "ok"}
            except WorkerError:
                pass
        return out

    def flop_utilisation(self, results, matmul):
        flops = vit_image_flops()
        fp32 = {k: v["median"] for k, v in matmul.items() if k.endswith("/fp32") and v}
        limit = max(fp32.values()) if fp32 else None
        rows = {}
        for system, row in results.get("vit_b32/image/b32", {}).items():
            rate = (row.get("samples_per_s") or {}).get("median")
            if rate and limit:
                achieved = rate * flops / 1e9
                rows[system] = {"gflops": achieved, "utilisation_vs_best_fp32_matmul":
                                achieved / limit}
        return {"vit_b32_image_gflop_per_image": flops / 1e9,
                "matmul_2048_gflops": matmul, "best_fp32_matmul_gflops": limit,
                "vit_b32_image_b32": rows}

    def training(self):
        """Training steps: open_clip's worker stays up; each other system gets its own
        process in turn and is interleaved, round by round, with open_clip's."""
        args = self.args
        models = args.train_models
        results = {}
        for model in models:
            candidates = [("open_clip/fp32+grad_ckpt", "reference", {"grad_checkpointing": True})]
            for backend in args.backends:
                candidates.append((f"keras_clip-{backend}/default", backend, {}))
            if "tensorflow" in args.backends:
                candidates.append(("keras_clip-tensorflow/xla", "tensorflow", {"variant": "xla"}))
            if "jax" in args.backends:
                candidates.append(("keras_clip-jax/remat", "jax", {"variant": "remat"}))
            if args.quick or model == "mid":  # variants only at full size
                candidates = [c for c in candidates if "grad_ckpt" not in c[0]
                              and "remat" not in c[0] and "/xla" not in c[0]]
            candidates = [c for c in candidates if c[0] not in args.skip]
            case = {"key": f"{model}/train/b32", "model": model, "batch": 32, "iters": 1}
            request = lambda c: {"op": "train", "model": c["model"], "batch": c["batch"]}  # noqa
            budget = args.training_budget / len(models) / max(len(candidates), 1)
            log(f"training {model}: open_clip vs {len(candidates)} systems, one process each")
            rows, ref_seconds, ref_entry = {}, [], {}
            try:
                reference = self.reference_worker(f"train-{model}-open_clip")
            except WorkerError as error:
                log(f"  could not start open_clip: {error}")
                reference = None
            try:
                for name, kind, extra in candidates:
                    try:
                        worker = (self.reference_worker(f"train-{model}-{name}")
                                  if kind == "reference" else
                                  self.keras_worker(kind, f"train-{model}-{name}"))
                    except WorkerError as error:
                        rows[name] = {"error": str(error)}
                        log(f"  could not start {name}: {error}")
                        continue
                    systems = {name: (worker, extra, None)}
                    if reference is not None and reference.alive:
                        systems = {"open_clip/fp32": (reference, {}, None), **systems}
                    try:
                        measured = self.interleave([case], systems, request, args.train_rounds,
                                                   budget, f"training {model} {name}")
                    finally:
                        worker.close()
                    entries = measured[case["key"]]
                    group = self.summarise_training(case, entries)
                    rows[name] = group[name]
                    if "open_clip/fp32" in entries:
                        ref_seconds += entries["open_clip/fp32"]["seconds"]
                        ref_entry = entries["open_clip/fp32"]
            finally:
                if reference is not None:
                    reference.close()
            if ref_entry:
                ref_entry = dict(ref_entry, seconds=ref_seconds)
                rows = {"open_clip/fp32": self.summarise_training(
                    case, {"open_clip/fp32": ref_entry})["open_clip/fp32"], **rows}
            results[case["key"]] = rows
            if self.partial is not None:  # keep what is measured if a later model fails
                self.write("training", dict(self.training_payload(results), **self.partial))
        return self.training_payload(results)

    def training_payload(self, results):
        args = self.args
        return {"cases": results, "rounds": args.train_rounds,
                "optimizer": "AdamW lr 1e-5, betas (0.9, 0.98), eps 1e-6, weight decay 0.2",
                "loss": "symmetric contrastive (open_clip ClipLoss / keras_clip compute_loss)",
                "method": "open_clip's process stays up; each other system runs in its own "
                          "process, interleaved round by round with open_clip's step; ratios "
                          "are paired within that system's rounds"}

    def summarise_training(self, case, entries):
        ref = entries.get("open_clip/fp32", {})
        out = {}
        for system, entry in entries.items():
            row = {"samples_per_s": summary([case["batch"] / s for s in entry["seconds"]]),
                   "peak_rss_mb": entry.get("peak_rss_mb"),
                   "setup": {k: v for k, v in entry.get("setup", {}).items()
                             if k not in ("seconds", "peak_rss_mb")}}
            if "error" in entry:
                row["error"] = entry["error"]
            if system != "open_clip/fp32" and ref.get("seconds") and entry["seconds"]:
                n = min(len(ref["seconds"]), len(entry["seconds"]))
                row["ratio_vs_open_clip"] = summary(
                    [ref["seconds"][i] / entry["seconds"][i] for i in range(n)])
                if ref.get("peak_rss_mb") and entry.get("peak_rss_mb"):
                    row["memory_vs_open_clip"] = entry["peak_rss_mb"] / ref["peak_rss_mb"]
            out[system] = row
        return out

    def data(self):
        args = self.args
        output = os.path.join(self.results_dir, "data.json")
        argv = [sys.executable, os.path.join(HERE, "bench_data.py"), "--output", output]
        argv += (["--samples", "256", "--batches", "6"] if args.quick
                 else ["--samples", "512", "--batches", "12"])
        log("data pipelines: " + " ".join(argv[1:]))
        with open(os.path.join(self.logs, "data.log"), "a") as logf:
            subprocess.run(argv, check=True, cwd=REPO, stdout=logf, stderr=logf,
                           env=dict(os.environ, **self.env))
        with open(output) as f:
            return json.load(f)

    def write(self, name, payload):
        path = os.path.join(self.results_dir, f"{name}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(path + ".tmp", path)
        log(f"wrote {path}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--only", action="append", choices=("inference", "training", "data"),
                        help="run only these sections (repeatable)")
    parser.add_argument("--reference-python",
                        default=os.environ.get("KERAS_CLIP_REFERENCE_PYTHON",
                                               "/work/refenv/bin/python"))
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--systems", default="open_clip,transformers,onnx",
                        help="reference systems besides keras_clip")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for every system (default: all cores)")
    parser.add_argument("--models", default=None,
                        help="inference models (default vit_b32,rn50; quick: vit_b32)")
    parser.add_argument("--train-models", default=None,
                        help="training models (default mid,vit_b32; quick: mid)")
    parser.add_argument("--rounds", type=int, default=None, help="inference rounds")
    parser.add_argument("--train-rounds", type=int, default=None)
    parser.add_argument("--matmul-rounds", type=int, default=None)
    parser.add_argument("--inference-budget", type=float, default=None,
                        help="seconds of measured inference rounds (after warm-up)")
    parser.add_argument("--training-budget", type=float, default=None)
    parser.add_argument("--setup-timeout", type=float, default=900)
    parser.add_argument("--export-backend", default="tensorflow")
    parser.add_argument("--skip", default="keras_clip-torch/bf16",
                        help="inference systems to leave out (comma-separated; default: torch "
                             "bf16, which took over 2 minutes for two ViT-B/32 batches on an "
                             "AVX2-only CPU)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="also time torch.compile on the torch backend (minutes of "
                             "compilation per tower on 2 cores)")
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--results-dir", default=None,
                        help="default: benchmarks/results/<machine class of this CPU>")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.systems = [s for s in args.systems.split(",") if s]
    args.skip = [s for s in args.skip.split(",") if s]
    quick = args.quick
    args.models = (args.models or ("vit_b32" if quick else "vit_b32,rn50")).split(",")
    args.train_models = (args.train_models or ("mid" if quick else "mid,vit_b32")).split(",")
    args.rounds = args.rounds or (2 if quick else 4)
    args.train_rounds = args.train_rounds or (2 if quick else 3)
    args.matmul_rounds = args.matmul_rounds or (1 if quick else 3)
    args.inference_budget = args.inference_budget or (300 if quick else 600)
    args.training_budget = args.training_budget or (200 if quick else 600)
    args.only = args.only or ["inference", "training", "data"]
    args.results_dir = args.results_dir or os.path.join(RESULTS, machine_class(cpu_flags()))
    return args


def main(argv=None):
    args = parse_args(argv)
    harness = Harness(args)
    started = time.perf_counter()
    machine = describe_machine()
    machine["threads_per_system"] = args.threads
    machine["quick"] = args.quick
    log(f"machine: {machine.get('cpu')} x{machine['cpus']}, class {machine['machine_class']} "
        f"({', '.join(machine['simd'])}), load {machine['load_average_at_start']}")
    harness.prepare_checkpoints()
    if "data" in args.only:
        harness.data()
    if "inference" in args.only:
        inference, flops = harness.inference()
        harness.write("inference", dict(inference, machine=machine))
        harness.write("flops", dict(flops, machine=machine))
    if "training" in args.only:
        harness.partial = {"machine": machine, "partial": True}
        harness.write("training", dict(harness.training(), machine=machine))
    machine["load_average_at_end"] = os.getloadavg()
    machine["wall_s"] = time.perf_counter() - started
    harness.write("machine", machine)
    import report

    report.write_readme(harness.results_dir)
    report.write_index(os.path.dirname(harness.results_dir))
    log(f"done in {machine['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
