"""`keras-clip embed`: embed a folder of images or a file of captions to .npy or .parquet.

Example:
    $ keras-clip embed --model vit_b32 --images photos/ -o photos.npy --normalize
"""

import argparse
import os

from keras_clip.commands import load_model

DESCRIPTION = """\
Embed every image under a folder (recursively), or every line of a text file,
with a CLIP model and write the embeddings with their file list: a .npy of
float32 rows plus a .txt of names (row i = line i), or a .parquet with `name`
and `embedding` columns (needs pyarrow).

Images are decoded and preprocessed (PIL bicubic, exactly open_clip's
`preprocess`) in a thread pool while the model encodes the previous batch.
--precision bf16 runs the image tower in bfloat16 (fast where the CPU has
AMX or AVX-512 BF16 and the backend reaches it: TensorFlow, torch).
Finished batches are kept in OUTPUT.partial/, so running the same command
again after an interruption resumes where it stopped; unreadable images are
skipped and listed at the end.

example:
  keras-clip embed --model vit_b32 --images photos/ -o photos.npy --normalize
  keras-clip embed --model vit_b32 --random-weights --images photos/ -o /tmp/x.npy
"""



class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows the defaults that say something (not None/False); keeps the description's lines."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


PARSER = {"help": "Embed a folder of images or a text file of captions to .npy/.parquet.",
          "description": DESCRIPTION, "formatter_class": _HelpFormatter}


def add_arguments(parser):
    """Adds the model, source and output options to the argparse parser `parser`."""
    parser.add_argument("--model", required=True, help="preset name, preset folder or checkpoint")
    parser.add_argument("--random-weights", action="store_true",
                        help="build the preset's architecture with random weights instead of "
                             "downloading its pretrained ones: meaningless embeddings, for "
                             "trying the pipeline or timing it offline")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (searched recursively)")
    source.add_argument("--texts", help="text file, one caption per line")
    parser.add_argument("--output", "-o", required=True, help="output .npy or .parquet file")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--batch-size", type=int, default=64, help="items per model call")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="image decoding threads")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="--images only: bf16 runs the image tower under the "
                             "bfloat16 policy, 3.9-4.3x faster on TensorFlow with AMX, cosine "
                             "0.9999 to fp32; on a CPU without bf16 instructions it is slower "
                             "and warns")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted run's partial results instead of resuming")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args):
    """Embeds and writes the embeddings (and their names); returns 0."""
    from keras_clip.inference import check_output, list_images

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int; received {args.batch_size}.")
    if args.workers < 1:
        raise ValueError(f"--workers must be a positive int; received {args.workers}.")
    if args.texts and args.precision != "fp32":
        raise ValueError("--precision bf16 applies to --images only; drop it for --texts.")
    check_output(args.output)  # before any work: a missing writer fails here
    if args.texts and not os.path.isfile(args.texts):
        raise ValueError(f"--texts {args.texts!r} is not a file.")
    if args.images:
        list_images(args.images)  # an empty or missing folder fails before the model loads
    model = load_model(args.model, args.random_weights)
    if args.images:
        return _embed_images(model, args)
    return _embed_texts(model, args)


def _embed_images(model, args):
    from keras_clip.inference import embed_folder

    result = embed_folder(model, args.images, args.output, batch_size=args.batch_size,
                          normalize=args.normalize, workers=args.workers,
                          verbose=not args.quiet, restart=args.restart,
                          precision=args.precision)
    resumed = f" ({result.resumed} from an earlier run)" if result.resumed else ""
    print(f"wrote {result.images} embeddings to {args.output}{resumed}; "
          f"{result.images_per_s:.1f} images/s")
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable file(s):")
        for name, reason in result.skipped:
            print(f"  {os.path.join(args.images, name)}: {reason}")
    return 0


def _embed_texts(model, args):
    from keras_clip import evaluation
    from keras_clip.inference.shards import names_path, write_parquet

    with open(args.texts, encoding="utf-8") as file:
        captions = [line.rstrip("\n") for line in file if line.strip()]
    if not captions:
        raise ValueError(f"--texts {args.texts!r} holds no captions.")
    embeddings = evaluation.encode_texts(model, captions, normalize=args.normalize,
                                         batch_size=args.batch_size, verbose=not args.quiet)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    if args.output.endswith(".npy"):
        import numpy as np

        np.save(args.output, embeddings.astype("float32"))
        with open(names_path(args.output), "w", encoding="utf-8") as file:
            file.write("\n".join(captions) + "\n")
    else:
        write_parquet(args.output, captions, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}")
    return 0
