"""Fine-tuning recipes on the shifted synthetic domain: `keras-clip finetune` plus machine facts.

Pretrains the demo's CLIP, fine-tunes it with full, LiT, LoRA and FLYP, sweeps
WiSE-FT for full fine-tuning and writes `benchmarks/results/finetune.{json,md,png}`
with the CPU flags, load and backend of the run (see
`keras_clip/finetune/experiment.py` for the protocol).

Example:
    KERAS_BACKEND=jax python benchmarks/finetune.py
    KERAS_BACKEND=jax python benchmarks/finetune.py --base demo_output/model --epochs 3
"""

import json
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import cpu_flags


def main(argv=None):
    import keras

    from keras_clip.cli import build_parser

    args_text = list(argv if argv is not None else sys.argv[1:])
    work = tempfile.mkdtemp(prefix="finetune_bench_")  # the pretrained base model goes here
    args = build_parser().parse_args(["finetune", "--wise-ft", "--output", work,
                                      *args_text])
    load_before, started = os.getloadavg(), time.time()
    args.run(args)
    results_dir = os.path.join(ROOT, "benchmarks", "results")
    for name in ("finetune.json", "finetune.md", "finetune.png"):
        shutil.copy(os.path.join(args.output, name), results_dir)
    path = os.path.join(results_dir, "finetune.json")
    with open(path, encoding="utf-8") as file:
        results = json.load(file)
    results["machine"] = {"backend": keras.backend.backend(), "cpu_flags": cpu_flags(),
                          "cpus": os.cpu_count(), "processor": platform.processor(),
                          "load_average_before": load_before,
                          "load_average_after": os.getloadavg(),
                          "total_seconds": round(time.time() - started, 1),
                          "note": "shared 2-core machine: other jobs ran at the same time"}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    machine = results["machine"]
    with open(os.path.join(results_dir, "finetune.md"), "a", encoding="utf-8") as file:
        file.write(f"\nMeasured with `{' '.join(['python benchmarks/finetune.py', *args_text])}` "
                   f"on the {machine['backend']} backend, {machine['cpus']} CPUs with "
                   f"{' '.join(machine['cpu_flags'])}; load average "
                   f"{machine['load_average_before'][0]:.1f} before and "
                   f"{machine['load_average_after'][0]:.1f} after (a shared machine: other "
                   f"jobs ran at the same time, so wall times are upper bounds).\n")
    print(json.dumps(machine))


if __name__ == "__main__":
    main()
