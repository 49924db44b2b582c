"""Modeling layers: the CRF (ops and layer); context encoders live beside it."""

from tfner.layers.crf import CRFDecoder
from tfner.layers.crf_ops import (
    FORBIDDEN_TRANSITION_SCORE,
    allowed_transitions,
    constrain_transitions,
    crf_binary_score,
    crf_decode,
    crf_log_likelihood,
    crf_log_norm,
    crf_marginals,
    crf_sequence_score,
    crf_unary_score,
    lengths_from_mask,
)
from tfner.layers.context import RecurrentContext, SoftmaxDecoder, build_context_layer
