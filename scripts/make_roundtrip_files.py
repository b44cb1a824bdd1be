"""Writes keras_clip's own files for the round-trip goldens (run in keras_clip's environment).

Loads tests/golden/parity/tiny_variants.safetensors (written by open_clip) with its
config JSON and writes it back out with `CLIP.save_open_clip` and
`CLIP.save_transformers` into tests/golden/parity/roundtrip/. The reference
environment then loads those files with open_clip and transformers
(`make_parity_reference.py roundtrip`) and stores their embeddings and the
files' SHA-256 in roundtrip.npz.

    python scripts/make_roundtrip_files.py
"""

import os

import keras_clip

GOLDEN = os.path.join("tests", "golden", "parity")


def main():
    model = keras_clip.from_preset(os.path.join(GOLDEN, "tiny_variants.safetensors"),
                                   config=os.path.join(GOLDEN, "tiny_variants.json"))
    folder = os.path.join(GOLDEN, "roundtrip")
    os.makedirs(folder, exist_ok=True)
    model.save_open_clip(os.path.join(folder, "open_clip.safetensors"))
    model.save_transformers(os.path.join(folder, "transformers"))


if __name__ == "__main__":
    main()
