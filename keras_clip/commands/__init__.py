"""The `keras-clip` sub-commands, one module each (`export`'s is `keras_clip.export.command`).

A command module holds `PARSER` (the keyword arguments of its argparse
sub-parser: `help`, `description`), `add_arguments(parser)` and `run(args)`,
which returns the exit code; `keras_clip.cli` registers them. Bad input is a
`ValueError`/`OSError`, which `cli` prints as one line with exit code 2.

Example:
    $ keras-clip eval zeroshot --model runs/x/final --images photos/ --templates openai_7
"""

import argparse
import textwrap


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (not None/False) and keeps indented lines (examples) as written.

    Lines of a description that start with a space are printed as they are;
    the other lines are joined into paragraphs and wrapped to the terminal.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        blocks, prose = [], []
        for line in text.splitlines() + [""]:
            if line.strip() and not line.startswith(" "):
                prose.append(line.strip())
                continue
            if prose:
                blocks.append(textwrap.fill(" ".join(prose), width, initial_indent=indent,
                                            subsequent_indent=indent))
                prose = []
            blocks.append(indent + line)
        return "\n".join(blocks[:-1])


def load_model(spec, random_weights=False):
    """The model `--model spec` names: a preset name, preset folder or checkpoint.

    Example:
        >>> model = load_model("vit_b32", random_weights=True)  # doctest: +SKIP
    """
    from keras_clip.presets import from_preset
    from keras_clip.presets.catalog import check_preset_or_path

    check_preset_or_path(spec, "--model")
    return from_preset(spec, weights=not random_weights)  # paths always load their weights
