"""Evaluation of CLIP models: zero-shot classification, linear probes, retrieval.

- ``ZeroShotClassifier``: class embeddings by prompt ensembling (OpenAI's 80
  ImageNet templates, their 7-template subset, or your own), prediction by
  cosine similarity times the logit scale; ``evaluate`` gives top-1/top-5.
- ``linear_probe`` / ``evaluate_linear_probe``: logistic regression (L-BFGS)
  on frozen image features, ``C`` chosen on a validation split.
- ``retrieval_metrics`` / ``evaluate_retrieval``: image->text and
  text->image recall@1/5/10, several captions per image allowed.
- ``image_folder``, ``csv_pairs``, ``webdataset_pairs``,
  ``synthetic_classification``, ``synthetic_pairs``: evaluation data.

Example:
    >>> import keras_clip
    >>> from keras_clip import evaluation
    >>> model = keras_clip.from_preset("vit_b32")
    >>> data = evaluation.image_folder("imagenette/val", model.image_size)
    >>> clf = evaluation.ZeroShotClassifier(model, data.class_names,
    ...                                     templates="openai_imagenet")
    >>> clf.evaluate(data.images, data.labels)
    {'top1': ..., 'top5': ..., 'mean_per_class_recall': ..., 'num_samples': ...}
"""

from keras_clip.evaluation.datasets import (
    ClassificationData,
    PairedData,
    csv_pairs,
    image_folder,
    synthetic_classification,
    synthetic_pairs,
    webdataset_pairs,
)
from keras_clip.evaluation.features import (
    embed_dataset,
    encode_images,
    encode_texts,
    l2_normalize,
    progress,
)
from keras_clip.evaluation.linear_probe import evaluate_linear_probe, linear_probe, search_c
from keras_clip.evaluation.retrieval import (
    evaluate_retrieval,
    recall_at_k,
    retrieval_metrics,
    retrieval_ranks,
)
from keras_clip.evaluation.templates import (
    data_source,
    get_templates,
    imagenet_class_names,
    list_template_sets,
)
from keras_clip.evaluation.zero_shot import (
    ZeroShotClassifier,
    top_k_accuracy,
    zero_shot_weights,
)
