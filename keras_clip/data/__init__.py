"""Data for CLIP training: WebDataset and CSV pipelines, and a synthetic dataset.

Every pipeline is a ``tf.data.Dataset`` of ``{"images": float32 (B, S, S, 3),
"token_ids": int32 (B, 77)}`` batches (TensorFlow must be installed; it works
under every Keras backend). Their shared settings are one ``PipelineOptions``,
passed as ``options=`` or as keyword arguments. Skipped samples are counted in the dataset's
``quality_stats``; ``DataQualityReport`` warns once per epoch.

Example:
    >>> from keras_clip import data
    >>> shards = data.write_webdataset("/tmp/shapes", 1000, shard_size=250)
    >>> ds = data.webdataset_dataset("/tmp/shapes/*.tar", image_size=64, batch_size=32)
    >>> model.fit(ds, epochs=5, callbacks=[data.DataQualityReport(ds)])
"""

from keras_clip.data.csv_dataset import csv_dataset, read_table
from keras_clip.data.options import DEFAULT_MAX_PIXELS, PipelineOptions
from keras_clip.data.pipeline import (
    CATEGORIES,
    DataQualityReport,
    DataQualityStats,
    expand_braces,
    list_files,
    shard_files,
)
from keras_clip.data.synthetic import (
    COLORS,
    HELDOUT_COMBOS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEMPLATES,
    SyntheticShapes,
    class_names,
    render_shape,
    write_csv,
    write_webdataset,
)
from keras_clip.data.webdataset import iterate_tar_samples, webdataset_dataset
