"""The export's output folder: who may be replaced, and the staged write renamed into place.

An export is written into a hidden sibling `.<name>.partial-<host>-<pid>-*` and
renamed to `<name>` only when complete, so a killed export leaves no folder
that looks finished (the staging folder has no `manifest.json`). The next
export to `<name>` removes the staging folders that killed exports left
behind: those of this host whose process is gone, never a running one's. A
folder that holds anything but a previous export is refused unless
`overwrite`. Imports no Keras backend, so the command line refuses a bad
folder at once.

Example:
    >>> check_destination("vit_b32_export")  # new, empty or a previous export: fine
    >>> staging = staging_folder("vit_b32_export")  # doctest: +SKIP
    >>> publish(staging, "vit_b32_export")  # doctest: +SKIP
"""

import json
import os
import re
import shutil
import socket
import tempfile
import zlib

MANIFEST_FILE = "manifest.json"
STAGING_INFIX = ".partial-"


def is_export_folder(directory):
    """True if `directory` holds a `manifest.json` written by `export_towers`."""
    try:
        with open(os.path.join(directory, MANIFEST_FILE), encoding="utf-8") as file:
            values = json.load(file)
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and isinstance(values.get("format_version"), int) \
        and "exporter" in values


def check_destination(directory, overwrite=False):
    """Raises OSError unless an export may be written to `directory`.

    Allowed: a missing or empty folder, a previous export (replaced whole),
    or anything else with `overwrite=True` — never a file, the current
    folder or a folder above it.
    """
    if not os.path.lexists(directory):
        return
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise OSError(f"The output {directory} exists and is not a folder; choose a folder name.")
    here, target = os.path.realpath(os.getcwd()), os.path.realpath(directory)
    if here == target or here.startswith(target + os.sep):
        raise OSError(f"The output {directory} is the current folder or holds it; export into a "
                      "new sub-folder instead.")
    if overwrite or not os.listdir(directory) or is_export_folder(directory):
        return
    raise OSError(f"The output folder {directory} is not empty and holds no previous export "
                  f"(no {MANIFEST_FILE} of ours); choose a new folder, or pass --overwrite "
                  "(overwrite=True) to replace everything in it.")


def _host_tag():
    """This host's name as 8 hex digits (names of staging folders stay short and safe)."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _running(pid):
    """True unless no process `pid` exists (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def remove_stale_staging(directory):
    """Removes the staging folders of `directory` left by exports on this host whose process is gone.

    Returns the names removed. A running export's folder, another host's and
    any other name are left alone.
    """
    parent, name = os.path.split(os.path.abspath(directory))
    pattern = re.compile(re.escape(f".{name}{STAGING_INFIX}{_host_tag()}-") + r"(\d+)-")
    removed = []
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        match = pattern.match(entry)
        path = os.path.join(parent, entry)
        if match and not _running(int(match.group(1))) and os.path.isdir(path) \
                and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
    return removed


def staging_folder(directory):
    """A new hidden sibling folder of `directory` to write the export into.

    Stale staging folders of `directory` (see `remove_stale_staging`) are removed first.
    """
    parent, name = os.path.split(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    remove_stale_staging(directory)
    return tempfile.mkdtemp(prefix=f".{name}{STAGING_INFIX}{_host_tag()}-{os.getpid()}-", dir=parent)


def publish(staging, directory):
    """Moves the finished `staging` folder to `directory`, removing what was there."""
    if not os.path.lexists(directory):
        os.rename(staging, directory)
        return
    trash = tempfile.mkdtemp(prefix=f"{os.path.basename(staging)}.old-",
                             dir=os.path.dirname(staging))
    os.rename(directory, os.path.join(trash, "previous"))
    os.rename(staging, directory)
    shutil.rmtree(trash, ignore_errors=True)
