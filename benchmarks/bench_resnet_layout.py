"""RN50 towers: the ResNet tower's internal layout per backend, side by side with open_clip.

    python benchmarks/bench_resnet_layout.py                      # torch, tensorflow, jax
    python benchmarks/bench_resnet_layout.py --backends torch --rounds 5
    python benchmarks/bench_resnet_layout.py --backends torch --layouts channels_first \
        --graph --name resnet_layout_torch_inference   # torch's inference path on and off

One run, interleaved: open_clip (the reference Python) and keras_clip on each
backend with the image tower built channels-last and channels-first (the same
weights, copied from `from_preset(rn50.safetensors)`, through the user's path
`CLIP._run_tower`), plus each backend's text tower. Every round runs each
system once per case in a rotating order. With `--graph`, each torch system also
runs as `<system>/graph`: the functional graph with the torch inference path
(`keras_clip/models/torch_inference.py`) switched off, i.e. the tower before it; medians over rounds and paired
ratios (open_clip seconds / keras_clip seconds: above 1 is faster than
open_clip) are written to `benchmarks/results/<machine class>/resnet_layout.json`
and `.md`, with the CPU flags and the load average.
"""

import argparse
import datetime
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import (
    CACHE_DIR, head_rows, results_dir, serve, time_calls, tower_input, warm_up, write_report,
)

LAYOUTS = ("channels_last", "channels_first")
ITERS = {1: 5, 32: 1}  # calls per timing: batch 1 is short, so average a few


class LayoutWorker:
    """keras_clip side: the RN50 image tower in a chosen layout, and the text tower."""

    def __init__(self, checkpoints):
        import keras

        import keras_clip

        self.keras = keras
        self.model = keras_clip.from_preset(os.path.join(checkpoints, "rn50.safetensors"))
        self.towers = {}
        self.cases = {}

    def tower(self, layout):
        from keras_clip.models.modified_resnet import ModifiedResNetEncoder

        if layout not in self.towers:
            source = self.model.image_encoder
            tower = ModifiedResNetEncoder(source.config, source.embed_dim, data_format=layout)
            tower.set_weights(source.get_weights())  # same shapes in both layouts
            self.towers[layout] = tower
        return self.towers[layout]

    def infer(self, req):
        if req.get("graph"):
            from unittest import mock

            from keras_clip.models import torch_inference

            with mock.patch.object(torch_inference, "forward", lambda tower, inputs: None):
                return self.run_case(req)
        return self.run_case(req)

    def run_case(self, req):
        from keras_clip.models.clip import _run_tower

        key = (req["tower"], req.get("layout"), req["batch"], bool(req.get("graph")))
        info = {}
        if key not in self.cases:
            if req["tower"] == "image":
                tower = self.tower(req["layout"])
                fn = lambda x, tower=tower: _run_tower(tower, x)
            else:
                fn = self.model.encode_text
            x = tower_input("rn50", req["tower"], req["batch"])
            out, seconds = warm_up(lambda x: self.keras.ops.convert_to_numpy(fn(x)), x, 2)
            info = {"setup_s": seconds, "rows": head_rows(out)}
            self.cases[key] = (fn, x)
        fn, x = self.cases[key]
        return dict(info, seconds=time_calls(fn, x, req.get("iters", 1)))

    def handle(self, req):
        if req["op"] == "versions":
            return {"keras": self.keras.__version__, "backend": self.keras.backend.backend(),
                    "default_layout": self.model.image_encoder.layout}
        return self.infer(req)


def cosine(a, b):
    import numpy as np

    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())


def load():
    return [round(x, 1) for x in os.getloadavg()]


def run(args):
    from run import Worker, cpu_flags, machine_class

    cache = os.path.abspath(args.cache_dir)
    checkpoints, logs = os.path.join(cache, "checkpoints"), os.path.join(cache, "logs")
    os.makedirs(logs, exist_ok=True)
    env = {"BENCH_THREADS": str(args.threads), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.path.dirname(HERE)}
    if not os.path.exists(os.path.join(checkpoints, "rn50.safetensors")):
        import subprocess

        code = (f"import sys; sys.path.insert(0, {HERE!r}); import worker_reference as w; "
                f"w.make_checkpoints({checkpoints!r}, ('rn50',))")
        subprocess.run([args.reference_python, "-c", code], check=True)
    started = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "load_average": load(), "cpu_flags": cpu_flags(),
               "machine_class": machine_class(cpu_flags()), "threads": args.threads}
    workers = {"open_clip": Worker("open_clip", [args.reference_python,
                                                 os.path.join(HERE, "worker_reference.py"),
                                                 "--checkpoints", checkpoints],
                                   env=env, log_dir=logs)}
    for backend in args.backends:
        workers[backend] = Worker(backend, [sys.executable, os.path.abspath(__file__),
                                            "--worker", "--checkpoints", checkpoints],
                                  env=dict(env, KERAS_BACKEND=backend), log_dir=logs,
                                  start_timeout=900)
    versions = {name: w.call({"op": "versions"}) for name, w in workers.items()}
    cases = [("image", b) for b in args.batches] + [("text", b) for b in args.batches]
    systems = {"open_clip": ("open_clip", {"system": "open_clip", "model": "rn50"})}
    for backend in args.backends:
        variants = [("", {})] + ([("/graph", {"graph": True})] if args.graph and backend == "torch" else [])
        for suffix, extra in variants:
            for layout in args.layouts:
                systems[f"{backend}/{layout}{suffix}"] = (backend, dict(extra, layout=layout))
            systems[f"{backend}/text{suffix}"] = (backend, extra)
    times, rows = {}, {}
    for round_index in range(args.rounds):
        for tower, batch in cases:
            names = [n for n in systems if n == "open_clip" or
                     (tower == "text") == ("/text" in n)]
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                worker, extra = systems[name]
                req = dict(extra, op="infer", tower=tower, batch=batch, iters=ITERS.get(batch, 1))
                reply = workers[worker].call(req, timeout=1800)
                print(f"  {name} {tower} b{batch}: {reply['seconds']:.4f} s", flush=True)
                times.setdefault((name, tower, batch), []).append(reply["seconds"])
                if "rows" in reply:
                    rows[(name, tower, batch)] = reply["rows"]
        print(f"round {round_index + 1}/{args.rounds} load {load()}", flush=True)
    for worker in workers.values():
        worker.close()
    results = []
    for (name, tower, batch), seconds in sorted(times.items()):
        reference = times[("open_clip", tower, batch)]
        ratios = [r / s for r, s in zip(reference, seconds)]
        results.append({
            "system": name, "tower": tower, "batch": batch,
            "median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "ratio_to_open_clip": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "rounds": len(seconds),
            "cosine_to_open_clip": cosine(rows[(name, tower, batch)],
                                          rows[("open_clip", tower, batch)])})
    return {"started": started, "finished": {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "load_average": load()}, "versions": versions, "results": results}


def markdown(report):
    started = report["started"]
    lines = [
        "# RN50: the ResNet tower's layout per backend vs open_clip",
        "",
        (f"{started['date_utc']} UTC, machine class `{started['machine_class']}` "
         f"(flags {', '.join(started['cpu_flags'])}), {started['threads']} threads; load average "
         f"{started['load_average']} at start, {report['finished']['load_average']} at the end "
         "(a shared machine: other jobs ran at the same time). Random RN50 weights, fp32; "
         "ratio = open_clip seconds / keras_clip seconds per round (paired), median [min-max]; "
         "written by `benchmarks/bench_resnet_layout.py`."
         + (" `/graph`: the same tower with the torch inference path "
            "(`keras_clip/models/torch_inference.py`) switched off, as before it."
            if any(r["system"].endswith("/graph") for r in report["results"]) else "")),
        "",
        "| system | tower | batch | median s | ratio to open_clip | cosine |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['system']} | {r['tower']} | {r['batch']} | {r['median_s']:.4f} | "
            f"{r['ratio_to_open_clip']:.2f} [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}] | "
            f"{r['cosine_to_open_clip']:.6f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--graph", action="store_true",
                        help="also time torch with its inference path switched off")
    parser.add_argument("--name", default="resnet_layout", help="results file name")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reference-python", default=os.environ.get(
        "KERAS_CLIP_REFERENCE_PYTHON", "/work/refenv/bin/python"))
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--results-dir", default=None,
                        help="default: benchmarks/results/<machine class of this CPU>")
    args = parser.parse_args(argv)
    if args.worker:
        serve(LayoutWorker(args.checkpoints).handle)
        return
    args.backends = [b for b in args.backends.split(",") if b]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.layouts = [l for l in args.layouts.split(",") if l]
    report = run(args)
    write_report(args.results_dir or results_dir(), args.name, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
