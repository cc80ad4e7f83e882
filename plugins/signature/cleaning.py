"""A stand-in of the signature-cleaning autoencoder, in the original's format: a Keras 2 SavedModel.

The original comes from the Kaggle notebook "Signature image cleaning with
TensorFlow 2.0": a convolutional autoencoder that removes background noise,
text and lines around a signature, downloaded as a SavedModel folder. This
builder makes a model of the same architecture, names and format with seeded
weights, for the demo and the tests. TensorFlow is imported only when it runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: The original's input side length.
ORIGINAL_SIZE = 224


def build_cleaning_savedmodel(folder: Path, *, seed: int = 0, size: int = ORIGINAL_SIZE) -> Path:
    """Write the stand-in as a Keras 2 SavedModel in ``folder`` and return the folder.

    Args:
        folder: Where to write it; created if needed, and must be empty if it exists.
        seed: Seeds the weights; the same seed gives the same weights.
        size: The input's height and width; a multiple of 8, since three
            poolings halve it and three transposed convolutions double it back.

    Raises:
        ValueError: ``size`` is not a positive multiple of 8, or ``folder`` is not empty.
        graphkit.ModelError: TensorFlow or tf_keras is not installed.
    """
    if size < 8 or size % 8:
        raise ValueError(f"size must be a positive multiple of 8, not {size}")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder}: not empty; the SavedModel needs a folder of its own")
    tf, keras = _import_keras2(folder)
    model = _autoencoder(tf, keras, size)
    _seed_weights(model, seed)
    model.save(str(folder), save_format="tf")
    return folder


def _import_keras2(folder: Path) -> tuple[Any, Any]:
    from graphkit_plugins.frontends.savedmodel import import_tensorflow

    modules = import_tensorflow(folder)
    try:
        # Keras 2, as the original was saved with; plain tf.keras is Keras 3 from TF 2.16.
        import tf_keras
    except ImportError as error:
        from graphkit_plugins.frontends.savedmodel import TF_EXTRA

        from graphkit import ModelError

        raise ModelError(
            f"{folder}: building a Keras 2 SavedModel needs tf_keras: {TF_EXTRA}"
        ) from error
    return modules.tf, tf_keras


def _autoencoder(tf: Any, keras: Any, size: int) -> Any:
    """The original's layers, with the names Keras gave them in a fresh session."""
    layers = keras.layers

    def conv(filters: int, name: str, activation: str = "relu") -> Any:
        return layers.Conv2D(filters, 3, padding="same", activation=activation, name=name)

    def up(filters: int, name: str) -> Any:
        return layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", activation="relu", name=name
        )

    inputs = layers.Input(shape=(size, size, 3), name="input_1")
    x = conv(64, "conv2d")(inputs)
    x = layers.Dropout(0.2, name="dropout")(x)
    x = conv(64, "conv2d_1")(x)
    x = layers.MaxPooling2D(2, padding="same", name="max_pooling2d")(x)
    x = conv(128, "conv2d_2")(x)
    x = layers.Dropout(0.2, name="dropout_1")(x)
    x = conv(128, "conv2d_3")(x)
    x = layers.MaxPooling2D(2, padding="same", name="max_pooling2d_1")(x)
    x = conv(256, "conv2d_4")(x)
    x = layers.Dropout(0.2, name="dropout_2")(x)
    x = conv(256, "conv2d_5")(x)
    x = layers.MaxPooling2D(2, padding="same", name="max_pooling2d_2")(x)
    x = layers.Dropout(0.2, name="dropout_3")(x)
    x = up(256, "conv2d_transpose")(x)
    x = up(128, "conv2d_transpose_1")(x)
    x = up(64, "conv2d_transpose_2")(x)
    outputs = conv(3, "conv2d_6", activation="sigmoid")(x)
    model = keras.Model(inputs, outputs, name="autoencoder")

    # Keras names a metric after its function; these are the original's names.
    def PSNR(y_true: Any, y_pred: Any) -> Any:
        return tf.image.psnr(y_true, y_pred, max_val=1.0)

    def SSIM(y_true: Any, y_pred: Any) -> Any:
        return tf.image.ssim(y_true, y_pred, max_val=1.0)

    model.compile(
        optimizer="adam",
        loss="mse",
        metrics=[PSNR, SSIM, keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


def _seed_weights(model: Any, seed: int) -> None:
    """Set every weight from NumPy, so the model depends on ``seed`` alone, not on TF's RNG state.

    Kernels are Glorot-uniform, like Keras's default; biases are small, so
    activations neither vanish nor saturate the sigmoid output.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if (
            len(shape) == 4
        ):  # kernel: (h, w, fan_in, fan_out) for Conv2D, out/in swapped for transposed
            receptive = shape[0] * shape[1]
            limit = math.sqrt(6.0 / (receptive * (shape[2] + shape[3])))
            value = rng.uniform(-limit, limit, shape)
        else:
            value = rng.uniform(-0.05, 0.05, shape)
        weight.assign(value.astype(np.float32))
