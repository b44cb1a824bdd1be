"""Samples/s of the keras_clip.data pipelines alone (no model), image 224, batch 32.

Writes synthetic shapes as JPEG WebDataset shards and as a CSV + image folder,
then times the training (random resized crop, shuffle) and evaluation (center
crop) pipelines, tokenization included. Prints a table and writes
``benchmarks/results/data.json``.

Example:
    python benchmarks/bench_data.py --samples 1024 --source-size 256
"""

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Model-side reference from DESIGN.md (this 2-core CPU, open_clip, fp32): the
# ViT-B/32 image tower *forward* at batch 32; a training step is slower still.
REFERENCE = {"vit_b32_image_tower_forward_img_per_s": 22.8,
             "rn50_image_tower_forward_img_per_s": 6.9}


def time_pipeline(ds, batches, warmup=2):
    """(samples per wall second, samples per CPU second of this process)."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
        n += int(batch["images"].shape[0])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024, help="images written")
    parser.add_argument("--source-size", type=int, default=256,
                        help="side of the stored JPEGs (img2dataset commonly stores 256-384)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=24, help="timed batches per run")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "data.json"))
    args = parser.parse_args()

    import tensorflow as tf

    from keras_clip import data
    from keras_clip.tokenizer import CLIPTokenizer

    tokenizer = CLIPTokenizer()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gen = data.SyntheticShapes(args.source_size, seed=0, split="train")
        t0 = time.perf_counter()
        shards = gen.write_webdataset(os.path.join(tmp, "wds"), args.samples, shard_size=128)
        table = gen.write_csv(os.path.join(tmp, "csv"), args.samples)
        print(f"wrote {args.samples} JPEGs ({args.source_size} px) twice in "
              f"{time.perf_counter() - t0:.1f} s")
        builders = {
            "webdataset": lambda training: data.webdataset_dataset(
                shards, args.image_size, args.batch_size, tokenizer=tokenizer,
                training=training, seed=0, repeat=True),
            "csv": lambda training: data.csv_dataset(
                table, args.image_size, args.batch_size, tokenizer=tokenizer,
                training=training, seed=0, repeat=True),
        }
        for name, build in builders.items():
            for training in (True, False):
                rate, per_cpu = time_pipeline(build(training), args.batches)
                rows.append({"pipeline": name,
                             "mode": "train (random resized crop)" if training
                             else "eval (center crop)",
                             "samples_per_s": round(rate, 1),
                             "samples_per_cpu_s": round(per_cpu, 1)})
                print(f"{name:<11} {rows[-1]['mode']:<28} {rate:8.1f} samples/s "
                      f"{per_cpu:8.1f} samples/CPU-s", flush=True)

    result = {
        "benchmark": "keras_clip.data pipelines alone",
        "image_size": args.image_size, "batch_size": args.batch_size,
        "source_jpeg_size": args.source_size, "timed_batches": args.batches,
        "results": rows,
        "reference_model_throughput": REFERENCE,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "tensorflow": tf.__version__,
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "note": "samples_per_s is wall-clock and depends on what else runs (this 2-core "
                "machine was shared while measuring: see the load average); "
                "samples_per_cpu_s divides by this process's CPU time, i.e. the "
                "throughput one fully available core gives. During training the "
                "pipeline and the model share the same cores.",
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print()
    print(f"| pipeline | mode | samples/s (image {args.image_size}, batch "
          f"{args.batch_size}) | samples per CPU-second |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['pipeline']} | {r['mode']} | {r['samples_per_s']} | "
              f"{r['samples_per_cpu_s']} |")
    print(f"reference: open_clip ViT-B/32 image tower forward "
          f"{REFERENCE['vit_b32_image_tower_forward_img_per_s']} img/s on this CPU")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
