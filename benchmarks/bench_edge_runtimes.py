"""Tower speed of export folders on ONNX Runtime and LiteRT, next to open_clip.

Times the image and text towers (items/s) at batch 1 and 32 for each runtime
and precision the folders hold (fp32 / fp16 / int8; an ONNX int8 file is
labelled by the manifest's `int8_method`, `int8-dynamic` or `int8-static`),
and open_clip's ViT-B-32 (fp32, `torch.no_grad`, random weights) in a
reference process that stays up for the whole run. The measurements are
interleaved: each round times open_clip and then every file once per batch
(median of `--repeats` calls), so a shared machine's load falls on all of them
alike; the figures are medians over `--rounds`, and each ratio is the median
of the per-round ratios to open_clip. Each fp16 / int8 row also gets its
cosine to the same folder's ONNX fp32 tower (min and mean over 32 inputs the
static calibration never saw: random images, and zero-shot prompts for the
odd-numbered ImageNet classes). Records the CPU's SIMD flags and the load
average at the start and the end.

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


def cosine_inputs(tower, size):
    """32 inputs for the cosine to fp32 (the calibration uses even-numbered classes only)."""
    if tower == "image_encoder":
        return np.random.default_rng(1).normal(size=(32, size, size, 3)).astype(np.float32)
    from keras_clip.evaluation.templates import imagenet_class_names
    from keras_clip.tokenizer import CLIPTokenizer

    names = imagenet_class_names()[1::2][:32]
    return np.asarray(CLIPTokenizer()([f"a photo of a {name}." for name in names]), np.int32)


def cosines(found, size):
    """`{(runtime, precision, tower): {min, mean}}`: cosine of each variant to ONNX fp32."""
    figures = {}
    for (runtime, precision, tower), run in found.items():
        reference = found.get(("onnx", "fp32", tower))
        if precision == "fp32" or reference is None:
            continue
        x = cosine_inputs(tower, size)
        a, b = reference(x), run(x)
        cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        figures[runtime, precision, tower] = {"cosine_to_onnx_fp32_min": round(float(cos.min()), 5),
                                              "cosine_to_onnx_fp32_mean": round(float(cos.mean()), 5)}
    return figures


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
    parser.add_argument("--out", help="write the figures to this JSON file (and a .md table)")
    parser.add_argument("--update", action="store_true",
                        help="keep --out's rows that this run does not measure (each row names "
                             "its run in `runs`: date, load, settings)")
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
    agreement = cosines(found, size)
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
               **summarize(values, base), **agreement.get((runtime, precision, tower), {})}
        rows.append(row)
        print(f"{runtime:9s} {precision:12s} {tower:14s} batch {batch:2d}: "
              f"{row['items_per_s']:8.2f}/s" + (
                  f"  {row['ratio_to_open_clip']:.2f}x open_clip [{row['ratio_range'][0]:.2f}-"
                  f"{row['ratio_range'][1]:.2f}]" if base else "") + (
                  f"  cosine to fp32 min {row['cosine_to_onnx_fp32_min']:.5f}"
                  if "cosine_to_onnx_fp32_min" in row else ""))
    run = {"date": time.strftime("%Y-%m-%d"), "load_start": [round(x, 2) for x in load_start],
           "load_end": [round(x, 2) for x in os.getloadavg()], "rounds": args.rounds,
           "repeats": args.repeats, "towers": towers, "batches": batches}
    figures = {"date": run["date"], "machine": platform.machine(),
               "cores": os.cpu_count(), "simd": simd_flags(), "threads": args.threads,
               "load_start": run["load_start"], "load_end": run["load_end"],
               "rounds": args.rounds, "repeats": args.repeats,
               "shared_machine": "yes: other jobs ran at the same time (see the load)",
               "rows": rows}
    if args.out:
        if args.update and os.path.exists(args.out):
            figures = updated(args.out, figures, run)
        with open(args.out, "w") as file:
            json.dump(figures, file, indent=2)
            file.write("\n")
        with open(os.path.splitext(args.out)[0] + ".md", "w") as file:
            file.write(markdown(figures))
    return 0


def row_key(row):
    return row["runtime"], row["precision"], row["tower"], row["batch"]


def updated(path, figures, run):
    """`figures` with the rows of the file at `path` that this run did not measure."""
    with open(path) as file:
        earlier = json.load(file)
    runs = earlier.get("runs") or [{key: earlier[key] for key in (
        "date", "load_start", "load_end", "rounds", "repeats") if key in earlier}]
    old_rows = [{"run": 0, **row} for row in earlier["rows"]] if "runs" not in earlier else \
        earlier["rows"]
    measured = {row_key(row) for row in figures["rows"]}
    kept = [row for row in old_rows if row_key(row) not in measured]
    for row in figures["rows"]:
        row["run"] = len(runs)
    figures["runs"] = runs + [run]
    figures["rows"] = sorted(kept + figures["rows"], key=row_key)
    return figures


def markdown(figures):
    """The figures as a Markdown table, with the runs' dates and load."""
    lines = ["# Export folders on ONNX Runtime / LiteRT next to open_clip (ViT-B/32)", "",
             f"CPU flags: {', '.join(figures['simd'])}; {figures['cores']} cores, "
             f"{figures['threads']} threads. Shared machine: other jobs ran at the same time.", ""]
    runs = figures.get("runs") or [figures]
    for index, run in enumerate(runs):
        lines.append(f"- run {index}: {run['date']}, load average {run['load_start'][0]:.2f} at "
                     f"start, {run['load_end'][0]:.2f} at end; {run.get('rounds')} interleaved "
                     f"rounds, median of {run.get('repeats')} calls")
    lines += ["", "| runtime | precision | tower | batch | items/s | vs open_clip fp32 [range] | "
              "cosine to ONNX fp32 (min / mean) | run |", "|---|---|---|---|---|---|---|---|"]
    for row in figures["rows"]:
        ratio = (f"{row['ratio_to_open_clip']:.2f}x [{row['ratio_range'][0]:.2f}–"
                 f"{row['ratio_range'][1]:.2f}]" if "ratio_to_open_clip" in row else "–")
        cosine = (f"{row['cosine_to_onnx_fp32_min']:.5f} / {row['cosine_to_onnx_fp32_mean']:.5f}"
                  if "cosine_to_onnx_fp32_min" in row else "–")
        lines.append(f"| {row['runtime']} | {row['precision']} | {row['tower']} | {row['batch']} | "
                     f"{row['items_per_s']:.2f} | {ratio} | {cosine} | {row.get('run', 0)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
