"""GPU check for one NVIDIA GPU (sized for an H200, <= 10 minutes): training and inference speed.

    python benchmarks/gpu_check.py                  # on the GPU machine; JSON to $OUT (or --out)
    python benchmarks/gpu_check.py --tiny           # CPU dry run: tiny model, batch 4, no GPU needed

Sections, each in its own process (its own peak memory; TF and JAX never share
a GPU) with its own time limit, in this order:

- `train_tensorflow`, `train_jax`: keras_clip ViT-B/32 (random weights),
  `mixed_bfloat16` policy, AdamW, one `train_on_batch` per step at batch 256,
  inputs already on the device; images/s and peak GPU memory.
- `train_open_clip`: open_clip ViT-B-32-quickgelu, AdamW, `torch.autocast`
  bf16 (AMP), `ClipLoss`, same batch; images/s and `max_memory_allocated`.
- `infer_tensorflow`, `infer_jax`, `infer_open_clip`: the image tower at batch
  256 in float16 and bfloat16 (keras_clip: `from_preset(..., dtype=...)`;
  open_clip: the model cast to that dtype); images/s.
- `onnx_cuda`: keras_clip's image tower exported to ONNX (fp32 and fp16, TF
  route) run by ONNX Runtime with the CUDA provider (needs onnxruntime-gpu);
  images/s at batch 256 and which provider actually ran.

A section that cannot run (a package missing, no CUDA provider, out of time)
is recorded with its one-line reason and the others still run (exit code 1
if any failed). The JSON is rewritten after every section, so a timeout keeps
what finished. Without a GPU (and without --tiny) it exits 2 with one line
saying so. `--reference-python` is the Python with open_clip (default: this one).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SECTIONS = ("train_tensorflow", "train_jax", "train_open_clip", "infer_tensorflow", "infer_jax",
            "infer_open_clip", "onnx_cuda")
# Seconds per section on the GPU (start-up, build and compilation included; 580 in all).
LIMITS_S = {"train_tensorflow": 130, "train_jax": 130, "train_open_clip": 70,
            "infer_tensorflow": 60, "infer_jax": 60, "infer_open_clip": 30, "onnx_cuda": 100}
TINY_SLOWER = 6  # --tiny on a small shared CPU: the same steps, much slower start-up
FULL = {"batch": 256, "warm_up": 3, "steps": 10, "preset": "vit_b32",
        "open_clip": "ViT-B-32-quickgelu", "image_size": 224}
TINY = {"batch": 4, "warm_up": 1, "steps": 2, "preset": None, "open_clip": None,
        "image_size": 32}
TINY_CONFIG = {"name": "tiny", "embed_dim": 32,
               "vision": {"type": "vit", "image_size": 32, "width": 64, "layers": 1,
                          "patch_size": 16},
               "text": {"width": 64, "layers": 1, "context_length": 77, "vocab_size": 49408}}
TINY_OPEN_CLIP = {"embed_dim": 32, "quick_gelu": True,
                  "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64,
                               "heads": 1, "layers": 1}}


def gpu_name():
    """The first NVIDIA GPU's name, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    found = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
    lines = found.stdout.strip().splitlines()
    return lines[0].strip() if found.returncode == 0 and lines else None


def inputs(settings, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    size, batch = settings["image_size"], settings["batch"]
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    tokens = np.zeros((batch, 77), "int32")
    tokens[:, 0], tokens[:, 1:9] = 49406, rng.integers(1, 49000, (batch, 8))
    tokens[:, 9] = 49407
    return images, tokens


def timed(step, settings, sync):
    """images/s of `step()` after warm-up; `sync()` waits for the device."""
    for _ in range(settings["warm_up"]):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(settings["steps"]):
        step()
    sync()
    return settings["batch"] * settings["steps"] / (time.perf_counter() - start)


# ------------------------------------------------------------------- keras_clip
def keras_model(settings, dtype=None):
    import keras_clip

    if settings["preset"]:
        return keras_clip.from_preset(settings["preset"], weights=None, dtype=dtype)
    return keras_clip.CLIP(keras_clip.CLIPConfig.from_dict(TINY_CONFIG), dtype=dtype)


def keras_peak_memory_mb():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
    else:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpus else None
    return None if peak is None else peak / 2**20


def train_keras(settings):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    model = keras_model(settings)
    model.compile(optimizer=keras.optimizers.AdamW(1e-5, weight_decay=0.2, beta_2=0.98,
                                                    epsilon=1e-6))
    images, tokens = inputs(settings)
    batch = {"images": keras.ops.convert_to_tensor(images),
             "token_ids": keras.ops.convert_to_tensor(tokens)}
    last = {}

    def step():
        last["loss"] = model.train_on_batch(batch, return_dict=True)["loss"]

    rate = timed(step, settings, lambda: float(last["loss"]))
    return {"images_per_s": rate, "peak_memory_mb": keras_peak_memory_mb(),
            "loss": float(last["loss"]), "policy": "mixed_bfloat16", "device": keras_device()}


def compiled_image_tower(model):
    """The image tower as one compiled function (XLA on TF and JAX; eager on torch)."""
    import keras

    tower = model.image_encoder
    if keras.backend.backend() == "jax":
        import jax

        state = ([v.value for v in tower.trainable_variables],
                 [v.value for v in tower.non_trainable_variables])
        call = jax.jit(lambda t, n, x: tower.stateless_call(t, n, x)[0])
        return lambda x: call(*state, x)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: tower(x, training=False), jit_compile=True)
    return lambda x: tower(x, training=False)


def infer_keras(settings):
    import keras

    images, _ = inputs(settings)
    out = {"device": keras_device()}
    for dtype in ("float16", "bfloat16"):
        run = compiled_image_tower(keras_model(settings, dtype=dtype))
        x = keras.ops.convert_to_tensor(images, dtype=dtype)
        last = {}

        def step():
            last["y"] = run(x)

        rate = timed(step, settings, lambda: keras.ops.convert_to_numpy(last["y"][:1]))
        out[dtype] = {"images_per_s": rate, "peak_memory_mb": keras_peak_memory_mb()}
    return out


def keras_device():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0])
    import tensorflow as tf

    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


# --------------------------------------------------------------------- open_clip
def open_clip_model(settings):
    import open_clip
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if settings["open_clip"]:
        model = open_clip.create_model(settings["open_clip"], pretrained=None)
    else:
        model = open_clip.CLIP(**TINY_OPEN_CLIP)
    return model.to(device), device


def torch_sync(device):
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def torch_peak_mb(device):
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def train_open_clip(settings):
    import torch
    from open_clip.loss import ClipLoss

    model, device = open_clip_model(settings)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-5, betas=(0.9, 0.98), eps=1e-6,
                                  weight_decay=0.2)
    loss_fn = ClipLoss()
    images, tokens = inputs(settings)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    tokens = torch.from_numpy(tokens).long().to(device)
    last = {}

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            image_features, text_features, scale = model(images, tokens)
            loss = loss_fn(image_features, text_features, scale)
        loss.backward()
        optimizer.step()
        last["loss"] = loss

    rate = timed(step, settings, torch_sync(device))
    return {"images_per_s": rate, "peak_memory_mb": torch_peak_mb(device),
            "loss": float(last["loss"]), "amp": "bfloat16", "device": device}


def infer_open_clip(settings):
    import torch

    model, device = open_clip_model(settings)
    images, _ = inputs(settings)
    x32 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    out = {"device": device}
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        if device == "cpu" and dtype is torch.float16:
            out[name] = {"skipped": "float16 inference is a GPU path"}
            continue
        cast, x = model.to(dtype).eval(), x32.to(dtype)
        with torch.no_grad():
            rate = timed(lambda: cast.encode_image(x), settings, torch_sync(device))
        out[name] = {"images_per_s": rate, "peak_memory_mb": torch_peak_mb(device)}
    return out


# -------------------------------------------------------------------------- onnx
def onnx_cuda(settings, tiny):
    import numpy as np
    import onnxruntime as ort

    from keras_clip.export import export_towers

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available and not tiny:
        raise RuntimeError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                           f"(providers: {', '.join(available)}); install onnxruntime-gpu")
    folder = tempfile.mkdtemp(prefix="gpu_check_onnx_")
    try:
        start = time.perf_counter()
        export_towers(keras_model(settings), os.path.join(folder, "export"), formats=("onnx",),
                      fp16=True, towers=("image_encoder",))
        out = {"export_s": time.perf_counter() - start, "onnxruntime": ort.__version__}
        images, _ = inputs(settings)
        for precision, name in (("fp32", "image_encoder.onnx"), ("fp16", "image_encoder.fp16.onnx")):
            session = ort.InferenceSession(os.path.join(folder, "export", name),
                                           providers=["CUDAExecutionProvider",
                                                      "CPUExecutionProvider"])
            feed = session.get_inputs()[0]
            x = images.astype(np.float16 if "float16" in feed.type else np.float32)
            rate = timed(lambda: session.run(None, {feed.name: x}), settings, lambda: None)
            out[precision] = {"images_per_s": rate, "providers": session.get_providers()}
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------ driver
def run_section(name, tiny):
    settings = TINY if tiny else FULL
    if name.startswith("train_") and name != "train_open_clip":
        return train_keras(settings)
    if name.startswith("infer_") and name != "infer_open_clip":
        return infer_keras(settings)
    if name == "train_open_clip":
        return train_open_clip(settings)
    if name == "infer_open_clip":
        return infer_open_clip(settings)
    return onnx_cuda(settings, tiny)


def section_command(name, args):
    python = args.reference_python if name.endswith("open_clip") else sys.executable
    argv = [python, os.path.abspath(__file__), "--section", name] + (["--tiny"] if args.tiny else [])
    backend = name.rsplit("_", 1)[-1] if name.split("_")[-1] in ("tensorflow", "jax") else (
        "tensorflow")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_FORCE_GPU_ALLOW_GROWTH="true",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(
                   os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]))
    return argv, env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="CPU dry run: tiny model, batch 4, no GPU required")
    parser.add_argument("--out", default=os.environ.get("OUT", "."),
                        help="folder for gpu_check.json (default: $OUT)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=None,
                        help="all sections together (default 580 s; with --tiny 1800 s)")
    parser.add_argument("--reference-python", default=sys.executable,
                        help="the Python with open_clip (and torch with CUDA)")
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:  # a child: one section, its JSON as the last stdout line
        print(json.dumps(run_section(args.section, args.tiny)))
        return 0
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"gpu_check: error: --sections {','.join(unknown)} unknown; choose from "
              f"{','.join(SECTIONS)}", file=sys.stderr)
        return 2
    gpu = gpu_name()
    if gpu is None and not args.tiny:
        print("gpu_check: error: no NVIDIA GPU found (nvidia-smi missing or lists none); "
              "use --tiny for the CPU dry run", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu_check.json")
    report = {"gpu": gpu, "tiny": args.tiny, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                  time.gmtime()),
              "settings": TINY if args.tiny else FULL, "sections": {}}
    deadline = time.monotonic() + (args.budget_s or (1800 if args.tiny else 580))
    for name in sections:
        left = deadline - time.monotonic()
        limit = min(LIMITS_S[name] * (TINY_SLOWER if args.tiny else 1), left)
        if limit < 10:
            report["sections"][name] = {"error": "skipped: out of time budget"}
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {name} (limit {limit:.0f} s)", flush=True)
        command, env = section_command(name, args)
        start = time.perf_counter()
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=limit)
            if done.returncode == 0:
                result = json.loads(done.stdout.strip().splitlines()[-1])
            else:
                tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
                result = {"error": (tail[-1] if tail else f"exit {done.returncode}")[:500]}
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {limit:.0f} s"}
        except FileNotFoundError as error:
            result = {"error": f"cannot start {command[0]}: {error.strerror}"}
        result["wall_s"] = round(time.perf_counter() - start, 1)
        report["sections"][name] = result
        print(f"    {json.dumps(result)[:300]}", flush=True)
        with open(path, "w") as file:
            json.dump(report, file, indent=1)
    with open(path, "w") as file:
        json.dump(report, file, indent=1)
    print(f"wrote {path}")
    failed = [n for n, r in report["sections"].items() if "error" in r]
    if failed:
        print(f"gpu_check: {len(failed)} section(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
