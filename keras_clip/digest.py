"""File digests, shared by the download cache and the export manifest.

Example:
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file:
    ...     sha256_file(file.name)[:12]
    'e3b0c44298fc'
"""

import hashlib


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of the file at `path`, read in `chunk`-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
