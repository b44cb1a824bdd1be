"""The `keras-clip` sub-commands, one module each (`export`'s is `keras_clip.export.command`).

A command module holds `PARSER` (the keyword arguments of its argparse
sub-parser: `help`, `description`), `add_arguments(parser)` and `run(args)`,
which returns the exit code; `keras_clip.cli` registers them. Bad input is a
`ValueError`/`OSError`, which `cli` prints as one line with exit code 2.

Example:
    $ keras-clip eval zeroshot --model runs/x/final --images photos/ --templates openai_7
"""

import os


def load_model(spec, random_weights=False):
    """The model `--model spec` names: a preset name, preset folder or checkpoint.

    Example:
        >>> model = load_model("vit_b32", random_weights=True)  # doctest: +SKIP
    """
    from keras_clip.presets import from_preset

    check_preset(spec, "--model")
    return from_preset(spec, weights=not random_weights)  # paths always load their weights


def check_preset(spec, flag):
    """Raises a ValueError naming `flag` unless `spec` is a built-in preset or an existing path.

    Checked before any backend is imported; suggests the closest preset names.

    Example:
        >>> check_preset("vit_b3", "--model")  # doctest: +SKIP
        ValueError: --model 'vit_b3' is neither a built-in preset nor an existing file or folder. Did you mean 'vit_b32', ...
    """
    from keras_clip.presets.catalog import list_presets, suggest

    if spec not in list_presets() and not os.path.exists(spec):
        raise ValueError(f"{flag} {spec!r} is neither a built-in preset nor an existing file or "
                         "folder." + (suggest(spec, list_presets()) or
                                      " See `keras-clip presets` for the names."))
