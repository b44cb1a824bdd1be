"""Pieces shared by the benchmark driver and its workers (stdlib + numpy only).

Workers run in two different Pythons (keras_clip's and the reference venv with
open_clip), so this module imports nothing else. A worker talks to the driver
over its stdin/stdout, one JSON object per line; anything the libraries print
goes to stderr (the driver keeps it in a log file).

Example:
    >>> images, token_ids = make_inputs(image_size=32, batch=2)
    >>> images.shape, token_ids.shape
    ((2, 32, 32, 3), (2, 77))
"""

import json
import os
import sys
import time
import traceback

import numpy as np

VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77

# Architectures. The mid-size one is a ViT-B/32 at about a quarter of the width
# and half the depth; every head is 64 wide, as OpenAI's checkpoints imply.
OPEN_CLIP_NAMES = {"vit_b32": "ViT-B-32-quickgelu", "rn50": "RN50-quickgelu"}
MID_CONFIG = {
    "embed_dim": 256,
    "vision": {"image_size": 224, "patch_size": 32, "width": 384, "layers": 6, "head_width": 64},
    "text": {"context_length": 77, "vocab_size": VOCAB_SIZE, "width": 256, "heads": 4,
             "layers": 6},
}
IMAGE_SIZES = {"vit_b32": 224, "rn50": 224, "mid": 224}
CHECK_ROWS = 4  # rows of each output sent back for the cross-system cosine check


# CPU flags that decide which bf16 / int8 paths have hardware behind them.
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# Machine classes, best first: (name, flags that all must be present).
MACHINE_CLASSES = (("amx", ("amx_bf16", "amx_int8")), ("avx512_bf16", ("avx512_bf16",)),
                   ("avx512_vnni", ("avx512_vnni",)), ("avx512", ("avx512f",)),
                   ("avx2", ("avx2",)))
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The `RECORDED_FLAGS` this CPU has (Linux `/proc/cpuinfo`; [] elsewhere)."""
    try:
        with open(cpuinfo) as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in RECORDED_FLAGS if f in flags]


def machine_class(flags):
    """The machine class of a flag list: figures that depend on hardware are kept per class.

    Example:
        >>> machine_class(["avx2", "avx512f", "avx512_vnni", "avx512_bf16"])
        'avx512_bf16'
    """
    for name, needed in MACHINE_CLASSES:
        if all(f in flags for f in needed):
            return name
    return "baseline"


def results_dir(flags=None, root=RESULTS):
    """`benchmarks/results/<machine class>` for these flags (default: this CPU's)."""
    return os.path.join(root, machine_class(cpu_flags() if flags is None else flags))


# Where benchmarks keep checkpoints they make between runs.
CACHE_DIR = os.environ.get("KERAS_CLIP_BENCH_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "keras_clip_bench"))


def write_report(directory, stem, report, markdown_text):
    """Writes `<stem>.json` (the raw figures) and `<stem>.md` (the table) to `directory`."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{stem}.json"), "w") as file:
        json.dump(report, file, indent=1)
    with open(os.path.join(directory, f"{stem}.md"), "w") as file:
        file.write(markdown_text)


def make_inputs(image_size, batch, seed=0):
    """Deterministic inputs: NHWC float32 images and token ids with one end token per row."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, image_size, image_size, 3)).astype("float32")
    token_ids = np.zeros((batch, CONTEXT_LENGTH), "int32")
    for row in range(batch):
        length = int(rng.integers(5, CONTEXT_LENGTH + 1))
        token_ids[row, 0] = VOCAB_SIZE - 2
        token_ids[row, 1 : length - 1] = rng.integers(1, VOCAB_SIZE - 2, length - 2)
        token_ids[row, length - 1] = VOCAB_SIZE - 1
    return images, token_ids


def tower_input(model_name, tower, batch, seed=0):
    images, token_ids = make_inputs(IMAGE_SIZES[model_name], batch, seed)
    return images if tower == "image" else token_ids


def vit_image_flops(image_size=224, patch=32, width=768, layers=12, mlp=3072, embed=512):
    """Multiply-adds x 2 of one image through a ViT image tower (matmuls only)."""
    tokens = (image_size // patch) ** 2 + 1
    flops = 2 * (tokens - 1) * (3 * patch * patch) * width  # patch embedding
    per_layer = (
        2 * tokens * width * 3 * width  # qkv
        + 2 * 2 * tokens * tokens * width  # scores and weighted sum
        + 2 * tokens * width * width  # out projection
        + 2 * 2 * tokens * width * mlp  # MLP
    )
    return flops + layers * per_layer + 2 * width * embed


def warm_up(fn, x, calls):
    """Runs `fn(x)` `calls` times (at least once); returns (first output, seconds taken)."""
    start = time.perf_counter()
    out = fn(x)
    for _ in range(calls - 1):
        fn(x)
    return out, time.perf_counter() - start


def time_calls(fn, x, iters):
    """Seconds per call of `fn(x)` averaged over `iters` calls (outputs materialised)."""
    start = time.perf_counter()
    for _ in range(iters):
        fn(x)
    return (time.perf_counter() - start) / iters


def peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def head_rows(array):
    """The first CHECK_ROWS rows of an output as float32 lists (for the cosine check)."""
    return np.asarray(array, dtype="float32")[:CHECK_ROWS].tolist()


def serve(handler):
    """Worker main loop: one JSON request per stdin line -> one JSON reply per line.

    The protocol uses a duplicate of the original stdout; file descriptor 1
    is pointed at stderr so library chatter never corrupts a reply.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto.write(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        try:
            reply = handler(request) or {}
            reply["ok"] = True
        except Exception as error:  # reported to the driver, which records it
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"[:2000],
                     "traceback": traceback.format_exc()[-4000:]}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()
