"""Regenerates tests/golden/siglip.npz from open_clip's `SigLipLoss`.

Cases: random unnormalised image / text features (float64 numpy, seeded),
a logit scale (the multiplier, already exp'ed) and a bias. The reference is
`open_clip.loss.SigLipLoss()(norm(img), norm(txt), scale, bias)` on one
process, plus its gradients with respect to the unnormalised features, the
scale and the bias (torch autograd through `F.normalize`), in float64.

Run in the reference environment:
    /work/refenv/bin/python scripts/make_siglip_golden.py
"""

import os

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import SigLipLoss

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                   "siglip.npz")
CASES = {  # name: (batch, dim, scale, bias)
    "init": (8, 16, 10.0, -10.0),  # SigLIP's initial values
    "trained": (6, 32, 37.5, 1.25),
    "single": (1, 4, 2.0, 0.5),
}


def main():
    rng = np.random.default_rng(16)
    loss_fn = SigLipLoss()
    arrays = {}
    for name, (batch, dim, scale, bias) in CASES.items():
        images = rng.normal(size=(batch, dim))
        texts = images + rng.normal(scale=0.8, size=(batch, dim))  # pairs correlate
        inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True)
                  for v in (images, texts, np.float64(scale), np.float64(bias))]
        loss = loss_fn(F.normalize(inputs[0], dim=-1), F.normalize(inputs[1], dim=-1),
                       inputs[2], inputs[3])
        loss.backward()
        arrays.update({f"{name}_images": images, f"{name}_texts": texts,
                       f"{name}_scale": np.float64(scale), f"{name}_bias": np.float64(bias),
                       f"{name}_loss": loss.detach().numpy()})
        for key, tensor in zip(("images", "texts", "scale", "bias"), inputs):
            arrays[f"{name}_grad_{key}"] = tensor.grad.numpy()
    np.savez(OUT, **arrays)
    print(f"wrote {OUT}: " + ", ".join(f"{n}={float(arrays[n + '_loss']):.6f}" for n in CASES))


if __name__ == "__main__":
    main()
