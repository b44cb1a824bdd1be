"""Reference worker: open_clip and transformers (run with the reference venv's python).

    /work/refenv/bin/python benchmarks/worker_reference.py --make-checkpoints DIR
    /work/refenv/bin/python benchmarks/worker_reference.py --checkpoints DIR   # serve

Requests (one JSON per stdin line): `infer` (system `open_clip` or
`transformers`), `train` (open_clip: forward + backward + AdamW), `matmul`.
"""

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import (  # noqa: E402
    MID_CONFIG,
    OPEN_CLIP_NAMES,
    current_rss_mb,
    head_rows,
    make_inputs,
    peak_rss_mb,
    serve,
    time_calls,
    tower_input,
    warm_up,
)

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
torch.set_num_threads(THREADS)


def build_open_clip(name):
    import open_clip

    if name == "mid":
        from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

        return CLIP(MID_CONFIG["embed_dim"], CLIPVisionCfg(**MID_CONFIG["vision"]),
                    CLIPTextCfg(**MID_CONFIG["text"]), quick_gelu=True)
    return open_clip.create_model(OPEN_CLIP_NAMES[name], pretrained=None)


def make_checkpoints(directory, names=("vit_b32", "rn50", "mid")):
    """Writes `<name>.safetensors` (OpenAI key names, random weights) for each name."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    for index, name in enumerate(names):
        path = os.path.join(directory, f"{name}.safetensors")
        if os.path.exists(path):
            continue
        torch.manual_seed(index)
        model = build_open_clip(name).eval()
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask"}
        save_file(state, path + ".tmp")
        os.replace(path + ".tmp", path)
        print(f"wrote {path}", file=sys.stderr)


def load_open_clip(directory, name):
    from safetensors.torch import load_file

    model = build_open_clip(name)
    state = load_file(os.path.join(directory, f"{name}.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if k != "attn_mask"] or unexpected:
        raise RuntimeError(f"checkpoint mismatch: missing {missing} unexpected {unexpected}")
    return model


def openai_to_transformers(state, layers_vision=12, layers_text=12):
    """OpenAI-key ViT CLIP state dict -> transformers `CLIPModel` state dict."""
    out = {}

    def block(src, dst):
        width = state[f"{src}.attn.in_proj_weight"].shape[1]
        w, b = state[f"{src}.attn.in_proj_weight"], state[f"{src}.attn.in_proj_bias"]
        for i, proj in enumerate("qkv"):
            out[f"{dst}.self_attn.{proj}_proj.weight"] = w[i * width:(i + 1) * width]
            out[f"{dst}.self_attn.{proj}_proj.bias"] = b[i * width:(i + 1) * width]
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1",
                 "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, c in pairs.items():
            for p in ("weight", "bias"):
                out[f"{dst}.{c}.{p}"] = state[f"{src}.{a}.{p}"]

    v, t = "vision_model", "text_model"
    out[f"{v}.embeddings.patch_embedding.weight"] = state["visual.conv1.weight"]
    out[f"{v}.embeddings.class_embedding"] = state["visual.class_embedding"]
    out[f"{v}.embeddings.position_embedding.weight"] = state["visual.positional_embedding"]
    for src, dst in (("visual.ln_pre", f"{v}.pre_layrnorm"), ("visual.ln_post", f"{v}.post_layernorm"),
                     ("ln_final", f"{t}.final_layer_norm")):
        for p in ("weight", "bias"):
            out[f"{dst}.{p}"] = state[f"{src}.{p}"]
    for i in range(layers_vision):
        block(f"visual.transformer.resblocks.{i}", f"{v}.encoder.layers.{i}")
    for i in range(layers_text):
        block(f"transformer.resblocks.{i}", f"{t}.encoder.layers.{i}")
    out[f"{t}.embeddings.token_embedding.weight"] = state["token_embedding.weight"]
    out[f"{t}.embeddings.position_embedding.weight"] = state["positional_embedding"]
    out["visual_projection.weight"] = state["visual.proj"].T.contiguous()
    out["text_projection.weight"] = state["text_projection"].T.contiguous()
    out["logit_scale"] = state["logit_scale"]
    return out


def load_transformers_vit_b32(directory):
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        projection_dim=512,
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                         num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=49406, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=224, patch_size=32,
                           hidden_act="quick_gelu"),
    )
    model = CLIPModel(config).eval()
    state = openai_to_transformers(load_file(os.path.join(directory, "vit_b32.safetensors")))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"transformers mismatch: missing {missing} unexpected {unexpected}")
    return model


class Reference:
    def __init__(self, directory):
        self.directory = directory
        self.models = {}
        self.cases = {}
        self.train_state = None

    def model(self, system, name):
        key = (system, name)
        if key not in self.models:
            if system == "open_clip":
                self.models[key] = load_open_clip(self.directory, name).eval()
            elif system == "transformers" and name == "vit_b32":
                self.models[key] = load_transformers_vit_b32(self.directory)
            else:
                raise ValueError(f"no {system} model {name}")
        return self.models[key]

    def infer(self, req):
        key = (req["system"], req["model"], req["tower"], req["batch"])
        info = {}
        if key not in self.cases:
            model = self.model(req["system"], req["model"])
            x = tower_input(req["model"], req["tower"], req["batch"])
            if req["tower"] == "image":
                x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            else:
                x = torch.from_numpy(x.astype("int64"))
            if req["system"] == "open_clip":
                fn = model.encode_image if req["tower"] == "image" else model.encode_text
            else:
                raw = model.get_image_features if req["tower"] == "image" else (
                    model.get_text_features)

                def fn(x, raw=raw, tower=req["tower"]):
                    out = raw(pixel_values=x) if tower == "image" else raw(input_ids=x)
                    return getattr(out, "pooler_output", out)

            with torch.inference_mode():
                out, seconds = warm_up(fn, x, req.get("warmup", 2))
            info = {"setup_s": seconds, "rows": head_rows(out.float().numpy()),
                    "threads": torch.get_num_threads()}
            self.cases[key] = (fn, x)
        fn, x = self.cases[key]
        with torch.inference_mode():
            seconds = time_calls(fn, x, req.get("iters", 1))
        return dict(info, seconds=seconds)

    def train(self, req):
        if self.train_state is None:
            from open_clip.loss import ClipLoss

            model = self.model("open_clip", req["model"]).train()
            if req.get("grad_checkpointing"):
                model.set_grad_checkpointing(True)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98),
                                          eps=1e-6, weight_decay=0.2)
            loss_fn = ClipLoss()
            images, token_ids = make_inputs(224, req["batch"])
            images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            token_ids = torch.from_numpy(token_ids.astype("int64"))
            rss = current_rss_mb()

            def step():
                optimizer.zero_grad(set_to_none=True)
                image_f, text_f, scale = model(images, token_ids)
                loss = loss_fn(image_f, text_f, scale)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, np.log(100))
                return float(loss)

            start = time.perf_counter()
            losses = [step() for _ in range(req.get("warmup", 2))]
            self.train_state = (step, {"setup_s": time.perf_counter() - start,
                                       "rss_after_load_mb": rss, "warmup_losses": losses})
        step, info = self.train_state
        start = time.perf_counter()
        for _ in range(req.get("iters", 1)):
            loss = step()
        seconds = (time.perf_counter() - start) / req.get("iters", 1)
        return dict(info, seconds=seconds, loss=loss, peak_rss_mb=peak_rss_mb())

    def matmul(self, req):
        n = req.get("n", 2048)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[req.get("dtype", "fp32")]
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        torch.mm(a, b)
        seconds = time_calls(lambda _: torch.mm(a, b), None, req.get("iters", 5))
        return {"seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}

    def handle(self, req):
        op = req["op"]
        if op == "clear":
            self.models.clear()
            self.cases.clear()
            gc.collect()
            return {}
        if op == "versions":
            import open_clip
            import transformers

            return {"torch": torch.__version__, "open_clip": open_clip.__version__,
                    "transformers": transformers.__version__, "threads": torch.get_num_threads()}
        return getattr(self, op)(req)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-checkpoints", metavar="DIR")
    parser.add_argument("--checkpoints", metavar="DIR")
    args = parser.parse_args()
    if args.make_checkpoints:
        make_checkpoints(args.make_checkpoints)
        return
    serve(Reference(args.checkpoints).handle)


if __name__ == "__main__":
    main()
