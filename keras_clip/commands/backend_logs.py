"""Hides TensorFlow's C++/absl start-up lines for `keras-clip` commands that run a model.

TensorFlow writes its start-up lines (oneDNN, "Could not find cuda drivers",
a cuInit error on machines without a GPU) straight to file descriptor 2,
before absl's logging is set up, so `TF_CPP_MIN_LOG_LEVEL` alone does not
hide them. `silence()` sets the variables that are read, lowers absl's
verbosity (and that of a few chatty exporter loggers), and routes
descriptor 2 through a thread that drops lines in absl's log format and
passes everything else through unchanged.
`keras-clip --verbose` skips all of this.

Example:
    >>> silence()  # doctest: +SKIP   (before TensorFlow is imported)
"""

import atexit
import logging
import os
import re
import sys
import threading

ABSL_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\]"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)


QUIET_LOGGERS = ("onnx_ir",)  # jax2onnx's serializer warns about untyped symbolic shapes


def silence():
    """Hides the backend start-up logs for the rest of this process (and its children)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging
    except ImportError:
        pass
    else:
        absl_logging.set_verbosity(absl_logging.ERROR)
    _filter_descriptor_2()


def keep(line):
    """False for one of TensorFlow's start-up log lines (bytes), True otherwise."""
    return not ABSL_LINE.match(line)


def _filter_descriptor_2():
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_pump, args=(read_end, original), daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's write end: the pump sees end of file
        thread.join(timeout=2)

    atexit.register(restore)


def _pump(read_end, original):
    pending = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if keep(line))
        if pending and keep(pending):  # a progress bar's "\r..." has no newline yet
            out, pending = out + pending, b""
        if out:
            os.write(original, out)
    if pending and keep(pending):
        os.write(original, pending)
    os.close(read_end)
