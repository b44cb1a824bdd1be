"""Train CLIP with model.fit — the same program as `keras-clip train`.

    python examples/train.py --synthetic 4096 --cache --config examples/tiny_clip.json \
        --batch-size 128 --epochs 15 --lr 2e-3 --warmup-steps 30 --zero-shot 600 \
        --output-dir runs/shapes

`python examples/train.py --help` lists every option (data, model, strategy,
precision, remat, checkpoints, TensorBoard, BackupAndRestore). The program
lives in `keras_clip/training/script.py`; copy it from there to customise.
"""

import sys

from keras_clip.training.script import main

if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
