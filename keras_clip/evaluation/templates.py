"""Prompt templates and class names for zero-shot classification.

A template is a ``str.format`` string with one ``{}`` that the class name
replaces: ``"a photo of a {}."``. Named sets:

- ``"openai_imagenet"``: OpenAI's 80 ImageNet templates (prompt ensembling).
- ``"openai_imagenet_7"``: the 7 of them OpenAI's notebook found to be the best
  subset.
- ``"simple"``: the single template ``"a photo of a {}."``.
- ``"shapes"``: templates for the bundled synthetic shapes data
  (``keras_clip.data.SyntheticShapes``, class names like ``"red star"``).

The OpenAI sets and the 1000 ImageNet class names (OpenAI's cleaned names) are
data files in ``keras_clip/evaluation/data/``; each names its source: OpenAI's
CLIP repository, ``notebooks/Prompt_Engineering_for_ImageNet.ipynb`` (MIT).

Example:
    >>> from keras_clip.evaluation import get_templates, imagenet_class_names
    >>> len(get_templates("openai_imagenet")), get_templates("simple")
    (80, ['a photo of a {}.'])
    >>> imagenet_class_names()[:2]
    ['tench', 'goldfish']
"""

import functools
import json
import os
import string

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
_FILES = {
    "openai_imagenet": "openai_imagenet_templates.json",
    "openai_imagenet_7": "openai_imagenet_templates_7.json",
}
SIMPLE_TEMPLATES = ("a photo of a {}.",)
# Written for keras_clip's synthetic shapes (class names "<color> <shape>"),
# after the caption templates of keras_clip.data.synthetic.
SHAPES_TEMPLATES = (
    "a photo of a {}.",
    "a {}",
    "a picture of a {}.",
    "a {} on a dark background",
    "there is a {} in the image",
)


@functools.lru_cache(maxsize=None)
def _load(filename):
    with open(os.path.join(_DATA, filename), encoding="utf-8") as f:
        return json.load(f)


def list_template_sets():
    """Names accepted by ``get_templates``.

    Example:
        >>> list_template_sets()
        ['openai_imagenet', 'openai_imagenet_7', 'shapes', 'simple']
    """
    return sorted([*_FILES, "simple", "shapes"])


def get_templates(name="openai_imagenet"):
    """The templates of the named set, as a new list of ``"...{}..."`` strings.

    Example:
        >>> get_templates("openai_imagenet_7")[0]
        'itap of a {}.'
    """
    if name == "simple":
        return list(SIMPLE_TEMPLATES)
    if name == "shapes":
        return list(SHAPES_TEMPLATES)
    if name not in _FILES:
        raise ValueError(
            f"Unknown template set {name!r}; expected one of {list_template_sets()}.")
    return list(_load(_FILES[name])["templates"])


def imagenet_class_names():
    """The 1000 ImageNet-1k class names in OpenAI's cleaned form, by class index.

    Example:
        >>> names = imagenet_class_names()
        >>> len(names), names[0]
        (1000, 'tench')
    """
    return list(_load("imagenet_class_names.json")["class_names"])


def data_source(name):
    """The attribution text of a bundled data file (template set name or ``"imagenet"``).

    Example:
        >>> "Prompt_Engineering_for_ImageNet" in data_source("openai_imagenet")
        True
    """
    filename = "imagenet_class_names.json" if name == "imagenet" else _FILES.get(name)
    if filename is None:
        raise ValueError(
            f"No bundled data file for {name!r}; expected 'imagenet' or one of {list(_FILES)}.")
    return _load(filename)["source"]


def check_template(template):
    """Raises ``ValueError`` unless ``template`` is a str with exactly one ``{}`` field.

    Literal braces are written ``{{`` and ``}}``; named or numbered fields
    (``{name}``, ``{0}``) and format specs are refused.

    Example:
        >>> check_template("a photo of a {}.")
        >>> check_template("a {name}")
        Traceback (most recent call last):
        ValueError: Template 'a {name}' must contain exactly one '{}' ...
    """
    try:
        fields = [field[1:] for field in string.Formatter().parse(template)
                  if field[1] is not None]
    except (TypeError, ValueError):  # not a str, or unbalanced braces
        fields = None
    if fields != [("", "", None)]:
        raise ValueError(
            f"Template {template!r} must contain exactly one '{{}}' (replaced by the class "
            "name) and no other replacement field; write literal braces as '{{' and '}}'.")


def resolve_templates(templates):
    """Checks and returns templates as a list: a set name, one template or a sequence.

    Every template must contain exactly one ``{}`` (see ``check_template``).

    Example:
        >>> resolve_templates("a sketch of a {}.")
        ['a sketch of a {}.']
    """
    if isinstance(templates, str):
        is_template = "{" in templates or "}" in templates
        templates = [templates] if is_template else get_templates(templates)
    try:
        templates = list(templates)
    except TypeError:
        raise ValueError(
            "templates must be a template set name, a template string or a sequence of "
            f"them; received {type(templates).__name__}.") from None
    if not templates:
        raise ValueError("templates is empty; expected at least one template such as "
                         "'a photo of a {}.'.")
    for template in templates:
        check_template(template)
    return templates
