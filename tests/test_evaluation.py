"""keras_clip.evaluation: hand-checkable zero-shot, linear-probe and retrieval cases,
the bundled template data, the evaluation datasets, and clear errors."""

import math
import re

import numpy as np
import pytest
from PIL import Image

import keras_clip
from keras_clip.evaluation import (
    ZeroShotClassifier,
    csv_pairs,
    evaluate_linear_probe,
    evaluate_retrieval,
    get_templates,
    image_folder,
    imagenet_class_names,
    linear_probe,
    recall_at_k,
    retrieval_metrics,
    synthetic_classification,
    synthetic_pairs,
    top_k_accuracy,
    webdataset_pairs,
    zero_shot_weights,
)
from keras_clip.evaluation.templates import data_source, resolve_templates
from keras_clip.data import SyntheticShapes
from keras_clip.preprocessing import preprocess_numpy
from tests.conftest import tiny_config


# ------------------------------------------------------------------ a mock model
class LookupTokenizer:
    """Each known text -> a one-column id row (its index in `texts`)."""

    def __init__(self, texts):
        self.ids = {t: i for i, t in enumerate(texts)}

    def __call__(self, texts):
        return np.array([[self.ids[t]] for t in texts], np.int32)


class FakeCLIP:
    """encode_text: a row of `text_table`; encode_image: the image's top-left pixel."""

    def __init__(self, text_table, logit_scale=10.0):
        self.text_table = np.asarray(text_table, np.float32)
        self._scale = logit_scale

    @property
    def logit_scale(self):
        return self._scale

    def encode_text(self, ids):
        return self.text_table[np.asarray(ids)[:, 0]]

    def encode_image(self, images):
        return np.asarray(images)[:, 0, 0, :]


TEXTS = ["a cat.", "the cat!", "a dog.", "the dog!"]
TABLE = [[3, 0, 0], [0, 2, 0], [0, 0, 5], [0, 3, 4]]  # deliberately not unit length


def fake_classifier(**kwargs):
    model = FakeCLIP(TABLE)
    return ZeroShotClassifier(model, ["cat", "dog"], templates=["a {}.", "the {}!"],
                              tokenizer=LookupTokenizer(TEXTS), batch_size=3, **kwargs)


def images_with_embeddings(rows):
    """(N, 2, 2, 3) float32 images whose FakeCLIP embedding is `rows`."""
    images = np.zeros((len(rows), 2, 2, 3), np.float32)
    images[:, 0, 0, :] = rows
    return images


def test_prompt_ensembling_matches_hand_computation():
    clf = fake_classifier()
    # cat: normalise [3,0,0] -> [1,0,0] and [0,2,0] -> [0,1,0]; mean [.5,.5,0]; renormalise.
    cat = np.array([1, 1, 0]) / math.sqrt(2)
    # dog: [0,0,5] -> [0,0,1], [0,3,4] -> [0,.6,.8]; mean [0,.3,.9], norm sqrt(.9).
    dog = np.array([0, 0.3, 0.9]) / math.sqrt(0.9)
    np.testing.assert_allclose(clf.class_embeddings, [cat, dog], atol=1e-6)
    # Averaging the raw (unnormalised) embeddings would have given a different cat vector.
    raw_cat = np.array([1.5, 1.0, 0]) / np.linalg.norm([1.5, 1.0, 0])
    assert not np.allclose(clf.class_embeddings[0], raw_cat, atol=1e-3)
    assert clf.logit_scale == 10.0 and clf.num_classes == 2


def test_predict_by_scaled_cosine_matches_hand_computation():
    clf = fake_classifier()
    images = images_with_embeddings([[1, 1, 0], [0, 0, 2]])
    # image 0 = cat direction: cos(cat) = 1, cos(dog) = (1/sqrt2)(.3/sqrt.9)
    c01 = (0.3 / math.sqrt(0.9)) / math.sqrt(2)
    # image 1 = [0,0,1]: cos(cat) = 0, cos(dog) = .9/sqrt(.9) = sqrt(.9)
    expected_logits = 10.0 * np.array([[1.0, c01], [0.0, math.sqrt(0.9)]])
    np.testing.assert_allclose(clf.logits(images), expected_logits, atol=1e-5)
    labels, probs = clf.predict(images, return_probabilities=True)
    assert labels.tolist() == [0, 1]
    e = np.exp(expected_logits)
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert clf.predict(images).tolist() == [0, 1]


def test_evaluate_top1_top5_on_arrays_and_batches():
    clf = fake_classifier()
    images = images_with_embeddings([[1, 1, 0], [0, 0, 2], [1, 0.9, 0]])
    result = clf.evaluate(images, [0, 1, 1])  # the third is a cat-like image labelled dog
    assert result["top1"] == pytest.approx(2 / 3)
    assert result["top5"] == 1.0  # only 2 classes: every label is in the top 5
    assert result["mean_per_class_recall"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["num_samples"] == 3
    batches = [{"images": images[:2], "labels": np.array([0, 1])},
               (images[2:], np.array([1]))]
    assert clf.evaluate(batches) == result


def test_encoding_uses_one_batch_shape():
    from keras_clip.evaluation import encode_images, encode_texts

    class Recorder(FakeCLIP):
        shapes = []

        def encode_image(self, images):
            self.shapes.append(images.shape[0])
            return super().encode_image(images)

        def encode_text(self, ids):
            self.shapes.append(ids.shape[0])
            return super().encode_text(ids)

    model = Recorder(TABLE)
    rows = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(encode_images(model, images_with_embeddings(rows), 2), rows)
    assert model.shapes == [2, 2, 2]  # the last batch of one is padded to two
    model.shapes.clear()
    out = encode_texts(model, TEXTS[1:], tokenizer=LookupTokenizer(TEXTS), batch_size=2)
    np.testing.assert_array_equal(out, np.asarray(TABLE[1:], np.float32))
    assert model.shapes == [2, 2]
    with pytest.raises(ValueError, match="Received no texts"):
        encode_texts(model, [], tokenizer=LookupTokenizer(TEXTS))


def test_top_k_accuracy_by_hand():
    logits = np.array([
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],   # label 6: rank 0
        [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],   # label 5: rank 5 -> miss at 5
        [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0],   # label 2: 4 higher + 2 ties -> rank 6
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # label 1: 1 higher + 5 ties -> rank 6
    ])
    got = top_k_accuracy(logits, [6, 5, 2, 1], ks=(1, 5, 7))
    assert got == {1: 0.25, 5: 0.25, 7: 1.0}


def test_zero_shot_errors_say_what_was_received():
    model = FakeCLIP(TABLE)
    tok = LookupTokenizer(TEXTS)
    with pytest.raises(ValueError, match="class_names is empty"):
        ZeroShotClassifier(model, [], templates=["a {}."], tokenizer=tok)
    with pytest.raises(ValueError, match="sequence of str"):
        ZeroShotClassifier(model, "cat", templates=["a {}."], tokenizer=tok)
    with pytest.raises(ValueError, match="exactly one"):
        ZeroShotClassifier(model, ["cat"], templates=["a photo"], tokenizer=tok)
    with pytest.raises(ValueError, match="Unknown template set 'nope'"):
        ZeroShotClassifier(model, ["cat"], templates="nope", tokenizer=tok)
    clf = fake_classifier()
    images = images_with_embeddings([[1, 1, 0], [0, 0, 2]])
    with pytest.raises(ValueError, match="Received 2 images and 3 labels; expected one label"):
        clf.evaluate(images, [0, 1, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\); received .* 5"):
        clf.evaluate(images, [0, 5])
    with pytest.raises(ValueError, match="labels is None"):
        clf.evaluate(images)


@pytest.mark.parametrize("template", ["a {name} of a {}.", "a {} or a {}.", "a {0}.",
                                      "a {} {", "a {!r}.", "a photo of a {:>9}."])
def test_templates_without_exactly_one_plain_field_are_refused_up_front(template):
    tok = LookupTokenizer(TEXTS)
    message = f"Template {template!r} must contain exactly one '{{}}'"
    with pytest.raises(ValueError, match=re.escape(message)):
        ZeroShotClassifier(FakeCLIP(TABLE), ["cat"], templates=["a {}.", template],
                           tokenizer=tok)
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_templates(template)


def test_template_with_escaped_braces_is_accepted():
    assert resolve_templates("a {} {{sketch}}") == ["a {} {{sketch}}"]
    tok = LookupTokenizer(["a cat {sketch}"])
    weights = zero_shot_weights(FakeCLIP([[1, 0, 0]]), ["cat"], "a {} {{sketch}}",
                                tokenizer=tok)
    np.testing.assert_allclose(weights, [[1, 0, 0]])


# ------------------------------------------------------------ bundled templates
def test_bundled_templates_and_class_names():
    templates = get_templates("openai_imagenet")
    assert len(templates) == 80 and len(set(templates)) == 80
    assert templates[0] == "a bad photo of a {}." and "itap of a {}." in templates
    seven = get_templates("openai_imagenet_7")
    assert seven == ["itap of a {}.", "a bad photo of the {}.", "a origami {}.",
                     "a photo of the large {}.", "a {} in a video game.", "art of the {}.",
                     "a photo of the small {}."]
    assert set(seven) <= set(templates)
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"]
    assert names[-1] == "toilet paper"
    assert "Prompt_Engineering_for_ImageNet" in data_source("openai_imagenet")
    assert "MIT" in data_source("imagenet")
    assert resolve_templates("a sketch of a {}.") == ["a sketch of a {}."]
    assert get_templates("simple") == ["a photo of a {}."]


# -------------------------------------------------------------------- retrieval
# Rows: images 0..2; columns: captions 0..3. Captions 0 and 1 describe image 0,
# caption 2 image 1, caption 3 image 2.
SIM = np.array([
    [0.9, 0.1, 0.8, 0.2],
    [0.3, 0.7, 0.6, 0.1],
    [0.2, 0.5, 0.4, 0.3],
])
IMAGE_INDEX = [0, 0, 1, 2]


def test_recall_from_known_similarity_matrix():
    # image -> text (rank = wrong captions scoring >= the best own caption):
    #   image 0: best own 0.9; wrong 0.8, 0.2          -> rank 0
    #   image 1: own 0.6; wrong 0.3, 0.7, 0.1           -> rank 1 (0.7)
    #   image 2: own 0.3; wrong 0.2, 0.5, 0.4           -> rank 2 (0.5, 0.4)
    # text -> image (rank = wrong images scoring >= its own image):
    #   caption 0: column (.9, .3, .2), own .9          -> rank 0
    #   caption 1: column (.1, .7, .5), own .1          -> rank 2
    #   caption 2: column (.8, .6, .4), own .6          -> rank 1
    #   caption 3: column (.2, .1, .3), own .3          -> rank 0
    got = recall_at_k(SIM, IMAGE_INDEX, ks=(1, 2, 3))
    assert got["image_to_text_recall@1"] == pytest.approx(1 / 3)
    assert got["image_to_text_recall@2"] == pytest.approx(2 / 3)
    assert got["image_to_text_recall@3"] == 1.0
    assert got["text_to_image_recall@1"] == pytest.approx(2 / 4)
    assert got["text_to_image_recall@2"] == pytest.approx(3 / 4)
    assert got["text_to_image_recall@3"] == 1.0
    assert got["image_to_text_median_rank"] == 2.0   # ranks 0,1,2 -> median 1, 1-based 2
    assert got["text_to_image_median_rank"] == 1.5   # ranks 0,2,1,0 -> 0.5, 1-based 1.5
    assert got["num_images"] == 3 and got["num_texts"] == 4
    # The same through blocks of one image row at a time.
    from keras_clip.evaluation import retrieval_ranks

    i2t, t2i = retrieval_ranks(SIM, IMAGE_INDEX, block_size=1)
    assert i2t.tolist() == [0, 1, 2] and t2i.tolist() == [0, 2, 1, 0]


def test_recall_ties_count_against_and_defaults():
    got = recall_at_k(np.ones((3, 3)))  # every score equal: no hit at 1
    assert got["image_to_text_recall@1"] == 0.0 and got["text_to_image_recall@1"] == 0.0
    assert got["text_to_image_recall@5"] == 1.0  # only 3 images
    assert set(got) >= {f"{d}_recall@{k}" for d in ("image_to_text", "text_to_image")
                        for k in (1, 5, 10)}
    perfect = recall_at_k(np.eye(4))
    assert perfect["image_to_text_recall@1"] == perfect["text_to_image_recall@1"] == 1.0


def test_retrieval_metrics_from_embeddings_are_cosine():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 8))
    texts = rng.normal(size=(7, 8)) * rng.uniform(0.5, 3, size=(7, 1))  # scale must not matter
    index = [0, 1, 2, 3, 4, 4, 0]
    cos = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ (
        texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    assert retrieval_metrics(images, texts, index) == recall_at_k(cos, index)
    # Each caption = its image plus small noise: every recall is perfect.
    texts = np.repeat(images, 2, axis=0) + 0.01 * rng.normal(size=(10, 8))
    got = retrieval_metrics(images, texts, np.repeat(np.arange(5), 2), ks=(1,))
    assert got["image_to_text_recall@1"] == got["text_to_image_recall@1"] == 1.0


def test_retrieval_and_embeddings_from_a_dataset_of_pairs():
    from keras_clip.evaluation import embed_dataset

    model = FakeCLIP(TABLE)
    rows = np.asarray(TABLE, np.float32)  # image i embeds exactly like text i
    batches = [
        {"images": images_with_embeddings(rows[:3]), "token_ids": np.array([[0], [1], [2]]),
         "labels": np.array([0, 0, 1])},
        {"images": images_with_embeddings(rows[3:]), "token_ids": np.array([[3]]),
         "labels": np.array([1])},
    ]
    out = embed_dataset(model, batches, normalize=True)
    np.testing.assert_allclose(out["image_embeddings"], out["text_embeddings"])
    np.testing.assert_allclose(np.linalg.norm(out["image_embeddings"], axis=1), 1.0, rtol=1e-6)
    assert out["labels"].tolist() == [0, 0, 1, 1]
    got = evaluate_retrieval(model, batches, ks=(1,))
    assert got["image_to_text_recall@1"] == got["text_to_image_recall@1"] == 1.0
    with pytest.raises(ValueError, match="hold no 'token_ids'"):
        evaluate_retrieval(model, [{"images": batches[0]["images"]}])


def test_retrieval_errors():
    with pytest.raises(ValueError, match="image_index has 3 entries for 4 texts; expected"):
        recall_at_k(SIM, [0, 0, 1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\); received .* 3"):
        recall_at_k(SIM, [0, 0, 1, 3])
    with pytest.raises(ValueError, match="3 images and 4 texts without image_index"):
        recall_at_k(SIM)
    with pytest.raises(ValueError, match=r"same D; received shapes \(2, 3\) and \(2, 4\)"):
        retrieval_metrics(np.ones((2, 3)), np.ones((2, 4)))


# ----------------------------------------------------------------- linear probe
def blobs(n_per_class, seed, dim=8, classes=3):
    rng = np.random.default_rng(seed)
    centers = 6.0 * np.eye(classes, dim)
    x = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centers])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


def test_linear_probe_separable_toy_set_is_near_perfect():
    train_x, train_y = blobs(40, seed=0)
    test_x, test_y = blobs(30, seed=1)
    result = linear_probe(train_x, train_y, test_x, test_y)
    assert result["accuracy"] >= 0.98
    assert result["val_accuracy"] >= 0.95
    searched = [c for c, _ in result["search"]]
    # 7 starting points 1e-6 .. 1e6, then 4 halvings (to 1/8 decade), 2 points each at most.
    assert 7 < len(searched) <= 15
    assert result["C"] in searched and 1e-6 <= result["C"] <= 1e6
    assert result["classifier"].predict(test_x[:3]).tolist() == [0, 0, 0]


def test_c_search_rejects_heavy_regularisation_on_imbalanced_classes():
    # 60 vs 10 samples: with C = 1e-6 the weights vanish and the (unpenalised)
    # intercept predicts the majority class: validation accuracy 30 / 35.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(4, 1, (10, 4))])
    y = np.repeat([0, 1], [60, 10])
    from keras_clip.evaluation import search_c

    c, acc, history = search_c(x[::2], y[::2], x[1::2], y[1::2])
    assert dict(history)[1e-6] == pytest.approx(30 / 35)
    assert acc == 1.0 and c > 1e-6
    assert [h[0] for h in history] == sorted(h[0] for h in history)


def test_linear_probe_explicit_validation_and_fixed_c():
    train_x, train_y = blobs(20, seed=2)
    val_x, val_y = blobs(10, seed=3)
    test_x, test_y = blobs(10, seed=4)
    result = linear_probe(train_x, train_y, test_x, test_y, val_x, val_y, steps_per_decade=2)
    assert result["accuracy"] >= 0.95
    assert result["classifier"].n_features_in_ == 8
    assert sum(result["classifier"].classes_ == np.arange(3)) == 3
    fixed = linear_probe(train_x, train_y, test_x, test_y, c=0.5)
    assert fixed["C"] == 0.5 and fixed["search"] == [] and fixed["val_accuracy"] is None


def test_linear_probe_errors():
    x, y = blobs(5, seed=0)
    with pytest.raises(ValueError, match="Received 15 train features and 14 train labels"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="hold 1 class; expected at least 2"):
        linear_probe(x, np.zeros(15, int), x, y)
    with pytest.raises(ValueError, match="train features have 8 dimensions and test features 4"):
        linear_probe(x, y, x[:, :4], y)
    with pytest.raises(ValueError, match="both val_features and val_labels"):
        linear_probe(x, y, x, y, val_features=x)


# --------------------------------------------------------------------- datasets
def write_png(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size + (3,), color, np.uint8)).save(path)


def test_image_folder_loads_classes_labels_and_preprocesses(tmp_path):
    write_png(tmp_path / "great_white_shark" / "a.png", (20, 30), 200)
    write_png(tmp_path / "great_white_shark" / "nested" / "b.png", (16, 16), 100)
    write_png(tmp_path / "tench" / "c.png", (24, 18), 50)
    (tmp_path / "tench" / "notes.txt").write_text("not an image")
    data = image_folder(tmp_path, image_size=16)
    assert data.class_names == ["great white shark", "tench"]
    assert data.labels.tolist() == [0, 0, 1]
    assert data.images.shape == (3, 16, 16, 3) and data.images.dtype == np.float32
    expected = preprocess_numpy(np.asarray(Image.open(tmp_path / "tench" / "c.png")), 16)
    np.testing.assert_array_equal(data.images[2], expected[0])
    assert [p.split("/")[-1] for p in data.paths] == ["a.png", "b.png", "c.png"]
    one = image_folder(tmp_path, 16, max_per_class=1, underscores_to_spaces=False)
    assert one.labels.tolist() == [0, 1] and one.class_names[0] == "great_white_shark"
    named = image_folder(tmp_path, 16, class_names=["shark", "fish"])
    assert named.class_names == ["shark", "fish"]


def test_image_folder_and_pairs_take_the_models_preprocessing(tmp_path):
    import dataclasses

    from keras_clip.config import PreprocessingConfig
    from tests.conftest import tiny_config

    half_squash = dict(mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode="squash")
    config = dataclasses.replace(tiny_config("vit"), preprocessing=PreprocessingConfig(**half_squash))
    (tmp_path / "cls").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (20, 60, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "cls" / "wide.png")  # squash and crop differ on it
    pixels = np.asarray(Image.open(tmp_path / "cls" / "wide.png"))
    expected = preprocess_numpy(pixels, 32, **half_squash)[0]
    np.testing.assert_array_equal(image_folder(tmp_path, config).images[0], expected)
    table = tmp_path / "pairs.csv"
    table.write_text(f"filepath,title\n{tmp_path / 'cls' / 'wide.png'},a grey box\n")
    np.testing.assert_array_equal(csv_pairs(table, config).images[0], expected)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not found; expected a folder"):
        image_folder(tmp_path / "missing", 16)
    with pytest.raises(ValueError, match="has no class sub-folders"):
        image_folder(tmp_path, 16)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        image_folder(tmp_path, 16)
    write_png(tmp_path / "empty_class" / "x.png", (8, 8), 1)
    with pytest.raises(ValueError, match="Received 2 class_names for 1 class folders"):
        image_folder(tmp_path, 16, class_names=["a", "b"])
    with pytest.raises(ValueError, match="image_size must be a positive int; received 0"):
        image_folder(tmp_path, 0)


def test_csv_pairs_groups_captions_per_image(tmp_path):
    write_png(tmp_path / "img" / "a.png", (10, 10), 10)
    write_png(tmp_path / "img" / "b.png", (12, 12), 240)
    (tmp_path / "caps.csv").write_text(
        "filepath,title,label\nimg/a.png,a dark square,0\nimg/b.png,a white square,1\n"
        "img/a.png,black,0\n")
    data = csv_pairs(tmp_path / "caps.csv", 8, label_key="label")
    assert data.images.shape == (2, 8, 8, 3)
    assert data.captions == ["a dark square", "a white square", "black"]
    assert data.image_index.tolist() == [0, 1, 0] and data.labels.tolist() == [0, 1]
    flat = csv_pairs(tmp_path / "caps.csv", 8, group_by_image=False)
    assert flat.image_index.tolist() == [0, 1, 2] and flat.labels is None


def test_csv_and_webdataset_readers_on_synthetic_shards(tmp_path):
    shapes = SyntheticShapes(image_size=16, seed=5, split="all")
    raw, captions, labels = shapes.sample(5)
    table = shapes.write_csv(tmp_path / "csv", 5, image_format="png")
    from_csv = csv_pairs(table, 16, label_key="label", class_names=shapes.classes)
    np.testing.assert_array_equal(from_csv.images, preprocess_numpy(raw, 16))
    assert from_csv.captions == captions and from_csv.labels.tolist() == labels.tolist()
    shapes.write_webdataset(tmp_path / "wds", 5, shard_size=2, image_format="png")
    from_wds = webdataset_pairs(str(tmp_path / "wds" / "*.tar"), 16, label_key="label")
    np.testing.assert_array_equal(from_wds.images, from_csv.images)
    assert from_wds.captions == captions and from_wds.labels.tolist() == labels.tolist()
    assert len(webdataset_pairs(str(tmp_path / "wds" / "*.tar"), 16, max_samples=3)) == 3
    with pytest.raises(ValueError, match="no WebDataset shards match"):
        webdataset_pairs(str(tmp_path / "none" / "*.tar"), 16)


def test_synthetic_sets():
    data = synthetic_classification(6, image_size=16, seed=2, split="heldout")
    assert data.images.shape == (6, 16, 16, 3) and data.class_names[0] == "red star"
    assert data.labels.max() < len(data.class_names)
    pairs = synthetic_pairs(4, image_size=16, seed=2, captions_per_image=3)
    assert len(pairs.captions) == 12 and pairs.image_index.tolist() == [0, 0, 0, 1, 1, 1,
                                                                       2, 2, 2, 3, 3, 3]
    for j, caption in enumerate(pairs.captions):  # each caption names its image's class
        name = pairs.class_names[pairs.labels[pairs.image_index[j]]]
        assert all(word in caption for word in name.split())
    with pytest.raises(ValueError, match="captions_per_image must be an int in"):
        synthetic_pairs(2, image_size=16, captions_per_image=0)


# ---------------------------------------------------- a tiny real CLIP end to end
class SmallVocabTokenizer:
    """CLIPTokenizer ids folded into the tiny model's 1000-token vocabulary (the end
    token stays the highest id, so end-of-text pooling still finds it)."""

    def __init__(self):
        self.tokenizer = keras_clip.CLIPTokenizer()

    def __call__(self, texts):
        ids = self.tokenizer(texts)
        return np.where(ids == 49407, 999, ids % 999).astype(np.int32)


@pytest.fixture(scope="module")
def tiny_model():
    return keras_clip.CLIP(tiny_config("vit"))  # vocabulary 1000: quick to build


def test_zero_shot_on_a_tiny_real_clip(tiny_model):
    names = ["red circle", "blue star", "green square"]
    tokenizer = SmallVocabTokenizer()
    # Batches of 5 everywhere in these tests: each tower compiles for one shape.
    clf = ZeroShotClassifier(tiny_model, names, templates="shapes", tokenizer=tokenizer,
                             batch_size=5)
    # Hand ensembling with the model's own text tower.
    for c, name in enumerate(names):
        emb = np.asarray(tiny_model.encode_text(tokenizer([t.format(name) for t in
                                                           get_templates("shapes")])))
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        mean = emb.mean(0)
        np.testing.assert_allclose(clf.class_embeddings[c], mean / np.linalg.norm(mean),
                                   atol=1e-5)
    assert clf.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    data = synthetic_classification(5, image_size=32, seed=3)
    labels, probs = clf.predict(data.images, return_probabilities=True)
    assert labels.shape == (5,) and probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    from keras_clip.evaluation.features import encode_images

    # By hand: cosine of each image with each class, softmax of the scaled scores.
    features = encode_images(tiny_model, data.images, batch_size=5)
    features = features / np.linalg.norm(features, axis=1, keepdims=True)
    scores = features @ clf.class_embeddings.T  # (5, 3)
    scaled = clf.logit_scale * scores
    expected = np.exp(scaled - scaled.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(labels, scores.argmax(1))
    truth = np.array([0, 1, 2, 0, 1])
    result = clf.evaluate(data.images, truth)
    assert result["top1"] == pytest.approx(np.mean(scores.argmax(1) == truth))
    assert result["top5"] == 1.0  # three classes: the truth is always in the top 5
    # A tf.data pipeline of labelled batches (token ids unused here).
    shapes = SyntheticShapes(image_size=32, seed=3, split="all")
    ds = shapes.as_tf_dataset(batch_size=5, num_samples=6, training=False,
                              include_labels=True)
    streamed = ZeroShotClassifier(tiny_model, shapes.classes, templates="simple",
                                  tokenizer=tokenizer, batch_size=5).evaluate(ds)
    batches = list(ds.as_numpy_iterator())
    images = np.concatenate([b["images"] for b in batches])
    truth = np.concatenate([b["labels"] for b in batches])
    stream_clf = ZeroShotClassifier(tiny_model, shapes.classes, templates="simple",
                                    tokenizer=tokenizer, batch_size=5)
    feats = encode_images(tiny_model, images, batch_size=5)
    feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    ranks = np.argsort(-(feats @ stream_clf.class_embeddings.T), axis=1)
    assert streamed["num_samples"] == 6
    assert streamed["top1"] == pytest.approx(np.mean(ranks[:, 0] == truth))
    assert streamed["top5"] == pytest.approx(np.mean((ranks[:, :5] == truth[:, None]).any(1)))
    w = zero_shot_weights(tiny_model, names, "a photo of a {}.", tokenizer=tokenizer)
    assert w.shape == (3, 32)
    from keras_clip.evaluation.features import default_tokenizer

    raw = np.random.default_rng(0).integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    np.testing.assert_allclose(  # uint8 images are preprocessed for the model first
        encode_images(tiny_model, raw, batch_size=5),
        encode_images(tiny_model, preprocess_numpy(raw, 32), batch_size=5), atol=1e-6)

    assert default_tokenizer(tiny_model).context_length == 77


def test_linear_probe_and_retrieval_on_a_tiny_real_clip(tiny_model):
    train = synthetic_classification(24, image_size=32, seed=1, split="heldout")
    test = synthetic_classification(12, image_size=32, seed=2, split="heldout")
    result = evaluate_linear_probe(tiny_model, train, test, c=1.0, max_iter=100, batch_size=5)
    assert result["C"] == 1.0 and result["classifier"].n_features_in_ == 32
    from keras_clip.evaluation.features import encode_images

    test_features = encode_images(tiny_model, test.images, batch_size=5)  # unnormalised
    predicted = result["classifier"].predict(test_features)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == test.labels))
    pairs = synthetic_pairs(6, image_size=32, seed=4, captions_per_image=2)
    got = evaluate_retrieval(tiny_model, pairs, tokenizer=SmallVocabTokenizer(), batch_size=5)
    assert got["num_images"] == 6 and got["num_texts"] == 12
    image_features = encode_images(tiny_model, pairs.images, batch_size=5)
    text_features = np.asarray(tiny_model.encode_text(SmallVocabTokenizer()(pairs.captions)))
    image_features /= np.linalg.norm(image_features, axis=1, keepdims=True)
    text_features /= np.linalg.norm(text_features, axis=1, keepdims=True)
    order = np.argsort(-(text_features @ image_features.T), axis=1)  # (12, 6)
    for k in (1, 5):
        hits = (order[:, :k] == np.asarray(pairs.image_index)[:, None]).any(1)
        assert got[f"text_to_image_recall@{k}"] == pytest.approx(hits.mean()), k
    assert got["text_to_image_recall@10"] == 1.0  # only 6 images
