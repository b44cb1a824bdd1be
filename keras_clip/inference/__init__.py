"""Inference jobs over files: a folder of images to embeddings on disk.

`embed_folder` streams decode -> preprocess -> encode -> write with the
stages overlapped, shows progress, skips unreadable files and resumes an
interrupted run (`shards.ShardStore`), in fp32 or bf16 (`precision.for_precision`).
`keras-clip embed --images` runs it.

Example:
    >>> from keras_clip.inference import embed_folder
    >>> embed_folder(model, "photos/", "photos.npy", batch_size=64)  # doctest: +SKIP
    >>> embed_folder(model, "photos/", "fast.npy", precision="bf16")  # doctest: +SKIP
"""

from keras_clip.inference.embed_folder import EmbedResult, embed_folder, list_images, load_image
from keras_clip.inference.precision import PRECISIONS, for_precision
from keras_clip.inference.shards import ShardStore, check_output, names_path
