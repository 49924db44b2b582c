"""keras-hub BERT/ALBERT backbones with the checkpoint's own FFN activation and LayerNorm epsilon.

``keras_hub.models.BertBackbone`` and ``AlbertBackbone`` hard-code the tanh approximation of GELU
and ``epsilon=1e-12``. Hugging Face BERT checkpoints (``hidden_act: "gelu"``) were trained with the
exact erf GELU, and the two differ by up to ~1e-3 on a sequence output, so the subclasses here add
two config arguments, ``hidden_activation`` and ``layer_norm_epsilon``, and set them on the
already-built layers. They ARE keras-hub backbones (``isinstance(b, keras_hub.models.BertBackbone)``)
with the same layers, inputs and outputs, and they round-trip through ``.keras`` files.
"""

import keras
import keras_hub

from keras_hub.src.utils.keras_utils import gelu_approximate

# Hugging Face ``hidden_act`` names -> the activation names these backbones take.
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
}


def resolve_activation(name):
    """The callable for a backbone ``hidden_activation`` name.

    Args:
        name: ``"gelu"`` (exact erf GELU), ``"gelu_approximate"`` (tanh GELU, keras-hub's
            default) or any name ``keras.activations.get`` knows (``"relu"``, ``"silu"``, ...).

    Example:
    >>> resolve_activation("gelu_approximate").__name__
    'gelu_approximate'
    """
    if name == "gelu_approximate":
        return gelu_approximate
    if name == "gelu":
        return _gelu_exact
    return keras.activations.get(name)


def _gelu_exact(x):
    return keras.activations.gelu(x, approximate=False)


def _set_transformer_options(backbone, transformer_layers, hidden_activation, layer_norm_epsilon):
    activation = resolve_activation(hidden_activation)
    for layer in transformer_layers:
        layer.activation = activation
        layer._feedforward_intermediate_dense.activation = activation
        layer.layer_norm_epsilon = layer_norm_epsilon
        layer._self_attention_layer_norm.epsilon = layer_norm_epsilon
        layer._feedforward_layer_norm.epsilon = layer_norm_epsilon
    backbone.embeddings_layer_norm.epsilon = layer_norm_epsilon


@keras.saving.register_keras_serializable(package="tfner")
class BertEncoderBackbone(keras_hub.models.BertBackbone):
    """``keras_hub.models.BertBackbone`` with a configurable FFN activation and LayerNorm epsilon.

    Args:
        hidden_activation: activation of the feed-forward layer: ``"gelu"`` (exact, Hugging Face
            ``hidden_act="gelu"``), ``"gelu_approximate"`` (tanh; the TF1 ALBERT code bases), ``"relu"``...
        layer_norm_epsilon: epsilon of every LayerNorm.
        **kwargs: the ``keras_hub.models.BertBackbone`` arguments (``vocabulary_size``,
            ``num_layers``, ``num_heads``, ``hidden_dim``, ``intermediate_dim``, ``dropout``,
            ``max_sequence_length``, ``num_segments``, ``dtype``).

    Example:
    >>> import numpy as np
    >>> backbone = BertEncoderBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16, hidden_activation="gelu")
    >>> out = backbone({"token_ids": np.ones((1, 5), "int32"),
    ...     "segment_ids": np.zeros((1, 5), "int32"), "padding_mask": np.ones((1, 5), "int32")})
    >>> tuple(out["sequence_output"].shape)
    (1, 5, 8)
    """

    def __init__(self, *args, hidden_activation="gelu_approximate", layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        _set_transformer_options(self, self.transformer_layers, hidden_activation, layer_norm_epsilon)
        self.hidden_activation = hidden_activation
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_activation": self.hidden_activation, "layer_norm_epsilon": self.layer_norm_epsilon}
        )
        return config


@keras.saving.register_keras_serializable(package="tfner")
class AlbertEncoderBackbone(keras_hub.models.AlbertBackbone):
    """``keras_hub.models.AlbertBackbone`` with a configurable FFN activation and LayerNorm epsilon.

    Args:
        hidden_activation: see ``BertEncoderBackbone``; ALBERT's own is ``"gelu_approximate"``.
        layer_norm_epsilon: epsilon of every LayerNorm.
        **kwargs: the ``keras_hub.models.AlbertBackbone`` arguments (``vocabulary_size``,
            ``num_layers``, ``num_heads``, ``embedding_dim``, ``hidden_dim``,
            ``intermediate_dim``, ``num_groups``, ``num_inner_repetitions``, ``dropout``,
            ``max_sequence_length``, ``num_segments``, ``dtype``).

    Example:
    >>> backbone = AlbertEncoderBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...     embedding_dim=4, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> backbone.num_groups
    1
    """

    def __init__(self, *args, hidden_activation="gelu_approximate", layer_norm_epsilon=1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        layers = [layer for group in self.transformer_layers for layer in group]
        _set_transformer_options(self, layers, hidden_activation, layer_norm_epsilon)
        self.hidden_activation = hidden_activation
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_activation": self.hidden_activation, "layer_norm_epsilon": self.layer_norm_epsilon}
        )
        return config
