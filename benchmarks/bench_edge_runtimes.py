"""Tower speed of export folders on ONNX Runtime and LiteRT, next to open_clip.

Times the image and text towers (items/s) at batch 1 and 32 for each runtime
and precision the folders hold (fp32 / fp16 / int8; an ONNX int8 file is
labelled by the manifest's `int8_method`, `int8-dynamic` or `int8-static`),
and open_clip's ViT-B-32 (fp32, `torch.no_grad`, random weights) in a
reference process that stays up for the whole run. The measurements are
interleaved: each round times open_clip and then every file once per batch
(median of `--repeats` calls), so a shared machine's load falls on all of them
alike; the figures are medians over `--rounds`, and each ratio is the median
of the per-round ratios to open_clip. Records the CPU's SIMD flags and the
load average at the start and the end.

    KERAS_BACKEND=tensorflow keras-clip export vit_b32 --random-weights --formats onnx \\
        --int8 -o /tmp/vit_b32_dynamic
    KERAS_BACKEND=tensorflow keras-clip export vit_b32 --random-weights --formats onnx \\
        --int8 static -o /tmp/vit_b32_static
    python benchmarks/bench_edge_runtimes.py /tmp/vit_b32_dynamic /tmp/vit_b32_static \\
        --reference-python ../refenv/bin/python --out benchmarks/results/amx/edge_runtimes.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

REFERENCE = r"""
import json, sys, time, torch, open_clip
torch.set_num_threads(int(sys.argv[1]))
model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
towers = {"image_encoder": (lambda b: torch.randn(b, 3, 224, 224), model.encode_image),
          "text_encoder": (lambda b: torch.randint(1, 49000, (b, 77)), model.encode_text)}
print("ready", flush=True)
with torch.no_grad():
    for line in sys.stdin:
        tower, batch, repeats = line.split()
        make, run = towers[tower]
        x = make(int(batch))
        run(x)
        times = []
        for _ in range(int(repeats)):
            start = time.perf_counter(); run(x); times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)
"""


def simd_flags():
    """The CPU's AVX / AMX / VNNI flags (Linux), for the machine class of the figures."""
    try:
        with open("/proc/cpuinfo") as file:
            flags = next(line for line in file if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted({f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f})


def median_rate(run, inputs, repeats):
    run(inputs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return len(inputs) / statistics.median(times)


class Reference:
    """open_clip in the reference venv, timing on request (one process for the whole run)."""

    def __init__(self, python, threads):
        self.process = subprocess.Popen([python, "-c", REFERENCE, str(threads)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self.process.stdout.readline().strip() != "ready":
            raise OSError(f"the open_clip reference did not start under {python}.")

    def rate(self, tower, batch, repeats):
        self.process.stdin.write(f"{tower} {batch} {repeats}\n")
        self.process.stdin.flush()
        return batch / statistics.median(json.loads(self.process.stdout.readline()))

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def precision_label(manifest, runtime, precision):
    """`int8` ONNX files as `int8-<method>` (the manifest's `int8_method`; older: dynamic)."""
    if runtime == "onnx" and precision == "int8":
        return "int8-" + manifest.get("int8_method", {}).get("onnx", "dynamic")
    return precision


def runners(folders, threads, towers, runtimes):
    """`{(runtime, precision, tower): fn(inputs) -> embeddings}`; the first folder wins a tie."""
    import onnxruntime as ort

    found = {}
    for folder in folders:
        with open(os.path.join(folder, "manifest.json")) as file:
            manifest = json.load(file)
        for runtime in runtimes:
            for tower, variants in manifest.get(runtime, {}).items():
                for precision, name in variants.items():
                    key = (runtime, precision_label(manifest, runtime, precision), tower)
                    if tower not in towers or key in found:
                        continue
                    found[key] = _runner(runtime, os.path.join(folder, name), tower, threads, ort)
    return found


def _runner(runtime, path, tower, threads, ort):
    input_name = "images" if tower == "image_encoder" else "token_ids"
    if runtime == "onnx":
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(["embeddings"], {input_name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner()
    return lambda x: runner(**{input_name: x})["embeddings"]


def summarize(rates, reference):
    """Medians over the rounds, the median paired ratio and its range."""
    row = {"items_per_s": round(statistics.median(rates), 2)}
    if reference:
        ratios = [r / base for r, base in zip(rates, reference)]
        row.update(ratio_to_open_clip=round(statistics.median(ratios), 2),
                   ratio_range=[round(min(ratios), 2), round(max(ratios), 2)])
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders written by keras-clip export (ViT-B/32)")
    parser.add_argument("--reference-python", help="python of the venv with open_clip")
    parser.add_argument("--repeats", type=int, default=5, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--towers", default="image_encoder,text_encoder")
    parser.add_argument("--runtimes", default="onnx,litert")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    towers = args.towers.split(",")
    with open(os.path.join(args.folders[0], "manifest.json")) as file:
        size = json.load(file)["image"]["size"]
    rng = np.random.default_rng(0)
    inputs = {
        "image_encoder": lambda b: rng.normal(size=(b, size, size, 3)).astype(np.float32),
        "text_encoder": lambda b: rng.integers(1, 49000, (b, 77)).astype(np.int32),
    }
    load_start = os.getloadavg()
    found = runners(args.folders, args.threads, towers, args.runtimes.split(","))
    reference = Reference(args.reference_python, args.threads) if args.reference_python else None
    rates = {}  # (runtime, precision, tower, batch) -> [items/s per round]; runtime "open_clip"
    for round_index in range(args.rounds):
        for tower in towers:
            for batch in batches:
                x = inputs[tower](batch)
                if reference:
                    rates.setdefault(("open_clip", "fp32", tower, batch), []).append(
                        reference.rate(tower, batch, args.repeats))
                keys = sorted(k for k in found if k[2] == tower)
                shift = round_index % len(keys)  # rotate the order from round to round
                for runtime, precision, _ in keys[shift:] + keys[:shift]:
                    rates.setdefault((runtime, precision, tower, batch), []).append(
                        median_rate(found[runtime, precision, tower], x, args.repeats))
        print(f"round {round_index + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}",
              file=sys.stderr)
    if reference:
        reference.close()
    rows = []
    for (runtime, precision, tower, batch), values in sorted(rates.items()):
        base = rates.get(("open_clip", "fp32", tower, batch)) if runtime != "open_clip" else None
        row = {"runtime": runtime, "precision": precision, "tower": tower, "batch": batch,
               **summarize(values, base)}
        rows.append(row)
        print(f"{runtime:9s} {precision:12s} {tower:14s} batch {batch:2d}: "
              f"{row['items_per_s']:8.2f}/s" + (
                  f"  {row['ratio_to_open_clip']:.2f}x open_clip [{row['ratio_range'][0]:.2f}-"
                  f"{row['ratio_range'][1]:.2f}]" if base else ""))
    figures = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
               "cores": os.cpu_count(), "simd": simd_flags(), "threads": args.threads,
               "load_start": [round(x, 2) for x in load_start],
               "load_end": [round(x, 2) for x in os.getloadavg()],
               "rounds": args.rounds, "repeats": args.repeats,
               "shared_machine": "yes: other jobs ran at the same time (see the load)",
               "rows": rows}
    if args.out:
        with open(args.out, "w") as file:
            json.dump(figures, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
