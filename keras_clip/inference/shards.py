"""Resumable embedding output: appended `.npy` shards and an index, finalised at the end.

While a run is going, `OUTPUT.partial/` holds `meta.json` (what the run embeds
with), one `NNNNNN.npy` shard per batch and `index.jsonl`, one line per shard
naming its files and the files skipped in that batch. A shard counts only once
its index line is on disk (written after the shard, then fsynced), so a killed
run resumes after its last complete batch. `finalize` writes OUTPUT (`.npy`
with the file list in `.txt` beside it, or `.parquet` with a `name` column)
through a temporary file and removes the partial folder.

Example:
    >>> store = ShardStore("emb.npy", {"normalize": False})   # doctest: +SKIP
    >>> store.append(["a.jpg"], embeddings, skipped=[])        # doctest: +SKIP
    >>> store.finalize(names_for=lambda rel: rel)              # doctest: +SKIP
"""

import json
import os
import shutil

import numpy as np

FORMATS = (".npy", ".parquet")


def check_output(path):
    """Fails (ValueError) before any work if `path` cannot be written as embeddings.

    Example:
        >>> check_output("emb.npy")
    """
    if not str(path).endswith(FORMATS):
        raise ValueError(f"--output must end in .npy or .parquet; received {str(path)!r}.")
    if str(path).endswith(".parquet"):
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ValueError(f"--output {str(path)!r}: writing .parquet needs pyarrow "
                             "(pip install pyarrow); or write .npy instead.") from None
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--output {str(path)!r}: {folder!r} is not a folder.")


def names_path(output):
    """The file list written beside a `.npy` output: `emb.npy` -> `emb.txt`."""
    return output[: -len(".npy")] + ".txt"


class ShardStore:
    """The partial state of one embedding run (see the module docstring).

    Args:
        output: the final `.npy` or `.parquet` path.
        meta: what the embeddings depend on (model fingerprint, normalisation,
            folder); a partial run with other values is refused, not mixed in.
        restart: discard a previous partial run instead of resuming it.
    """

    def __init__(self, output, meta, restart=False):
        check_output(output)
        self.output = str(output)
        self.folder = self.output + ".partial"
        self.entries = []  # one dict per complete shard: {"shard", "files", "skipped"}
        if restart and os.path.isdir(self.folder):
            shutil.rmtree(self.folder)
        if os.path.isdir(self.folder):
            self._resume(meta)
        else:
            os.makedirs(self.folder)
            _write_json(os.path.join(self.folder, "meta.json"), meta)
        self._index = open(os.path.join(self.folder, "index.jsonl"), "a", encoding="utf-8")

    def _resume(self, meta):
        try:
            with open(os.path.join(self.folder, "meta.json"), encoding="utf-8") as file:
                previous = json.load(file)
        except (OSError, ValueError):
            previous = None
        if previous != meta:
            differs = sorted(k for k in meta if (previous or {}).get(k) != meta[k])
            raise ValueError(
                f"{self.folder!r} holds an interrupted run made with a different "
                f"{', '.join(differs) or 'setting'}; delete it or restart (--restart).")
        index = os.path.join(self.folder, "index.jsonl")
        lines = []
        if os.path.exists(index):
            with open(index, encoding="utf-8") as file:
                lines = file.read().splitlines()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                break  # a line cut short by the kill: its shard is redone
            if not os.path.exists(os.path.join(self.folder, entry["shard"])):
                break
            self.entries.append(entry)
        with open(index, "w", encoding="utf-8") as file:  # drop a torn last line
            file.writelines(json.dumps(e) + "\n" for e in self.entries)

    def done(self):
        """The relative paths already embedded or skipped (a set)."""
        return {f for e in self.entries for f in e["files"]} | {
            f for e in self.entries for f, _ in e["skipped"]}

    def skipped(self):
        """`[(relative path, reason)]` of every unreadable file so far."""
        return [tuple(s) for e in self.entries for s in e["skipped"]]

    def append(self, files, embeddings, skipped):
        """Stores one batch: the shard first, then its index line (fsynced)."""
        shard = f"{len(self.entries):06d}.npy"
        path = os.path.join(self.folder, shard)
        with open(path + ".tmp", "wb") as file:
            np.save(file, np.asarray(embeddings, np.float32))
        os.replace(path + ".tmp", path)
        entry = {"shard": shard, "files": list(files), "skipped": [list(s) for s in skipped]}
        self._index.write(json.dumps(entry) + "\n")
        self._index.flush()
        os.fsync(self._index.fileno())
        self.entries.append(entry)

    def close(self):
        """Closes the index (the partial folder stays, ready to resume)."""
        self._index.close()

    def finalize(self, names_for):
        """Writes the output file(s) from the shards and removes the partial folder.

        Args:
            names_for: maps a relative path to the name written in the file list.

        Returns:
            the number of rows written.
        """
        self.close()
        names = [names_for(f) for e in self.entries for f in e["files"]]
        shards = [os.path.join(self.folder, e["shard"]) for e in self.entries]
        if not names:
            raise ValueError(f"No readable images: nothing to write to {self.output!r}.")
        os.makedirs(os.path.dirname(os.path.abspath(self.output)), exist_ok=True)
        if self.output.endswith(".npy"):
            _write_npy(self.output, shards, len(names))
            _write_text(names_path(self.output), names)
        else:
            _write_parquet(self.output, shards, names)
        shutil.rmtree(self.folder)
        return len(names)


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file)


def _write_text(path, names):
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write("\n".join(names) + "\n")
    os.replace(path + ".tmp", path)


def _write_npy(path, shards, rows):
    """Streams the shards into one `(rows, D)` float32 `.npy` (memory-mapped)."""
    blocks = [np.load(s, mmap_mode="r") for s in shards]
    width = max(block.shape[1] for block in blocks)  # a batch with no readable file is (0, 0)
    out = np.lib.format.open_memmap(path + ".tmp", mode="w+", dtype=np.float32,
                                    shape=(rows, width))
    start = 0
    for block in blocks:
        if not len(block):
            continue
        out[start:start + len(block)] = block
        start += len(block)
    out.flush()
    del out
    os.replace(path + ".tmp", path)


def _write_parquet(path, shards, names):
    write_parquet(path, names, np.concatenate([b for b in map(np.load, shards) if len(b)]))


def write_parquet(path, names, embeddings):
    """A parquet table: `name` (string) and `embedding` (fixed-size list of float32).

    Example:
        >>> write_parquet("emb.parquet", ["a.jpg"], np.zeros((1, 4)))  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)),
                                               embeddings.shape[1])
    pq.write_table(pa.table({"name": names, "embedding": column}), path + ".tmp")
    os.replace(path + ".tmp", path)
