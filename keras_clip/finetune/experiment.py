"""The fine-tuning benchmark: adapt the demo's CLIP to a shifted domain, measure what it forgets.

A small CLIP is pretrained on the synthetic shapes (or loaded from a preset
folder, e.g. the demo's `model/`), then fine-tuned to classify the 24 seen
colour-shape classes drawn in the shifted domain (`SyntheticShapes(shift=
"textured")`: outlines on bright striped backgrounds) with each method:

- `full`: the image tower and a zero-shot-initialised head, cross-entropy;
- `lit`: the image tower locked, contrastive tuning of the text tower on class prompts;
- `lora`: rank-`r` adapters on the image tower's attention and MLP, and the head;
- `flyp`: both towers, contrastive on class prompts (FLYP).

Reported per method: task accuracy (shifted test images), zero-shot accuracy on
the original domain (seen classes) and on the held-out combinations (among all
30 classes), trained parameters, wall time; and for `full`, the WiSE-FT sweep.

Example:
    >>> results = run_experiment("finetune_output", methods=("full", "lora"))  # doctest: +SKIP
"""

import time

import numpy as np

METHODS = ("full", "lit", "lora", "flyp")
PROMPTS = ("a photo of a {}.", "a {}", "a {} on a dark background")


def check_positive(**values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")


def _domain_data(n, image_size, seed, split, shift):
    from keras_clip.data.synthetic import SyntheticShapes
    from keras_clip.preprocessing import preprocess_numpy

    shapes = SyntheticShapes(image_size, seed=seed, split=split, shift=shift)
    raw, _, labels = shapes.sample(n)
    return preprocess_numpy(raw, image_size), labels.astype(np.int32), list(shapes.classes)


class Evaluator:
    """The benchmark's fixed evaluation sets and its three accuracies for one CLIP."""

    def __init__(self, image_size, samples, seed):
        from keras_clip.data.synthetic import class_names

        self.task = _domain_data(samples, image_size, seed, "train", "textured")
        self.original = _domain_data(samples, image_size, seed, "train", None)
        heldout = _domain_data(samples // 2, image_size, seed, "heldout", None)
        everything = class_names("all")
        labels = np.array([everything.index(heldout[2][k]) for k in heldout[1]], np.int32)
        self.heldout = (heldout[0], labels, everything)

    @staticmethod
    def zero_shot(model, data):
        from keras_clip.evaluation import ZeroShotClassifier

        images, labels, names = data
        return ZeroShotClassifier(model, names, templates=PROMPTS).evaluate(images, labels)["top1"]

    @staticmethod
    def classifier_accuracy(classifier, data):
        images, labels, _ = data
        return float(np.mean(classifier.predict(images, batch_size=256, verbose=0).argmax(1)
                             == labels))

    def zero_shot_figures(self, model):
        return {"zero_shot_original": self.zero_shot(model, self.original),
                "zero_shot_heldout": self.zero_shot(model, self.heldout)}


def pretrain(samples, epochs, seed, verbose=0):
    """The demo's CLIP trained on the original synthetic domain (`keras_clip.demo`)."""
    import keras

    from keras_clip import CLIP
    from keras_clip.demo import DEMO_CONFIG, _train

    keras.utils.set_random_seed(seed)
    model = CLIP(DEMO_CONFIG)
    _train(model, samples, epochs, 128, 2e-3, seed, verbose)
    return model


def _compile(model, learning_rate, steps, loss=None):
    from keras_clip.training import build_optimizer

    optimizer = build_optimizer(model, learning_rate, total_steps=steps,
                                warmup_steps=max(1, steps // 10), weight_decay=0.1)
    model.compile(optimizer=optimizer, loss=loss, **({"metrics": ["accuracy"]} if loss else {}))


def fine_tune(method, base_folder, train, epochs, batch_size, learning_rate, lora_rank, seed,
              verbose=0):
    """Fine-tunes a fresh copy of the base model with `method`; returns `(clip, classifier)`.

    `classifier` is the images -> logits model of `full` and `lora`, None for the
    contrastive methods (their task accuracy is zero-shot on the task classes).
    """
    import keras

    from keras_clip import CLIP, finetune

    keras.utils.set_random_seed(seed)
    model = CLIP.from_preset_folder(base_folder)
    images, labels, names = train
    steps = epochs * (len(labels) // batch_size)
    if method in ("lit", "flyp"):
        if method == "lit":
            finetune.lock(model, image=True)
        batches = finetune.flyp_batches(model, images, labels, names, PROMPTS, batch_size, seed)
        _compile(model, learning_rate, steps)
        model.fit(batches, epochs=epochs, verbose=verbose)
        return model, None
    if method == "lora":
        model.enable_lora(lora_rank, towers="image")
    classifier = finetune.build_classifier(model, names, PROMPTS)
    _compile(classifier, learning_rate, steps,
             keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    classifier.fit(images, labels, batch_size=batch_size, epochs=epochs, shuffle=True,
                   verbose=verbose)
    return model, classifier


def run_experiment(base_folder, methods=METHODS, wise_ft=True, train_samples=2048,
                   eval_samples=1000, epochs=5, batch_size=24, learning_rates=None,
                   lora_rank=4, seed=0, verbose=0):
    """Runs the benchmark; returns `{"rows": [...], "wise_ft": {...} or None, "settings"}`.

    Args:
        base_folder: the pretrained model's preset folder (see `pretrain`).
        methods: any of `METHODS`.
        wise_ft: sweep WiSE-FT's alpha for `full` (needs `"full"` in `methods`).
        train_samples, eval_samples: shifted training images; images per evaluation set.
        epochs, batch_size: fine-tuning epochs and batch (24: one image per class
            in the contrastive methods' batches).
        learning_rates: `{method: peak learning rate}` overriding the defaults.
        lora_rank: the adapters' rank.
        seed: data and initialisation seed.
    """
    from keras_clip import CLIP, finetune

    check_positive(train_samples=train_samples, eval_samples=eval_samples, epochs=epochs,
                    batch_size=batch_size, lora_rank=lora_rank)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}; received {methods!r}.")
    if wise_ft and "full" not in methods:
        raise ValueError("The WiSE-FT sweep interpolates full fine-tuning; add 'full' to the "
                         "methods or turn the sweep off.")
    rates = {"full": 5e-4, "lit": 1e-3, "lora": 3e-3, "flyp": 5e-4, **(learning_rates or {})}
    base = CLIP.from_preset_folder(base_folder)
    evaluator = Evaluator(base.image_size, eval_samples, seed + 1000)
    train = _domain_data(train_samples, base.image_size, seed + 2000, "train", "textured")
    rows = [{"method": "zero-shot (no fine-tuning)", "trained_parameters": 0, "seconds": 0.0,
             "task": evaluator.zero_shot(base, evaluator.task),
             **evaluator.zero_shot_figures(base)}]
    sweep = None
    for method in methods:
        started = time.time()
        model, classifier = fine_tune(method, base_folder, train, epochs, batch_size,
                                      rates[method], lora_rank, seed, verbose)
        seconds = time.time() - started
        trained = finetune.trainable_parameter_count(classifier or model)
        task = (evaluator.classifier_accuracy(classifier, evaluator.task) if classifier
                else evaluator.zero_shot(model, evaluator.task))
        rows.append({"method": method, "trained_parameters": trained, "seconds": seconds,
                     "task": task, **evaluator.zero_shot_figures(model),
                     "learning_rate": rates[method]})
        if method == "full" and wise_ft:
            sweep = _wise_ft_sweep(base_folder, model, classifier, evaluator)
    return {"rows": rows, "wise_ft": sweep, "parameters": int(base.count_params()),
            "settings": {"train_samples": train_samples, "eval_samples": eval_samples,
                         "epochs": epochs, "batch_size": batch_size, "lora_rank": lora_rank,
                         "seed": seed, "prompts": list(PROMPTS)}}


def _wise_ft_sweep(base_folder, fine_tuned_clip, fine_tuned_classifier, evaluator):
    """WiSE-FT of the full fine-tuning: both classifiers interpolated, every alpha evaluated."""
    from keras_clip import CLIP, finetune

    names = evaluator.task[2]
    zero_shot_classifier = finetune.build_classifier(CLIP.from_preset_folder(base_folder),
                                                     names, PROMPTS)
    probe = CLIP.from_preset_folder(base_folder)  # its image tower takes each alpha's weights

    def with_image_tower(classifier):
        tower = classifier.get_layer(fine_tuned_clip.image_encoder.name)
        probe.image_encoder.set_weights(tower.get_weights())
        return probe

    def task(classifier):
        return evaluator.classifier_accuracy(classifier, evaluator.task)

    def original(classifier):
        return evaluator.zero_shot(with_image_tower(classifier), evaluator.original)

    sweep = finetune.wise_ft_sweep(zero_shot_classifier, fine_tuned_classifier, task, original)
    best = finetune.wise_ft(zero_shot_classifier, fine_tuned_classifier, sweep["best_alpha"])
    sweep["best_heldout"] = evaluator.zero_shot(with_image_tower(best), evaluator.heldout)
    return sweep
