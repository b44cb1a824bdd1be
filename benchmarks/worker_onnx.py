"""onnxruntime worker for keras_clip's exported towers (and their export step).

    # export (imports keras; any backend, TensorFlow by default in the driver)
    python benchmarks/worker_onnx.py --export CHECKPOINT OUT_DIR
    # serve (imports only numpy + onnxruntime)
    python benchmarks/worker_onnx.py --exports DIR

Requests: `infer` with `variant` in `fp32`, `fp16`, `int8`; `versions`; `clear`.
"""

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from common import head_rows, serve, time_calls, tower_input, warm_up  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
TOWER_FILES = {"image": "image_encoder", "text": "text_encoder"}


def export(checkpoint, out):
    """Exports both towers of the checkpoint with keras_clip.export (fp32, fp16, int8)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_clip
    from keras_clip.export import export_towers

    start = time.perf_counter()
    model = keras_clip.from_preset(checkpoint)
    manifest = export_towers(model, out, formats=("onnx",), fp16=True, int8=True)
    print(json.dumps({"export_s": time.perf_counter() - start,
                      "onnx": manifest.get("onnx")}), file=sys.stderr)


class OnnxWorker:
    def __init__(self, directory):
        self.directory = directory
        self.cases = {}

    def session(self, model, tower, variant):
        import onnxruntime as ort

        with open(os.path.join(self.directory, model, "manifest.json")) as f:
            files = json.load(f)["onnx"][f"{TOWER_FILES[tower]}"]
        if variant not in files:
            raise ValueError(f"no {variant} export of the {model} {tower} tower: {files}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(os.path.join(self.directory, model, files[variant]),
                                    options, providers=["CPUExecutionProvider"])

    def infer(self, req):
        key = (req["model"], req["tower"], req["batch"], req["variant"])
        info = {}
        if key not in self.cases:
            start = time.perf_counter()
            session = self.session(req["model"], req["tower"], req["variant"])
            load_seconds = time.perf_counter() - start
            name = session.get_inputs()[0].name
            x = tower_input(req["model"], req["tower"], req["batch"])

            def fn(x, session=session, name=name):
                return session.run(["embeddings"], {name: x})[0]

            out, seconds = warm_up(fn, x, req.get("warmup", 2))
            info = {"setup_s": load_seconds + seconds, "rows": head_rows(out)}
            self.cases[key] = (fn, x)
        fn, x = self.cases[key]
        return dict(info, seconds=time_calls(fn, x, req.get("iters", 1)))

    def handle(self, req):
        if req["op"] == "clear":
            self.cases.clear()
            gc.collect()
            return {}
        if req["op"] == "versions":
            import onnxruntime as ort

            return {"onnxruntime": ort.__version__, "threads": THREADS}
        return getattr(self, req["op"])(req)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "OUT_DIR"))
    parser.add_argument("--exports", metavar="DIR")
    args = parser.parse_args()
    if args.export:
        export(*args.export)
        return
    serve(OnnxWorker(args.exports).handle)


if __name__ == "__main__":
    main()
