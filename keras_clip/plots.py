"""The demo's figures: training curves, an image-caption similarity matrix, a confusion matrix.

Each function takes plain numpy data and returns a matplotlib `Figure`
(built without pyplot, so no global state and no display needed); pass
`path` to also save it as a PNG. Needs matplotlib (`pip install "keras-clip[eval]"`).

Example:
    >>> from keras_clip import plots
    >>> figure = plots.training_curves({"loss": [4.1, 3.2, 2.9]}, "curves.png")  # doctest: +SKIP
"""

import textwrap

import numpy as np

HELDOUT_COLOR = "#c0392b"
DPI = 110


def _figure(size):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _save(figure, path):
    if path is not None:
        figure.savefig(path, dpi=DPI)
    return figure


def _cell_text_colors(image, values):
    """Black on light cells, white on dark ones (by the cell colour's luminance)."""
    rgba = image.cmap(image.norm(values))
    luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
    return np.where(luminance > 0.5, "black", "white")


def training_curves(history, path=None):
    """Loss and in-batch accuracy per epoch, epochs numbered from 1 (as Keras prints them).

    Args:
        history: `model.fit(...).history`: `"loss"` and optionally `"i2t_accuracy"`,
            `"t2i_accuracy"`, lists with one value per epoch.
        path: where to save the PNG (optional).

    Example:
        >>> figure = training_curves({"loss": [4.1, 3.2], "i2t_accuracy": [0.2, 0.5]})
        >>> figure.axes[0].lines[0].get_xdata().tolist()
        [1, 2]
    """
    figure = _figure((10, 3.8))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    loss_axis.plot(epochs, history["loss"], marker="o")
    loss_axis.set(title="contrastive loss (training)", xlabel="epoch", ylabel="loss")
    names = {"i2t_accuracy": "image → text", "t2i_accuracy": "text → image"}
    for key, name in names.items():
        if key in history:
            accuracy_axis.plot(epochs, history[key], marker="o", label=name)
    accuracy_axis.set(title="in-batch top-1 accuracy (training)", xlabel="epoch", ylabel="accuracy",
                      ylim=(0, 1.02))
    if any(key in history for key in names):
        accuracy_axis.legend(loc="lower right")
    step = -(-len(epochs) // 10)  # at most ~10 ticks, always starting at epoch 1
    for axis in (loss_axis, accuracy_axis):
        axis.set_xticks(epochs[::step])
        axis.set_xlim(0.5, len(epochs) + 0.5)
        axis.grid(alpha=0.3)
    return _save(figure, path)


def similarity_matrix(similarity, images, captions, path=None):
    """Cosine similarity of images (rows, drawn as thumbnails) and captions (columns).

    Args:
        similarity: `(N, M)` cosines.
        images: `N` displayable images: uint8 `(H, W, 3)` or floats in [0, 1].
        captions: `M` captions (wrapped to fit their column).
        path: where to save the PNG (optional).

    Each cell shows its value, in black or white by the cell's brightness; the
    diagonal (an image's own caption, when N == M) is outlined.

    Example:
        >>> figure = similarity_matrix(np.eye(2), np.zeros((2, 8, 8, 3)), ["a cat", "a dog"])
        >>> len(figure.axes)  # the matrix, its colour bar, one thumbnail per row
        4
    """
    similarity = np.asarray(similarity, dtype=np.float32)
    rows, columns = similarity.shape
    if len(images) != rows or len(captions) != columns:
        raise ValueError(f"similarity has shape {similarity.shape}; expected {len(images)} images "
                         f"(rows) and {len(captions)} captions (columns).")
    figure = _figure((1.6 + 1.15 * columns, 1.8 + 0.8 * rows))
    grid = figure.add_gridspec(rows, 3, width_ratios=[0.9, columns, 0.3], wspace=0.02, hspace=0.0)
    matrix_axis = figure.add_subplot(grid[:, 1])
    image = matrix_axis.imshow(similarity, cmap="viridis", aspect="auto")
    colors = _cell_text_colors(image, similarity)
    for i in range(rows):
        for j in range(columns):
            matrix_axis.text(j, i, f"{similarity[i, j]:.2f}".replace("-0.00", "0.00"), ha="center", va="center", fontsize=10,
                             color=colors[i, j])
    if rows == columns:
        from matplotlib.patches import Rectangle

        for k in range(rows):
            matrix_axis.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    wrapped = ["\n".join(textwrap.wrap(caption, 16)) for caption in captions]
    matrix_axis.set_xticks(range(columns), wrapped, fontsize=8.5)
    matrix_axis.set_yticks([])
    matrix_axis.set_xlabel("caption")
    matrix_axis.set_title("cosine similarity: image (row) vs caption (column); "
                          "outlined: each image's own caption" if rows == columns else
                          "cosine similarity: image (row) vs caption (column)", fontsize=11)
    for i in range(rows):
        thumbnail = figure.add_subplot(grid[i, 0])
        thumbnail.imshow(images[i], interpolation="nearest")
        thumbnail.set_axis_off()
    colorbar = figure.colorbar(image, cax=figure.add_subplot(grid[:, 2]))
    colorbar.set_label("cosine similarity")
    return _save(figure, path)


def confusion_matrix(labels, predictions, class_names, heldout=(), path=None):
    """Zero-shot confusion matrix, rows normalised; held-out classes marked `*` and coloured.

    Args:
        labels: true class indices `(N,)` into `class_names`.
        predictions: predicted class indices `(N,)`.
        class_names: every class the classifier chose among (seen and held-out).
        heldout: the names among `class_names` that training never saw.
        path: where to save the PNG (optional).

    Colour: the fraction of each true class predicted as each class; a cell's
    number is its image count (zeros left blank).

    Example:
        >>> figure = confusion_matrix([0, 1, 1], [0, 1, 0], ["red circle", "blue star"],
        ...                           heldout=["blue star"])
        >>> [t.get_text() for t in figure.axes[0].get_yticklabels()]
        ['red circle', 'blue star *']
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    count = len(class_names)
    unknown = sorted(set(heldout) - set(class_names))
    if unknown:
        raise ValueError(f"heldout names {unknown} are not in class_names.")
    counts = np.zeros((count, count), int)
    np.add.at(counts, (labels, predictions), 1)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 3 + 0.3 * count
    figure = _figure((side + 1.2, side))
    axis = figure.subplots()
    image = axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    colors = _cell_text_colors(image, fractions)
    for i, j in zip(*np.nonzero(counts)):
        axis.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colors[i, j])
    names = [f"{name} *" if name in heldout else name for name in class_names]
    axis.set_xticks(range(count), names, rotation=90, fontsize=9)
    axis.set_yticks(range(count), names, fontsize=9)
    for tick in (*axis.get_xticklabels(), *axis.get_yticklabels()):
        if tick.get_text().endswith(" *"):
            tick.set_color(HELDOUT_COLOR)
            tick.set_fontweight("bold")
    accuracy = float(np.mean(labels == predictions)) if len(labels) else float("nan")
    title = f"zero-shot confusion over all {count} classes (top-1 {accuracy:.1%})"
    if len(heldout):
        title += f"\n* red: {len(heldout)} held-out classes (colour-shape pairs never seen in training)"
    axis.set(xlabel="predicted class", ylabel="true class")
    axis.set_title(title, fontsize=11)
    colorbar = figure.colorbar(image, ax=axis, shrink=0.8)
    colorbar.set_label("fraction of the true class (numbers: image counts)")
    return _save(figure, path)
