"""``CRFDecoder``: a linear-chain CRF output layer with optional tag-scheme constraints."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tfner.layers import crf_ops


def _as_bool_array(value, shape, name):
    if value is None:
        return None
    array = np.asarray(value, dtype=bool)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


@keras.saving.register_keras_serializable(package="tfner")
class CRFDecoder(keras.layers.Layer):
    """Linear-chain CRF over per-position emission scores; ``call`` returns Viterbi tag ids.

    The layer owns the CRF parameters: ``transitions`` (``[K, K]``, ``[from, to]``) and, with
    ``use_boundary_transitions``, ``start_transitions`` / ``end_transitions`` (``[K]``) scored at
    the first / last real position. They are created in ``build`` under those names, so their
    ``.path`` is ``"<layer name>/transitions"`` etc. (e.g. ``"crf/transitions"`` for a layer
    named ``"crf"``), which lets an optimizer give them their own learning rate.

    Optional constraints (``allowed*``) replace the scores of forbidden transitions by
    ``crf_ops.FORBIDDEN_TRANSITION_SCORE`` (-1e4, finite so gradients stay finite) in training
    and decoding alike. Boundary constraints also apply when ``use_boundary_transitions=False``
    (then the boundary scores are the constant 0 / -1e4). A gold sequence that breaks a
    constraint (e.g. a truncated sentence starting with ``I-X``) gets a log-likelihood near -1e4.

    The CRF always computes in float32 (inputs are cast, variables are not autocast), so it is
    safe under a mixed-precision policy. Emissions must be finite everywhere, padding included.
    A whole training step through the layer compiles with XLA (``model.compile(jit_compile=True)``
    on TensorFlow, and on JAX); see ``supports_jit``. XLA compiles once per input shape, so
    batches should come in a bounded set of widths (``TrainConfig(jit_compile=True)`` pads them
    to multiples of ``pad_to_multiple``).

    Args:
        num_tags: ``K``, the number of tags (the last dimension of the emissions).
        allowed: optional ``[K, K]`` bool (nested lists or array) of allowed transitions.
        allowed_start: optional ``[K]`` bool of tags allowed at the first position.
        allowed_end: optional ``[K]`` bool of tags allowed at the last real position.
        use_boundary_transitions: whether to learn start/end scores.
        transitions_initializer: initializer of ``transitions``; default ``"zeros"`` so the
            untrained CRF decodes exactly like a per-position argmax (softmax) and training starts
            from the emission model. Boundary scores always start at zero.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Example:
    >>> import numpy as np
    >>> crf = CRFDecoder.for_labels(["O", "B-PER", "I-PER"], name="crf")
    >>> emissions = np.random.rand(2, 5, 3).astype("float32")
    >>> mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    >>> tags = crf(emissions, mask=mask)          # [2, 5] int32 Viterbi tags
    >>> loss = crf.loss(emissions, np.zeros((2, 5), "int32"), mask)  # mean NLL
    >>> crf.transitions.path
    'crf/transitions'
    """

    def __init__(
        self,
        num_tags,
        allowed=None,
        allowed_start=None,
        allowed_end=None,
        use_boundary_transitions=True,
        transitions_initializer="zeros",
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if int(num_tags) < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = int(num_tags)
        self.allowed = _as_bool_array(allowed, (self.num_tags, self.num_tags), "allowed")
        self.allowed_start = _as_bool_array(allowed_start, (self.num_tags,), "allowed_start")
        self.allowed_end = _as_bool_array(allowed_end, (self.num_tags,), "allowed_end")
        self.use_boundary_transitions = bool(use_boundary_transitions)
        self.transitions_initializer = keras.initializers.get(transitions_initializer)
        self.supports_masking = True

    @property
    def supports_jit(self):
        """Whether a training step through this layer can be XLA-compiled (``jit_compile=True``).

        True on JAX, and on TensorFlow unless ``crf_ops.set_implementation("loop")`` is in effect:
        inside a step XLA compiles as a whole, the CRF runs its compiled loops (static maximum
        iterations, custom gradients). The op-by-op ``keras.ops.scan`` loops of ``"loop"`` have
        no maximum number of iterations, so their gradients do not compile with XLA (forward
        passes, e.g. decoding and export, still do).
        """
        return keras.backend.backend() != "tensorflow" or crf_ops.get_implementation() != "loop"

    @supports_jit.setter
    def supports_jit(self, value):
        # keras.layers.Layer.__init__ assigns True; the answer is derived from crf_ops instead.
        pass

    @classmethod
    def for_labels(cls, labels, scheme="BIO", constrained=True, **kwargs):
        """A CRF for the given label strings, constrained to the tag scheme's valid transitions.

        Args:
            labels: the ``K`` label strings in tag-id order (e.g. ``["O", "B-PER", "I-PER"]``).
            scheme: tag scheme for ``crf_ops.allowed_transitions`` (``"BIO"``, ``"BIOES"``, ...).
            constrained: whether to apply the scheme's constraints.
            **kwargs: other ``CRFDecoder`` arguments.
        """
        if constrained:
            allowed, allowed_start, allowed_end = crf_ops.allowed_transitions(labels, scheme)
            kwargs.update(allowed=allowed, allowed_start=allowed_start, allowed_end=allowed_end)
        return cls(num_tags=len(labels), **kwargs)

    def build(self, emissions_shape):
        if emissions_shape[-1] is not None and emissions_shape[-1] != self.num_tags:
            raise ValueError(
                f"{self.name}: emissions have {emissions_shape[-1]} scores per position but "
                f"num_tags={self.num_tags}"
            )
        self.transitions = self.add_weight(
            name="transitions",
            shape=(self.num_tags, self.num_tags),
            initializer=self.transitions_initializer,
            dtype="float32",
            autocast=False,
        )
        if self.use_boundary_transitions:
            self.start_transitions = self.add_weight(
                name="start_transitions",
                shape=(self.num_tags,),
                initializer="zeros",
                dtype="float32",
                autocast=False,
            )
            self.end_transitions = self.add_weight(
                name="end_transitions",
                shape=(self.num_tags,),
                initializer="zeros",
                dtype="float32",
                autocast=False,
            )
        else:
            self.start_transitions = None
            self.end_transitions = None
        self.built = True

    # === Parameters with constraints applied ===

    def effective_transitions(self):
        """``[K, K]`` float32 transition scores with forbidden ones set to -1e4."""
        self._check_built()
        return crf_ops.constrain_transitions(ops.cast(self.transitions, "float32"), self.allowed)

    def effective_boundary_transitions(self):
        """``(start [K] or None, end [K] or None)`` with forbidden boundary tags set to -1e4."""
        self._check_built()
        return (
            self._boundary(self.start_transitions, self.allowed_start),
            self._boundary(self.end_transitions, self.allowed_end),
        )

    def _boundary(self, variable, allowed):
        if variable is None and allowed is None:
            return None
        scores = (
            ops.zeros((self.num_tags,), dtype="float32")
            if variable is None
            else ops.cast(variable, "float32")
        )
        return crf_ops.constrain_transitions(scores, allowed)

    def _check_built(self):
        if not self.built:
            raise ValueError(f"{self.name} is not built yet: call it on emissions first")

    def _prepare(self, emissions, mask):
        emissions = ops.cast(ops.convert_to_tensor(emissions), "float32")
        if not self.built:
            self.build(emissions.shape)
        lengths = None if mask is None else crf_ops.lengths_from_mask(mask)
        start, end = self.effective_boundary_transitions()
        return emissions, lengths, self.effective_transitions(), start, end

    # === Public API ===

    def call(self, emissions, mask=None):
        """Viterbi decoding.

        Args:
            emissions: ``[B, T, K]`` emission scores.
            mask: optional ``[B, T]`` left-aligned padding mask (bool or int); ``None`` means
                every position is real.

        Returns:
            ``[B, T]`` int32 tag ids; 0 at padded positions.
        """
        emissions, lengths, trans, start, end = self._prepare(emissions, mask)
        # Tags carry no gradient: stop_gradient keeps JAX from differentiating the Viterbi loops
        # inside a training step (under jax.value_and_grad it would linearise them: 0.78 s instead
        # of 0.45 s per step of the tiny BERT-BiLSTM-CRF); TensorFlow never differentiated them.
        emissions, trans, start, end = (
            None if v is None else ops.stop_gradient(v) for v in (emissions, trans, start, end)
        )
        tags, _ = crf_ops.crf_decode(emissions, trans, lengths, start, end)
        return tags

    def decode(self, emissions, mask=None):
        """``(tags [B, T] int32, best_score [B])`` by Viterbi (see ``call``)."""
        emissions, lengths, trans, start, end = self._prepare(emissions, mask)
        return crf_ops.crf_decode(emissions, trans, lengths, start, end)

    def log_likelihood(self, emissions, tags, mask=None):
        """``[B]`` log-likelihood of the gold ``tags`` ``[B, T]`` (ignored where masked)."""
        emissions, lengths, trans, start, end = self._prepare(emissions, mask)
        log_likelihood, _ = crf_ops.crf_log_likelihood(
            emissions, tags, lengths, trans, start, end
        )
        return log_likelihood

    def loss(self, emissions, tags, mask=None):
        """Scalar mean (over the batch) negative log-likelihood of the gold ``tags``."""
        return -ops.mean(self.log_likelihood(emissions, tags, mask))

    def marginals(self, emissions, mask=None):
        """``[B, T, K]`` marginal tag probabilities by forward-backward; 0 at padded positions."""
        emissions, lengths, trans, start, end = self._prepare(emissions, mask)
        return crf_ops.crf_marginals(emissions, lengths, trans, start, end)

    # === Keras plumbing ===

    def compute_output_shape(self, emissions_shape):
        return tuple(emissions_shape[:-1])

    def compute_output_spec(self, emissions, mask=None):
        return keras.KerasTensor(self.compute_output_shape(emissions.shape), dtype="int32")

    def get_config(self):
        config = super().get_config()

        def to_list(array):
            return None if array is None else array.tolist()

        config.update(
            {
                "num_tags": self.num_tags,
                "allowed": to_list(self.allowed),
                "allowed_start": to_list(self.allowed_start),
                "allowed_end": to_list(self.allowed_end),
                "use_boundary_transitions": self.use_boundary_transitions,
                "transitions_initializer": keras.initializers.serialize(
                    self.transitions_initializer
                ),
            }
        )
        return config
