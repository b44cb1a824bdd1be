"""Tower speed of an export folder on ONNX Runtime and LiteRT, next to open_clip.

Times the image tower (items/s) and text tower at batch 1 and 32 for each
runtime and precision the folder holds (fp32 / int8), and open_clip's
ViT-B-32 (fp32, `torch.no_grad`, random weights) in the reference venv, in one
run on one machine; reports the ratios to open_clip and the CPU's SIMD flags.

    KERAS_BACKEND=tensorflow keras-clip export vit_b32 --random-weights --int8 -o /tmp/vit_b32_export
    python benchmarks/bench_edge_runtimes.py /tmp/vit_b32_export \\
        --reference-python ../refenv/bin/python --out benchmarks/results/edge_runtimes.json
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

BATCHES = (1, 32)
REFERENCE = r"""
import json, sys, time, torch, open_clip
torch.set_num_threads(int(sys.argv[1]))
model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
out = {}
with torch.no_grad():
    for batch in (1, 32):
        for tower, make, run in (
            ("image_encoder", lambda b: torch.randn(b, 3, 224, 224), model.encode_image),
            ("text_encoder", lambda b: torch.randint(1, 49000, (b, 77)), model.encode_text),
        ):
            x = make(batch)
            run(x)
            times = []
            for _ in range(int(sys.argv[2])):
                start = time.perf_counter(); run(x); times.append(time.perf_counter() - start)
            out[f"{tower}@{batch}"] = batch / sorted(times)[len(times) // 2]
print(json.dumps(out))
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
    return len(inputs) / sorted(times)[len(times) // 2]


def runners(folder, manifest, threads):
    """`{(runtime, precision, tower): fn(inputs) -> embeddings}` for the folder's files."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    found = {}
    for tower, variants in manifest.get("onnx", {}).items():
        for precision, name in variants.items():
            session = ort.InferenceSession(os.path.join(folder, name),
                                           providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name
            found["onnx", precision, tower] = (
                lambda x, s=session, i=input_name: s.run(["embeddings"], {i: x})[0])
    for tower, variants in manifest.get("litert", {}).items():
        for precision, name in variants.items():
            interpreter = Interpreter(model_path=os.path.join(folder, name), num_threads=threads)
            runner = interpreter.get_signature_runner()
            input_name = "images" if tower == "image_encoder" else "token_ids"
            found["litert", precision, tower] = (
                lambda x, r=runner, i=input_name: r(**{i: x})["embeddings"])
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder written by keras-clip export (ViT-B/32)")
    parser.add_argument("--reference-python", help="python of the venv with open_clip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as file:
        manifest = json.load(file)
    size = manifest["image"]["size"]
    rng = np.random.default_rng(0)
    inputs = {
        "image_encoder": lambda b: rng.normal(size=(b, size, size, 3)).astype(np.float32),
        "text_encoder": lambda b: rng.integers(1, 49000, (b, 77)).astype(np.int32),
    }
    reference = {}
    if args.reference_python:
        result = subprocess.run([args.reference_python, "-c", REFERENCE, str(args.threads),
                                 str(args.repeats)], capture_output=True, text=True, check=True)
        reference = json.loads(result.stdout.strip().splitlines()[-1])
    rows = []
    found = runners(args.folder, manifest, args.threads)
    for (runtime, precision, tower), run in sorted(found.items()):
        for batch in BATCHES:
            rate = median_rate(run, inputs[tower](batch), args.repeats)
            base = reference.get(f"{tower}@{batch}")
            rows.append({"runtime": runtime, "precision": precision, "tower": tower,
                         "batch": batch, "items_per_s": round(rate, 2),
                         "ratio_to_open_clip": round(rate / base, 2) if base else None})
            print(f"{runtime:7s} {precision:5s} {tower:14s} batch {batch:2d}: {rate:8.2f}/s"
                  + (f"  {rate / base:.2f}x open_clip ({base:.2f}/s)" if base else ""))
    figures = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
               "cores": os.cpu_count(), "simd": simd_flags(), "threads": args.threads,
               "open_clip_fp32": reference, "rows": rows}
    if args.out:
        with open(args.out, "w") as file:
            json.dump(figures, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
