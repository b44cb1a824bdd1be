"""Helpers shared by the edge tests: copy an export folder, edit its manifest."""

import json
import os
import shutil


def copy_folder(folder, tmp_path):
    """A copy of the export `folder` under `tmp_path` (a `pathlib.Path`)."""
    copy = tmp_path / "export"
    shutil.copytree(folder, copy)
    return copy


def edit_manifest(folder, edit):
    """Applies `edit(manifest_dict)` to `folder/manifest.json` in place."""
    path = os.path.join(folder, "manifest.json")
    with open(path) as file:
        manifest = json.load(file)
    edit(manifest)
    with open(path, "w") as file:
        json.dump(manifest, file)
