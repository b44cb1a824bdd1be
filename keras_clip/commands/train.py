"""`keras-clip train`: the training script (`keras_clip.training.script`) as a sub-command.

Its options are defined once, by `script.add_arguments`.

Example:
    $ keras-clip train --synthetic 4096 --config examples/tiny_clip.json --epochs 5
"""

from keras_clip.training import script

PARSER = {
    "help": "Train CLIP with model.fit (synthetic, WebDataset or CSV data).",
    "description": script.__doc__,
}

add_arguments = script.add_arguments


def run(args):
    """Trains; returns 0 (exit code 3, through `SystemExit`, if training diverges)."""
    script.run(args)
    return 0
