"""``PipelineOptions``: the settings every ``keras_clip.data`` pipeline shares.

One frozen dataclass, checked once when made; ``webdataset_dataset`` and
``csv_dataset`` take it as ``options=`` or build it from their keyword
arguments. Settings of one source (tar member extensions, CSV columns) stay on
that source's function.
"""

import dataclasses

from keras_clip.preprocessing.rules import (
    MEAN,
    STD,
    check_mean_std,
    check_resize_mode,
    model_options,
)

# Images with more pixels are skipped before decoding (PIL's decompression-bomb
# warning threshold, Image.MAX_IMAGE_PIXELS: 1024**3 // 4 // 3).
DEFAULT_MAX_PIXELS = 89_478_485
AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline crops, batches, shuffles, shards and tokenizes.

    Args:
        image_size: output side S (random resized crop if ``training``, else
            center crop; both resize with antialiased bicubic and normalise).
        batch_size: per-pipeline batch size.
        tokenizer: callable on a ``(B,)`` tf.string tensor -> int ``(B, 77)``;
            default ``keras_clip.CLIPTokenizer()``.
        training: shuffle files and samples, random crops; else fixed order
            and center crops.
        shuffle_buffer: samples in the shuffle buffer (training only); None:
            the source's default (1000 for WebDataset, 10000 for CSV).
        seed: makes the order and crops reproducible (different every epoch).
        num_parallel_calls: parallel decodes (default ``tf.data.AUTOTUNE``).
        num_shards, shard_index: this worker's part of the input (every
            ``num_shards``-th shard file or CSV row from ``shard_index``).
        input_context: a ``tf.distribute.InputContext``; overrides the two
            above (use with ``strategy.distribute_datasets_from_function``).
            When the input is split here, tf.distribute's auto-sharding is off.
        drop_remainder: drop the last partial batch; default ``training``.
        repeat: repeat forever (then pass ``steps_per_epoch`` to ``fit``).
        scale, ratio: random resized crop ranges (area fraction, aspect).
        max_pixels: images whose header declares more pixels (width x height)
            are skipped undecoded and counted as ``image_too_large``; default
            ``DEFAULT_MAX_PIXELS`` (PIL's decompression-bomb threshold), None
            for no limit.
        mean, std, resize_mode: the normalisation and the evaluation resize
            (``"shortest"`` + center crop, or ``"squash"``) the weights expect;
            default OpenAI's. ``PipelineOptions.for_model(model, ...)`` takes
            them from ``model.config.preprocessing``.

    Example:
        >>> import dataclasses
        >>> train = PipelineOptions(image_size=224, batch_size=256, seed=0)
        >>> val = dataclasses.replace(train, training=False)
        >>> ds = webdataset_dataset("val/*.tar", options=val)
    """

    image_size: int
    batch_size: int
    tokenizer: object = None
    training: bool = True
    shuffle_buffer: int = None
    seed: int = None
    num_parallel_calls: int = None
    num_shards: int = 1
    shard_index: int = 0
    input_context: object = None
    drop_remainder: bool = None
    repeat: bool = False
    scale: tuple = (0.9, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    max_pixels: int = DEFAULT_MAX_PIXELS
    mean: tuple = MEAN
    std: tuple = STD
    resize_mode: str = "shortest"

    def __post_init__(self):
        for name in ("image_size", "batch_size", "num_shards"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("shard_index", self.shard_index, low=0)
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index must be < num_shards ({self.num_shards}); "
                             f"received {self.shard_index}.")
        _check_int("shuffle_buffer", self.shuffle_buffer, low=0, optional=True)
        _check_int("seed", self.seed, optional=True)
        _check_int("max_pixels", self.max_pixels, low=1, optional=True)
        if self.num_parallel_calls != AUTOTUNE:
            _check_int("num_parallel_calls", self.num_parallel_calls, low=1, optional=True)
        for name in ("training", "repeat", "drop_remainder"):
            _check_bool(name, getattr(self, name), optional=name == "drop_remainder")
        if self.tokenizer is not None and not callable(self.tokenizer):
            raise ValueError(f"tokenizer must be callable on tf.string tensors; received "
                             f"{type(self.tokenizer).__name__}.")
        _check_range("scale", self.scale, high=1.0)
        _check_range("ratio", self.ratio)
        check_mean_std(self.mean, self.std)
        check_resize_mode(self.resize_mode)

    @classmethod
    def for_model(cls, model, batch_size, **fields):
        """Options with the image size, mean, std and resize mode `model`'s weights expect.

        Example:
            >>> model = keras_clip.from_preset("vit_l14_laion2b", weights=None)  # doctest: +SKIP
            >>> PipelineOptions.for_model(model, 256, seed=0).mean  # doctest: +SKIP
            (0.5, 0.5, 0.5)
        """
        return cls(**model_options(model), batch_size=batch_size, **fields)

    @property
    def drops_remainder(self):
        """``drop_remainder``, its None resolved to ``training``."""
        return self.training if self.drop_remainder is None else self.drop_remainder

    @property
    def parallel_calls(self):
        """``num_parallel_calls``, its None resolved to ``tf.data.AUTOTUNE``."""
        return self.num_parallel_calls or AUTOTUNE

    @property
    def sharded(self):
        """True when the input is split per worker here (not by tf.distribute)."""
        return self.num_shards > 1 or self.input_context is not None


def _check_int(name, value, low=None, optional=False):
    if value is None and optional:
        return
    if (isinstance(value, bool) or not isinstance(value, int)
            or (low is not None and value < low)):
        kind = "an int" if low is None else f"an int >= {low}"
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be {kind}{none}; received {value!r}.")


def _check_bool(name, value, optional=False):
    if not (isinstance(value, bool) or (optional and value is None)):
        none = " or None" if optional else ""
        raise ValueError(f"{name} must be True or False{none}; received {value!r}.")


def _check_range(name, value, high=None):
    try:
        low_value, high_value = (float(v) for v in value)
    except (TypeError, ValueError):
        low_value = high_value = None
    if (low_value is None or not 0 < low_value <= high_value
            or (high is not None and high_value > high)):
        bound = f" <= {high}" if high is not None else ""
        raise ValueError(f"{name} must be a pair 0 < low <= high{bound}; received {value!r}.")


def make_options(where, options, image_size, batch_size, fields):
    """``options`` (default: new ones) with ``image_size``/``batch_size`` unless None
    and the keyword ``fields`` given to the function ``where``.

    Example:
        >>> make_options("csv_dataset", None, 224, 32, {"seed": 0}).seed
        0
    """
    known = {f.name for f in dataclasses.fields(PipelineOptions)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{where}() got unknown option(s) {unknown}; expected fields of "
                         f"keras_clip.data.PipelineOptions: {sorted(known)}.")
    if options is not None and not isinstance(options, PipelineOptions):
        raise ValueError(f"options must be a keras_clip.data.PipelineOptions or None; "
                         f"received {type(options).__name__}.")
    sizes = {"image_size": image_size, "batch_size": batch_size}
    if options is None:
        return PipelineOptions(**sizes, **fields)
    sizes = {k: v for k, v in sizes.items() if v is not None}
    return dataclasses.replace(options, **sizes, **fields)
