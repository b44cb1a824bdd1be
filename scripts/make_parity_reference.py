"""Writes reference checkpoints and outputs for the parity tests.

Runs in the *reference* environment (open_clip + transformers + torch), never in
keras_clip's: every expected number comes from the reference implementations.

    # the tiny cases checked into tests/golden/parity (run from the repo root)
    /path/to/reference-venv/bin/python scripts/make_parity_reference.py tiny
    # the architectural variants of the open presets (exact GELU, head width 32,
    # MLP ratio 3, text heads > width / 64, 48-pixel images): tiny_variants.*
    /path/to/reference-venv/bin/python scripts/make_parity_reference.py tiny_variants
    # round trip: keras_clip writes tiny_variants back out (scripts/make_roundtrip_files.py,
    # keras_clip's environment), then the reference loads those files: roundtrip.npz
    python scripts/make_roundtrip_files.py
    /path/to/reference-venv/bin/python scripts/make_parity_reference.py roundtrip
    # one full-size OpenAI architecture, into a scratch folder (the large tests do this)
    python scripts/make_parity_reference.py rn50 --out /tmp/parity

The reference venv: `pip install torch==2.14.1 torchvision==0.29.1
open-clip-torch transformers safetensors` (open_clip needs torchvision).

Every floating tensor is perturbed away from its initial value (LayerNorm gains
not 1, biases not 0, BatchNorm statistics not 0/1) so each tensor's mapping is
exercised. Each case writes `<case>.npz` with the inputs (`images` NHWC,
`token_ids`) and the reference `image_embeddings`, `text_embeddings` and
`logit_scale`, next to the checkpoint in the format under test.
"""

import argparse
import json
import os

import numpy as np
import torch

OPEN_CLIP_NAMES = {
    "rn50": "RN50-quickgelu",
    "rn101": "RN101-quickgelu",
    "rn50x4": "RN50x4-quickgelu",
    "rn50x16": "RN50x16-quickgelu",
    "rn50x64": "RN50x64-quickgelu",
    "vit_b32": "ViT-B-32-quickgelu",
    "vit_b16": "ViT-B-16-quickgelu",
    "vit_l14": "ViT-L-14-quickgelu",
    "vit_l14_336": "ViT-L-14-336-quickgelu",
}
OPEN_PRESETS = {  # keras_clip preset -> open_clip model name (the activation is in the name)
    "vit_b32_laion2b": "ViT-B-32",
    "vit_b32_datacomp_xl": "ViT-B-32",
    "vit_b32_metaclip_fullcc": "ViT-B-32-quickgelu",
    "vit_b16_laion2b": "ViT-B-16",
    "vit_b16_datacomp_xl": "ViT-B-16",
    "vit_b16_dfn2b": "ViT-B-16-quickgelu",
    "vit_l14_laion2b": "ViT-L-14",
    "vit_l14_datacomp_xl": "ViT-L-14",
    "vit_l14_dfn2b": "ViT-L-14-quickgelu",
    "vit_l14_metaclip_fullcc": "ViT-L-14-quickgelu",
    "vit_h14_laion2b": "ViT-H-14",
    "vit_h14_dfn5b": "ViT-H-14-quickgelu",
    "vit_h14_metaclip_fullcc": "ViT-H-14-quickgelu",
    "vit_h14_378_dfn5b": "ViT-H-14-378-quickgelu",
    "vit_g14_laion2b": "ViT-g-14",
    "vit_bigg14_laion2b": "ViT-bigG-14",
}
OPEN_CLIP_NAMES.update(OPEN_PRESETS)
TINY_VOCAB = 1000
# Every variant of the open presets in one tiny model: exact GELU in both towers,
# 3 image heads of width 32 (not 64), image MLP ratio 3, 4 text heads on width 128
# (more than width / 64 = 2), 48-pixel images (a 6 x 6 grid of 8-pixel patches).
TINY_VARIANTS = dict(
    vision=dict(image_size=48, patch_size=8, width=96, layers=2, head_width=32, mlp_ratio=3.0),
    text=dict(context_length=77, vocab_size=TINY_VOCAB, width=128, heads=4, layers=2),
    keras_clip=dict(
        name="tiny_variants", embed_dim=32,
        vision=dict(type="vit", image_size=48, patch_size=8, width=96, layers=2, heads=3,
                    mlp_dim=288, activation="gelu"),
        text=dict(width=128, layers=2, heads=4, context_length=77, vocab_size=TINY_VOCAB,
                  mlp_dim=512, activation="gelu"),
    ),
)


@torch.no_grad()
def perturb(module, seed):
    """Moves every floating parameter and buffer away from its initial value."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in list(module.state_dict(keep_vars=True).items()):
        if not tensor.is_floating_point() or name.endswith("attn_mask"):
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if name.endswith("running_var"):
            tensor.copy_(0.5 + noise.abs())
        elif name.endswith("logit_scale"):
            tensor.copy_(torch.tensor(np.log(1 / 0.07) + 0.3))
        else:
            scale = 0.5 * float(tensor.float().std()) if tensor.numel() > 1 else 0.1
            tensor.add_(noise * max(scale, 0.05))


def make_inputs(image_size, vocab_size, context_length, batch, seed):
    """Random images (NCHW, normalised-looking) and token ids with one end token per row."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, 3, image_size, image_size)).astype("float32")
    token_ids = np.zeros((batch, context_length), "int64")
    for row in range(batch):
        length = int(rng.integers(2, context_length + 1))
        token_ids[row, 0] = vocab_size - 2  # start token
        token_ids[row, 1 : length - 1] = rng.integers(1, vocab_size - 2, length - 2)
        token_ids[row, length - 1] = vocab_size - 1  # end token: the highest id
    return images, token_ids


def save_outputs(path, images, token_ids, image_embeddings, text_embeddings, logit_scale):
    np.savez_compressed(
        path,
        images=images.transpose(0, 2, 3, 1),  # NHWC, keras_clip's layout
        token_ids=token_ids.astype("int32"),
        image_embeddings=image_embeddings.float().numpy(),
        text_embeddings=text_embeddings.float().numpy(),
        logit_scale=np.float32(logit_scale),
    )


def open_clip_case(model, image_size, vocab_size, out, name, fmt, seed):
    from safetensors.torch import save_file

    model.eval()
    perturb(model, seed)
    images, token_ids = make_inputs(image_size, vocab_size, 77, batch=4, seed=seed)
    with torch.no_grad():
        image_embeddings = model.encode_image(torch.from_numpy(images))
        text_embeddings = model.encode_text(torch.from_numpy(token_ids))
    state_dict = {k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask"}
    if fmt == "safetensors":
        save_file(state_dict, os.path.join(out, f"{name}.safetensors"))
    else:
        torch.save(state_dict, os.path.join(out, f"{name}.bin"))
    save_outputs(
        os.path.join(out, f"{name}.npz"),
        images,
        token_ids,
        image_embeddings,
        text_embeddings,
        model.logit_scale.exp().item(),
    )


def tiny_open_clip(vision):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    # width 128 = two heads of 64 in every attention (a wrong 1/sqrt(width) scaling must show)
    text = CLIPTextCfg(context_length=77, vocab_size=TINY_VOCAB, width=128, heads=2, layers=2)
    return CLIP(32, CLIPVisionCfg(**vision), text, quick_gelu=True)


def tiny_transformers(out, seed):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        projection_dim=32,
        text_config=dict(
            vocab_size=TINY_VOCAB, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
            bos_token_id=TINY_VOCAB - 2, eos_token_id=TINY_VOCAB - 1, pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8, hidden_act="quick_gelu",
        ),
    )
    model = CLIPModel(config).eval()
    perturb(model, seed)
    images, token_ids = make_inputs(32, TINY_VOCAB, 77, batch=4, seed=seed)
    with torch.no_grad():
        image_embeddings = model.get_image_features(pixel_values=torch.from_numpy(images))
        text_embeddings = model.get_text_features(input_ids=torch.from_numpy(token_ids))
    image_embeddings = getattr(image_embeddings, "pooler_output", image_embeddings)
    text_embeddings = getattr(text_embeddings, "pooler_output", text_embeddings)
    model.save_pretrained(os.path.join(out, "hf_vit"))
    save_outputs(
        os.path.join(out, "hf_vit.npz"),
        images,
        token_ids,
        image_embeddings,
        text_embeddings,
        model.logit_scale.exp().item(),
    )


def make_tiny(out):
    os.makedirs(out, exist_ok=True)
    vit = dict(image_size=32, patch_size=8, width=128, layers=2, head_width=64)  # 2 heads
    open_clip_case(tiny_open_clip(vit), 32, TINY_VOCAB, out, "tiny_vit", "safetensors", seed=1)
    resnet = dict(image_size=64, width=8, layers=(1, 2, 1, 1), head_width=64)  # pool: 4 heads
    open_clip_case(tiny_open_clip(resnet), 64, TINY_VOCAB, out, "tiny_resnet", "bin", seed=2)
    tiny_transformers(out, seed=3)


def tiny_variants_model():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP(32, CLIPVisionCfg(**TINY_VARIANTS["vision"]),
                CLIPTextCfg(**TINY_VARIANTS["text"]), quick_gelu=False)


def make_tiny_variants(out):
    """tiny_variants.safetensors / .npz from open_clip, and its keras_clip config JSON."""
    os.makedirs(out, exist_ok=True)
    open_clip_case(tiny_variants_model(), 48, TINY_VOCAB, out, "tiny_variants", "safetensors",
                   seed=5)
    with open(os.path.join(out, "tiny_variants.json"), "w") as file:
        json.dump(TINY_VARIANTS["keras_clip"], file, indent=2)
        file.write("\n")


def sha256(path):
    import hashlib

    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


@torch.no_grad()
def make_roundtrip(out):
    """roundtrip.npz: the reference's embeddings from the files keras_clip wrote.

    `scripts/make_roundtrip_files.py` (keras_clip's environment) loads
    tiny_variants.safetensors with tiny_variants.json and writes it back with
    `save_open_clip` (roundtrip/open_clip.safetensors) and `save_transformers`
    (roundtrip/transformers/). Here open_clip loads the first into the
    tiny_variants architecture (`open_clip.load_checkpoint`, strict, as
    `create_model(name, pretrained=path)` does) and transformers loads the
    second (`CLIPModel.from_pretrained`); both embed tiny_variants.npz's inputs.
    The SHA-256 of each weights file is stored so the tests know that the file
    they write now is the file the reference read.
    """
    import open_clip
    from transformers import CLIPModel

    folder = os.path.join(out, "roundtrip")
    inputs = np.load(os.path.join(out, "tiny_variants.npz"))
    images = torch.from_numpy(inputs["images"].transpose(0, 3, 1, 2).copy())
    token_ids = torch.from_numpy(inputs["token_ids"].astype("int64"))
    oc_file = os.path.join(folder, "open_clip.safetensors")
    model = tiny_variants_model().eval()
    open_clip.load_checkpoint(model, oc_file, strict=True)
    hf_folder = os.path.join(folder, "transformers")
    hf = CLIPModel.from_pretrained(hf_folder).eval()
    hf_image = hf.get_image_features(pixel_values=images)
    hf_text = hf.get_text_features(input_ids=token_ids)
    np.savez_compressed(
        os.path.join(out, "roundtrip.npz"),
        open_clip_image_embeddings=model.encode_image(images).numpy(),
        open_clip_text_embeddings=model.encode_text(token_ids).numpy(),
        transformers_image_embeddings=getattr(hf_image, "pooler_output", hf_image).numpy(),
        transformers_text_embeddings=getattr(hf_text, "pooler_output", hf_text).numpy(),
        open_clip_sha256=sha256(oc_file),
        transformers_sha256=sha256(os.path.join(hf_folder, "model.safetensors")),
    )


def make_full(preset, out):
    import open_clip

    os.makedirs(out, exist_ok=True)
    model = open_clip.create_model(OPEN_CLIP_NAMES[preset], pretrained=None)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    open_clip_case(model, image_size, 49408, out, preset, "safetensors", seed=4)
    with open(os.path.join(out, f"{preset}.json"), "w") as file:
        json.dump({"open_clip_name": OPEN_CLIP_NAMES[preset]}, file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help="'tiny', 'tiny_variants', 'roundtrip' or a preset name: "
                        + ", ".join(OPEN_CLIP_NAMES))
    parser.add_argument("--out", default=os.path.join("tests", "golden", "parity"))
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.case == "tiny":
        make_tiny(args.out)
    elif args.case == "tiny_variants":
        make_tiny_variants(args.out)
    elif args.case == "roundtrip":
        make_roundtrip(args.out)
    else:
        make_full(args.case, args.out)


if __name__ == "__main__":
    main()
