"""``GradientScale``: the identity in the forward pass, a constant factor on the gradient."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfner")
class GradientScale(keras.layers.Layer):
    """Returns its input unchanged and multiplies the gradient flowing back through it by `scale`.

    A multi-task model puts one at the foot of each task's head: the shared layers below then
    receive `scale_i * dL/dh` from task `i`, i.e. each task's share of a shared weight's update
    is in proportion to `scale_i` (see `tfner.models.MultiTaskTagger`). The forward value is
    exactly the input (`x + scale * (x - stop_gradient(x))`, whose second term is exactly 0).

    Args:
        scale: the gradient factor (a float; 1.0 makes the layer a plain identity).
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = GradientScale(2.0)
    >>> np.asarray(layer(np.ones((1, 3), "float32"))).tolist()
    [[1.0, 1.0, 1.0]]
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.supports_masking = True

    def call(self, inputs):
        if self.scale == 1.0:
            return inputs
        frozen = ops.stop_gradient(inputs)
        return frozen + self.scale * (inputs - frozen)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["scale"] = self.scale
        return config
