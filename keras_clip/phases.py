"""`[k/N] <phase>…` lines for long multi-step jobs (the demo, `keras-clip export`).

Example:
    >>> phases = Phases(["training", "evaluating"])
    >>> phases("training")
    [1/2] training…
"""

import sys


class Phases:
    """Prints `[k/N] <phase>…` as each of a known list of phases starts.

    Args:
        names: every phase, in order (N is their number).
        verbose: print (True) or stay silent (False).
        stream: where to print (default: `sys.stdout` at call time).
    """

    def __init__(self, names, verbose=True, stream=None):
        self.names = list(names)
        self.verbose = verbose
        self.stream = stream

    def __call__(self, name):
        """Announces the phase `name` (one of `names`)."""
        if name not in self.names:
            raise ValueError(f"Unknown phase {name!r}; expected one of {self.names}.")
        if self.verbose:
            index = self.names.index(name) + 1
            print(f"[{index}/{len(self.names)}] {name}…", file=self.stream or sys.stdout,
                  flush=True)
