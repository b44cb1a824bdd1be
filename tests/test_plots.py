"""The demo's figures (issue 13, finding 7): colour bars, thumbnails on the similarity
rows, legible cell numbers, held-out classes in the confusion matrix, epochs from 1."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from keras_clip import plots


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_training_curves_number_epochs_from_one(tmp_path):
    history = {"loss": [4.0, 3.0, 2.5], "i2t_accuracy": [0.1, 0.4, 0.6], "t2i_accuracy": [0.1, 0.3, 0.5]}
    figure = plots.training_curves(history, tmp_path / "curves.png")
    assert _png_size(tmp_path / "curves.png")[0] > 600
    loss, accuracy = figure.axes
    assert loss.lines[0].get_xdata().tolist() == [1, 2, 3]  # Keras prints "Epoch 1/3"
    assert loss.lines[0].get_ydata().tolist() == history["loss"]
    assert [line.get_xdata().tolist() for line in accuracy.lines] == [[1, 2, 3]] * 2
    assert loss.get_xticks().tolist()[0] == 1


def test_similarity_matrix_has_thumbnails_colour_bar_and_legible_numbers(tmp_path):
    rng = np.random.default_rng(0)
    similarity = np.array([[0.9, -0.2, 0.1], [0.0, 0.8, 0.3], [0.2, 0.1, 0.7]])
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    captions = ["a red circle in the top left of the image", "a blue star", "a green square"]
    figure = plots.similarity_matrix(similarity, images, captions, tmp_path / "similarity.png")
    _png_size(tmp_path / "similarity.png")
    matrix, *thumbnails, colorbar = figure.axes
    assert colorbar.get_ylabel() == "cosine similarity"
    assert len(thumbnails) == 3
    for thumbnail, image in zip(thumbnails, images):  # row i shows image i
        np.testing.assert_array_equal(thumbnail.images[0].get_array(), image)
    texts = {t.get_text(): t.get_color() for t in matrix.texts}
    assert set(texts) == {f"{v:.2f}" for v in similarity.ravel()}
    # viridis: the highest value is yellow (black text), the lowest dark purple (white text)
    assert texts["0.90"] == "black" and texts["-0.20"] == "white"
    assert [t.get_text() for t in matrix.get_xticklabels()][1] == "a blue star"


def test_similarity_matrix_checks_its_inputs():
    with pytest.raises(ValueError, match=r"shape \(2, 2\); expected 3 images"):
        plots.similarity_matrix(np.eye(2), np.zeros((3, 4, 4, 3)), ["a", "b"])


def test_confusion_matrix_includes_and_marks_held_out_classes(tmp_path):
    names = ["red circle", "red star", "blue star"]
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0, 2])
    figure = plots.confusion_matrix(labels, predictions, names, heldout=["red star"],
                                    path=tmp_path / "confusion.png")
    _png_size(tmp_path / "confusion.png")
    axis, colorbar = figure.axes
    assert "fraction of the true class" in colorbar.get_ylabel()
    ticks = axis.get_yticklabels()
    assert [t.get_text() for t in ticks] == ["red circle", "red star *", "blue star"]
    assert ticks[1].get_color() == plots.HELDOUT_COLOR and ticks[0].get_color() != plots.HELDOUT_COLOR
    assert [t.get_text() for t in axis.get_xticklabels()][1] == "red star *"
    assert min(t.get_fontsize() for t in ticks) >= 8
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in axis.texts}
    assert cells == {(0, 0): "1", (0, 1): "1", (1, 1): "2", (2, 2): "2", (2, 0): "1"}
    np.testing.assert_allclose(axis.images[0].get_array()[2], [1 / 3, 0, 2 / 3])
    assert "held-out" in axis.get_title() and "top-1 71.4%" in axis.get_title()


def test_confusion_matrix_refuses_unknown_held_out_names():
    with pytest.raises(ValueError, match="heldout names \\['green cross'\\] are not in class_names"):
        plots.confusion_matrix([0], [0], ["red circle"], heldout=["green cross"])
