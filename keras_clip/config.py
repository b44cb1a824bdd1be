"""Architecture configuration: validating dataclasses read from JSON.

Example:
    >>> from keras_clip.config import CLIPConfig
    >>> config = CLIPConfig.from_dict({
    ...     "embed_dim": 64,
    ...     "vision": {"type": "vit", "image_size": 32, "width": 64,
    ...                "layers": 2, "patch_size": 8},
    ...     "text": {"width": 64, "layers": 2},
    ... })
    >>> config.vision.heads
    1
"""

import dataclasses
import json
from typing import Optional, Tuple, Union

ACTIVATIONS = ("quick_gelu", "gelu")
RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = ("bicubic",)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)  # open_clip's OPENAI_DATASET_STD


def _require(condition, message):
    if not condition:
        raise ValueError(message)


def _positive_int(name, value):
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"`{name}` must be a positive integer, received {value!r}.",
    )


def _activation(name, value):
    _require(
        value in ACTIVATIONS,
        f"`{name}` must be one of {ACTIVATIONS}, received {value!r}.",
    )


def _from_dict(cls, values, where):
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a dict, received {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    _require(
        not unknown,
        f"Unknown keys {unknown} in {where}; expected a subset of {sorted(known)}.",
    )
    return cls(**values)


class _SectionConfig:
    """`to_dict()` / `from_dict()` for a tower section; `from_dict` rejects unknown keys."""

    section = "config"

    @classmethod
    def from_dict(cls, values):
        """Builds the section from a plain dict, naming any unknown key."""
        return _from_dict(cls, values, f"the `{cls.section}` section")

    def to_dict(self):
        """A JSON-ready dict that `from_dict` reads back."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }


@dataclasses.dataclass(frozen=True)
class ViTConfig(_SectionConfig):
    """Vision transformer image tower (OpenAI `VisionTransformer`)."""

    section = "vision"

    image_size: int
    width: int
    layers: int
    patch_size: int
    heads: Optional[int] = None  # default: width // 64
    mlp_dim: Optional[int] = None  # default: 4 * width
    activation: str = "quick_gelu"
    layer_norm_epsilon: float = 1e-5
    type: str = "vit"

    def __post_init__(self):
        _require(self.type == "vit", f"ViTConfig needs type 'vit', received {self.type!r}.")
        for name in ("image_size", "width", "layers", "patch_size"):
            _positive_int(f"vision.{name}", getattr(self, name))
        if self.heads is None:
            object.__setattr__(self, "heads", max(self.width // 64, 1))
        if self.mlp_dim is None:
            object.__setattr__(self, "mlp_dim", 4 * self.width)
        _positive_int("vision.heads", self.heads)
        _positive_int("vision.mlp_dim", self.mlp_dim)
        _activation("vision.activation", self.activation)
        _require(
            self.width % self.heads == 0,
            f"vision.width ({self.width}) must be divisible by vision.heads ({self.heads}).",
        )
        _require(
            self.image_size % self.patch_size == 0,
            f"vision.image_size ({self.image_size}) must be a multiple of "
            f"vision.patch_size ({self.patch_size}).",
        )

    @property
    def grid_size(self):
        return self.image_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class ResNetConfig(_SectionConfig):
    """Modified ResNet image tower with attention pooling (OpenAI `ModifiedResNet`)."""

    section = "vision"

    image_size: int
    width: int
    layers: Tuple[int, int, int, int]
    heads: Optional[int] = None  # default: width * 32 // 64
    type: str = "resnet"

    def __post_init__(self):
        _require(
            self.type == "resnet", f"ResNetConfig needs type 'resnet', received {self.type!r}."
        )
        object.__setattr__(self, "layers", tuple(self.layers))
        _require(
            len(self.layers) == 4,
            f"vision.layers must list 4 stage depths, received {list(self.layers)}.",
        )
        for depth in self.layers:
            _positive_int("vision.layers[i]", depth)
        _positive_int("vision.image_size", self.image_size)
        _positive_int("vision.width", self.width)
        _require(
            self.image_size % 32 == 0,
            f"vision.image_size must be a multiple of 32 for a ResNet, received {self.image_size}.",
        )
        if self.heads is None:
            object.__setattr__(self, "heads", max(self.width * 32 // 64, 1))
        _positive_int("vision.heads", self.heads)
        _require(
            self.embed_width % self.heads == 0,
            f"The attention-pool width ({self.embed_width}) must be divisible by "
            f"vision.heads ({self.heads}).",
        )

    @property
    def embed_width(self):
        """Channels after the last stage (the attention pool's width)."""
        return self.width * 32


@dataclasses.dataclass(frozen=True)
class TextConfig(_SectionConfig):
    """Causal text transformer (OpenAI text tower)."""

    section = "text"

    width: int
    layers: int
    heads: Optional[int] = None  # default: width // 64
    context_length: int = 77
    vocab_size: int = 49408
    mlp_dim: Optional[int] = None
    activation: str = "quick_gelu"
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self):
        for name in ("width", "layers", "context_length", "vocab_size"):
            _positive_int(f"text.{name}", getattr(self, name))
        if self.heads is None:
            object.__setattr__(self, "heads", max(self.width // 64, 1))
        if self.mlp_dim is None:
            object.__setattr__(self, "mlp_dim", 4 * self.width)
        _positive_int("text.heads", self.heads)
        _positive_int("text.mlp_dim", self.mlp_dim)
        _activation("text.activation", self.activation)
        _require(
            self.width % self.heads == 0,
            f"text.width ({self.width}) must be divisible by text.heads ({self.heads}).",
        )


def _channel_values(name, values):
    _require(
        isinstance(values, (list, tuple)) and len(values) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values),
        f"`{name}` must be 3 numbers (R, G, B), received {values!r}.",
    )
    return tuple(float(v) for v in values)


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig(_SectionConfig):
    """How the weights' images were prepared (open_clip's pretrained `mean`, `std`,
    `resize_mode`, `interpolation`); the defaults are OpenAI's.

    `resize_mode`: "shortest" (shortest side to the image size, then center
    crop) or "squash" (both sides straight to the image size, no crop).
    """

    section = "preprocessing"

    mean: Tuple[float, float, float] = OPENAI_MEAN
    std: Tuple[float, float, float] = OPENAI_STD
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"

    def __post_init__(self):
        object.__setattr__(self, "mean", _channel_values("preprocessing.mean", self.mean))
        object.__setattr__(self, "std", _channel_values("preprocessing.std", self.std))
        _require(all(v > 0 for v in self.std),
                 f"`preprocessing.std` must be positive, received {list(self.std)}.")
        _require(self.resize_mode in RESIZE_MODES,
                 f"`preprocessing.resize_mode` must be one of {RESIZE_MODES}, "
                 f"received {self.resize_mode!r}.")
        _require(self.interpolation in INTERPOLATIONS,
                 f"`preprocessing.interpolation` must be one of {INTERPOLATIONS} (the filter "
                 f"keras_clip's preprocessing implements), received {self.interpolation!r}.")


VisionConfig = Union[ViTConfig, ResNetConfig]


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    """A whole CLIP model: two towers projected into `embed_dim`."""

    embed_dim: int
    vision: VisionConfig
    text: TextConfig
    name: str = "clip"
    preprocessing: PreprocessingConfig = PreprocessingConfig()

    def __post_init__(self):
        _positive_int("embed_dim", self.embed_dim)
        _require(
            isinstance(self.vision, (ViTConfig, ResNetConfig)),
            f"`vision` must be a ViTConfig or ResNetConfig, received {type(self.vision).__name__}.",
        )
        _require(
            isinstance(self.text, TextConfig),
            f"`text` must be a TextConfig, received {type(self.text).__name__}.",
        )
        _require(
            isinstance(self.preprocessing, PreprocessingConfig),
            "`preprocessing` must be a PreprocessingConfig, received "
            f"{type(self.preprocessing).__name__}.",
        )

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a plain dict (as stored in a preset's JSON)."""
        if not isinstance(values, dict):
            raise ValueError(f"A CLIP config must be a dict, received {type(values).__name__}.")
        values = dict(values)
        vision = dict(values.pop("vision", None) or {})
        vision_type = vision.get("type")
        vision_classes = {"vit": ViTConfig, "resnet": ResNetConfig}
        _require(
            vision_type in vision_classes,
            f"vision.type must be 'vit' or 'resnet', received {vision_type!r}.",
        )
        text = values.pop("text", None)
        _require(text is not None, "A CLIP config needs a `text` section.")
        values["vision"] = vision_classes[vision_type].from_dict(vision)
        values["text"] = TextConfig.from_dict(text)
        if "preprocessing" in values:  # absent in older JSON: OpenAI's values
            values["preprocessing"] = PreprocessingConfig.from_dict(values["preprocessing"] or {})
        return _from_dict(cls, values, "the CLIP config")

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))

    def to_dict(self):
        values = dataclasses.asdict(self)
        values.update(vision=self.vision.to_dict(), text=self.text.to_dict(),
                      preprocessing=self.preprocessing.to_dict())
        return values

    def to_json(self, path):
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=2)
            file.write("\n")
