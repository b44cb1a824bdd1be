"""`keras-clip embed`: embed a folder of images or a file of captions to .npy or .parquet.

Example:
    $ keras-clip embed --model vit_b32 --images photos/ -o photos.npy --normalize
"""

import os

from keras_clip.commands import load_model

PARSER = {"help": "Embed a folder of images or a text file of captions to .npy/.parquet."}


def add_arguments(parser):
    """Adds the model, source and output options to the argparse parser `parser`."""
    parser.add_argument("--model", required=True, help="preset name, preset folder or checkpoint")
    parser.add_argument("--random-weights", action="store_true")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (searched recursively)")
    source.add_argument("--texts", help="text file, one caption per line")
    parser.add_argument("--output", "-o", required=True, help="output .npy or .parquet file")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--batch-size", type=int, default=64)


def run(args):
    """Embeds and writes the embeddings (and their names); returns 0."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int; received {args.batch_size}.")
    if not args.output.endswith((".npy", ".parquet")):
        raise ValueError(f"--output must end in .npy or .parquet, received {args.output!r}.")
    if args.texts and not os.path.isfile(args.texts):
        raise ValueError(f"--texts {args.texts!r} is not a file.")
    names = _image_paths(args.images) if args.images else None  # checked before the model loads
    model = load_model(args.model, args.random_weights)
    if args.images:
        embeddings = _embed_images(model, names, args.batch_size, args.normalize)
    else:
        names = _captions(args.texts)
        from keras_clip import evaluation

        embeddings = evaluation.encode_texts(model, names, normalize=args.normalize,
                                             batch_size=args.batch_size, verbose=True)
    _write_embeddings(args.output, names, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}")
    return 0


def _image_paths(folder):
    from keras_clip.evaluation.datasets import IMAGE_EXTENSIONS

    if not os.path.isdir(folder):
        raise ValueError(f"--images {folder!r} is not a folder.")
    paths = sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
        if name.lower().endswith(tuple(IMAGE_EXTENSIONS))
    )
    if not paths:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder!r}.")
    return paths


def _captions(path):
    with open(path, encoding="utf-8") as file:
        captions = [line.rstrip("\n") for line in file if line.strip()]
    if not captions:
        raise ValueError(f"{path!r} holds no captions.")
    return captions


def _embed_images(model, paths, batch_size, normalize):
    import numpy as np
    from PIL import Image

    from keras_clip import ImagePreprocessor, evaluation

    preprocess = ImagePreprocessor(model.image_size)
    chunks = []
    for start in evaluation.progress(range(0, len(paths), batch_size),
                                     total=-(-len(paths) // batch_size),
                                     desc="images", verbose=True):
        batch = [np.asarray(Image.open(p).convert("RGB")) for p in paths[start:start + batch_size]]
        chunks.append(evaluation.encode_images(model, preprocess(batch), normalize=normalize))
    return np.concatenate(chunks)


def _write_embeddings(path, names, embeddings):
    import numpy as np

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".npy"):
        np.save(path, embeddings.astype("float32"))
        with open(path[: -len(".npy")] + ".txt", "w", encoding="utf-8") as file:
            file.write("\n".join(names) + "\n")
        return
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ValueError("Writing .parquet needs pyarrow (pip install pyarrow); "
                         "or write .npy instead.") from error
    table = pa.table({"name": names,
                      "embedding": [row.astype("float32").tolist() for row in embeddings]})
    pq.write_table(table, path)
