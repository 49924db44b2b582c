"""Modeling layers: the CRF (ops and layer); context encoders live beside it.

The CRF functions are those of ``tfa.text`` (tensorflow-addons) under the same names and
signatures: ``from tensorflow_addons import text`` becomes ``from tfner.layers import crf_ops as
text``, and ``from tensorflow_addons.text import crf_decode`` becomes ``from tfner.layers import
crf_decode`` (see ``tfner.layers.crf_ops`` for the differences).
"""

from tfner.layers.crf import CRFDecoder
from tfner.layers.crf_ops import (
    FORBIDDEN_TRANSITION_SCORE,
    allowed_transitions,
    constrain_transitions,
    crf_binary_score,
    crf_constrained_decode,
    crf_decode,
    crf_decode_backward,
    crf_decode_forward,
    crf_filtered_inputs,
    crf_forward,
    crf_log_likelihood,
    crf_log_norm,
    crf_marginals,
    crf_multitag_sequence_score,
    crf_sequence_score,
    crf_unary_score,
    lengths_from_mask,
    viterbi_decode,
)
from tfner.layers.context import RecurrentContext, SoftmaxDecoder, build_context_layer
from tfner.layers.conv_context import ConvContext, IteratedDilatedConvContext
from tfner.layers.transformer_context import TransformerContext
from tfner.layers.span_decoders import GlobalPointerDecoder, SpanPointerDecoder, build_span_decoder
