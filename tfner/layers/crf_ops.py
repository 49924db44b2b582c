"""Linear-chain CRF as flat, backend-agnostic functions (``keras.ops`` only).

This module is a drop-in for tensorflow-addons' ``tfa.text`` CRF functions (tfa is end of life
and does not import on TF >= 2.16): every one of them exists here under the same name, with the
same arguments in the same order and the same results. Code written for tfa runs by changing one
import::

    from tensorflow_addons import text              # before
    from tfner.layers import crf_ops as text        # after: text.crf_log_likelihood(...) etc.

    from tensorflow_addons.text import crf_decode   # before
    from tfner.layers import crf_decode             # after (tfner.layers re-exports them all)

tfa's own test suite runs against this module (``tests/layers/test_tfa_crf_port.py``). The
functions: ``crf_sequence_score``, ``crf_unary_score``, ``crf_binary_score``,
``crf_multitag_sequence_score``, ``crf_filtered_inputs``, ``crf_log_norm``, ``crf_forward``,
``crf_log_likelihood``, ``crf_decode``, ``crf_constrained_decode``, ``crf_decode_forward``,
``crf_decode_backward`` and ``viterbi_decode`` (numpy). Not ported: ``CrfDecodeForwardRnnCell``
and ``CRFModelWrapper`` (Keras 2 classes; use ``tfner.layers.CRFDecoder``). Notation used in the
shapes: ``B`` batch, ``T`` (padded) time, ``K`` number of tags; ``transition_params[i, j]``
scores tag ``i`` followed by tag ``j``.

Differences from tfa, all opt-in or stricter:

- The sequence-level functions accept optional boundary potentials ``start_transitions`` and
  ``end_transitions`` (``[K]`` each). ``start_transitions[y_0]`` is added to the score of the first
  position and ``end_transitions[y_{L-1}]`` to the score of the last real position (``L`` is the
  sequence length). With both ``None`` the results equal tfa's.
- ``crf_log_likelihood`` never creates a variable: ``transition_params=None`` (tfa's default,
  which creates an untracked random ``tf.Variable``) raises a ``ValueError``; pass the matrix, or
  use ``tfner.layers.CRFDecoder`` for trainable transitions.
- ``sequence_lengths`` may be ``None`` (every sequence is ``T`` long); use ``lengths_from_mask`` to
  turn a left-aligned padding mask into lengths. Lengths above ``T`` are clipped to ``T``.
- Length-0 sequences have score 0, log-norm 0, log-likelihood 0, best score 0 and decode to all
  zeros; tags past a sequence's length are ignored when scoring and decode to tag ``0``.
- ``tag_indices`` with more positions than the inputs: the extra tags are ignored (as tfa does);
  with fewer, a ``ValueError`` (inside a graph whose time axis is unknown while tracing, the
  scores of sequences longer than the tags given are NaN): never a wrong score.
- 16-bit float inputs are computed in float32 and the results cast back to the input dtype, as
  tfa returns them.
- ``crf_log_likelihood`` runs the forward algorithm relative to the gold path (see
  ``_gold_path_shift``), so float32 rounds to a fraction of the log-likelihood rather than of
  ``log Z``: the probabilities of all paths of tfa's test case sum to 1 within 4e-8 (tfa's own
  tolerance is 1e-6).
- ``crf_marginals`` (forward-backward) and ``allowed_transitions`` / ``constrain_transitions``
  (forbidden transitions of the BIO / BIOES / BIOS families) have no tfa counterpart.

Implementation notes. Each dynamic programme is one ``keras.ops.scan`` over time (one
``tf.while_loop`` in TensorFlow graph mode, one ``jax.lax.scan`` under JAX) with a vectorised
``O(B K^2)`` step, and the scan runs over all sequences unmasked: the value at each sequence's last
real position is gathered afterwards, so padded positions cost no per-step masking (their emissions
must merely be finite). The scans run over ``T`` steps (the last one a dummy) rather than
``T - 1``, since TensorFlow's ``ops.scan`` cannot stack an empty output when the batch size is
dynamic. The forward algorithm takes its log-sum-exp as a matrix product in probability space,
stabilised by the running maximum of the forward scores and the column maxima of the
transitions, and falls back to the exact ``[B, K, K]`` log-sum-exp recursion for a batch where
that could underflow (see ``_forward_alphas``). Viterbi decoding is max-plus with ``top_k``.

Compiled loops (``set_implementation``; default ``"auto"``). Those op-by-op loops spend their time
on per-step overhead (at batch 64, length 128 the arithmetic is ~0.2 ms of 10-20 ms). On
TensorFlow, when the CRF is traced into a graph for a fully static input shape (``tf.function``,
Keras ``fit`` / ``predict`` on fixed-size batches), ``crf_log_likelihood``, ``crf_log_norm`` and
``crf_decode`` instead run as ``tf.function(jit_compile=True)`` functions whose ``tf.while_loop``
has ``maximum_iterations`` (``_xla_scan``). A gradient cannot leave such a function, so the
log-likelihood's gradient is a second compiled function: the forward-backward gradient (the
marginals, and the transitions' pairwise marginals as one matrix product, see
``_log_norm_gradient``) from the saved alphas and one more loop over the reversed sequences, or,
for a batch that took the exact fallback, the gradient of the recomputed forward pass.
``crf_decode`` recomputes each predecessor going back (no back-pointers) and unrolls the max over
the previous tag for ``K <= 64``. On JAX the same Viterbi runs under the caller's ``jax.jit``, and
above 16 tags the same gradient (``jax.custom_vjp``); below, differentiating the loop is faster
there. Results equal the loops' to float32 rounding, decoded tags exactly
(``tests/layers/test_crf_compiled.py``). ``crf_marginals`` and ``crf_multitag_sequence_score`` run
the forward loop compiled (their gradient recomputes it, compiled, under a tape); tfa's building
blocks ``crf_forward``, ``crf_decode_forward`` and ``crf_decode_backward`` always run the op-by-op
loops. Inside a graph that XLA compiles as a whole (a Keras train step with ``jit_compile=True``)
``"auto"`` takes the compiled formulations for any shape and inlines them into the caller's
compilation (no nested ``tf.function``), so the whole step, CRF gradients included, compiles.
Speed: ``benchmarks/crf_speed.py``.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import ops

# Score given to forbidden transitions. A large finite negative number rather than ``-inf``, so
# that log-likelihoods and their gradients stay finite even for a gold path that breaks a
# constraint (its log-likelihood is then about -1e4).
FORBIDDEN_TRANSITION_SCORE = -1e4

# Smallest probability-space forward mass (relative to the best tag) the fast forward path
# trusts; below it the exact log-sum-exp recursion is used.
_MASS_FLOOR = 1e-30
_LOG_MASS_FLOOR = float(np.log(_MASS_FLOOR))

# Gold-path scores at or below this are not subtracted in ``crf_log_likelihood``'s relative
# forward pass (see ``_gold_path_shift``): forbidden transitions and -inf emissions.
_SHIFT_FLOOR = FORBIDDEN_TRANSITION_SCORE / 2


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def lengths_from_mask(mask):
    """Sequence lengths of a left-aligned padding mask.

    Args:
        mask: ``[B, T]`` bool or int tensor, true/non-zero for the first ``L_b`` positions of
            row ``b`` (a padding mask as produced by keras-hub preprocessors). The mask is
            summed, so it must be left-aligned: a mask with holes is not supported.

    Returns:
        ``[B]`` int32 tensor of lengths.

    Example:
    >>> import numpy as np
    >>> np.asarray(lengths_from_mask([[1, 1, 0], [1, 0, 0]])).tolist()
    [2, 1]
    """
    mask = ops.convert_to_tensor(mask)
    return ops.sum(ops.cast(ops.cast(mask, "bool"), "int32"), axis=-1)


def _compute_dtype(x):
    """The dtype the CRF computes in for ``x``: float64 stays, everything else is float32."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "float64" if dtype == "float64" else "float32"


def _result_dtype(x):
    """The dtype of float results for input ``x``: its own float dtype, float32 for integers.

    16-bit floats are computed in float32 (``_compute_dtype``) and cast back, as tfa returns
    results in the dtype of the inputs.
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    return dtype if dtype in ("float16", "bfloat16", "float32", "float64") else "float32"


def _cast_result(value, dtype):
    """``value`` cast to ``dtype`` unless it already has it."""
    if keras.backend.standardize_dtype(value.dtype) == dtype:
        return value
    return ops.cast(value, dtype)


def _mask_from_lengths(lengths, max_len):
    """``[B, T]`` bool mask of the first ``lengths[b]`` positions."""
    return ops.expand_dims(ops.arange(max_len, dtype="int32"), 0) < ops.expand_dims(lengths, 1)


def _lengths(sequence_lengths, batch, max_len):
    if sequence_lengths is None:
        return ops.full((batch,), max_len, dtype="int32")
    lengths = ops.reshape(ops.cast(ops.convert_to_tensor(sequence_lengths), "int32"), (-1,))
    return ops.clip(lengths, 0, max_len)


def _prepare(inputs, sequence_lengths, transition_params, start_transitions, end_transitions):
    """Converts and casts the arguments; returns ``inputs, lengths, mask, trans, start, end``."""
    if transition_params is None:
        raise ValueError(
            "transition_params is required ([num_tags, num_tags] tensor); unlike tfa, the CRF "
            "functions never create a variable. Use tfner.layers.CRFDecoder for trainable ones."
        )
    inputs = ops.convert_to_tensor(inputs)
    dtype = _compute_dtype(inputs)
    inputs = ops.cast(inputs, dtype)

    def cast(value):
        return None if value is None else ops.cast(ops.convert_to_tensor(value), dtype)

    shape = ops.shape(inputs)
    lengths = _lengths(sequence_lengths, shape[0], shape[1])
    mask = _mask_from_lengths(lengths, shape[1])
    return (
        inputs,
        lengths,
        mask,
        cast(transition_params),
        cast(start_transitions),
        cast(end_transitions),
    )


def _time_major(x):
    """``[B, T, K]`` -> ``[T, B, K]``."""
    return ops.transpose(x, (1, 0, 2))


def _next_positions(inputs):
    """``[T, B, K]`` holding position ``t + 1`` at ``t``; the last row is zeros (a dummy step)."""
    shifted = ops.concatenate([inputs[:, 1:], ops.zeros_like(inputs[:, :1])], axis=1)
    return _time_major(shifted)


def _scan_outputs(ys, xs, first):
    """Turns scan outputs over ``_next_positions`` into per-position values ``[T, B, ...]``.

    ``ys[t]`` belongs to position ``t + 1``; ``first`` (``[B, ...]``) is position 0's value. The
    reshape restores the rank that TensorFlow's ``ops.scan`` loses when ``T`` is dynamic.
    """
    ys = ops.reshape(ys, ops.shape(xs)[:2] + ops.shape(first)[1:])
    return ops.concatenate([ops.expand_dims(first, 0), ys[:-1]], axis=0)


def _at_last_position(values, lengths):
    """``values`` ``[T, B, K]`` at each sequence's last real position -> ``[B, K]``."""
    shape = ops.shape(values)
    batch, num_tags = shape[1], shape[2]
    flat_index = ops.maximum(lengths - 1, 0) * batch + ops.arange(batch, dtype="int32")
    return ops.take(ops.reshape(values, (-1, num_tags)), flat_index, axis=0)


# --------------------------------------------------------------------------------------------
# Choice of implementation: XLA-compiled loops or op-by-op loops
# --------------------------------------------------------------------------------------------

# "auto": on TensorFlow, the dynamic programmes of crf_log_likelihood, crf_log_norm,
# crf_marginals, crf_multitag_sequence_score and crf_decode run as XLA-compiled loops (a
# tf.function with jit_compile=True, see _compiled) when they are traced into a graph for
# inputs of a fully known static shape [B, T, K] (a tf.function traced for fixed shapes, Keras
# fit / predict on fixed-size batches), and as the op-by-op keras.ops.scan loops otherwise:
# eagerly, and in graphs traced for varying shapes (input signatures with None dimensions,
# e.g. SavedModel exports), where XLA would compile once per new shape. On JAX, crf_decode and
# (above _JAX_FORWARD_BACKWARD_MIN_TAGS tags) crf_log_likelihood use the compiled path's
# formulations (under the caller's jax.jit). "compiled" also compiles eager
# TensorFlow calls; "loop" restores the op-by-op loops everywhere. Both give the same decoded
# tags (ties included) and the same values and gradients to float32 rounding.
_IMPLEMENTATIONS = ("auto", "compiled", "loop")
# The default can be set by the environment variable TFNER_CRF_IMPLEMENTATION.
_implementation = os.environ.get("TFNER_CRF_IMPLEMENTATION", "auto")
if _implementation not in _IMPLEMENTATIONS:
    raise ValueError(
        f"TFNER_CRF_IMPLEMENTATION must be one of {_IMPLEMENTATIONS}, got {_implementation!r}"
    )


def set_implementation(name):
    """Selects how the CRF's loops run on TensorFlow: ``"auto"``, ``"compiled"`` or ``"loop"``.

    ``"auto"`` (the default, unless the environment variable ``TFNER_CRF_IMPLEMENTATION`` names
    another) compiles the loops with XLA when the CRF is traced into a graph (``tf.function``,
    Keras ``fit`` / ``predict``) for emissions of a fully known static shape, and runs them op by
    op when called eagerly or traced for varying shapes (``None`` dimensions: SavedModel exports,
    ``reduce_retracing``), where XLA would compile again for every new ``[B, T]``; inside a
    function XLA compiles as a whole (``jit_compile=True``) it always takes the compiled loops,
    inlined (their gradients compile there, the op-by-op loops' do not). ``"compiled"``
    always compiles (eager calls and varying shapes too); ``"loop"`` never does (the previous
    implementation: one ``keras.ops.scan`` ``tf.while_loop`` executed op by op). On JAX, ``"auto"``
    and ``"compiled"`` use the compiled path's formulations (Viterbi without back-pointers; above
    16 tags the forward-backward gradient) and ``"loop"`` the previous ones. Measured speeds:
    ``benchmarks/crf_speed.py``. XLA compiles each function once per input shape (1-15 s on a
    loaded 2-core machine), which ``"compiled"`` pays for every new ``[B, T]``.

    Returns:
        The previous setting.

    Example:
    >>> previous = set_implementation("loop")
    >>> set_implementation(previous)
    'loop'
    """
    global _implementation
    if name not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {_IMPLEMENTATIONS}, got {name!r}")
    previous, _implementation = _implementation, name
    return previous


def get_implementation():
    """The current setting of ``set_implementation``: ``"auto"``, ``"compiled"`` or ``"loop"``."""
    return _implementation


def in_xla_context():
    """Whether the graph being built is XLA-compiled as a whole (inside a function with
    ``jit_compile=True``, e.g. a Keras train step compiled with ``jit_compile=True``); False
    when executing eagerly. TensorFlow only (``tfner.training.xla`` asks it too)."""
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _use_compiled(inputs):
    """Whether this call runs the XLA-compiled loops (see ``set_implementation``).

    Inside a graph XLA compiles as a whole (``jit_compile=True``) the compiled loops are the only
    ones whose gradient XLA can compile (the op-by-op loops have no maximum number of iterations),
    so ``"auto"`` takes them there for any static shape, ``None`` dimensions included.
    """
    if _implementation == "loop" or keras.backend.backend() != "tensorflow":
        return False
    if _implementation == "compiled":
        return True
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    return all(d is not None for d in inputs.shape) or in_xla_context()


def _use_jax_formulation():
    """Whether JAX runs the compiled path's formulations (``"auto"``/``"compiled"``)."""
    return _implementation != "loop" and keras.backend.backend() == "jax"


# On JAX, crf_log_likelihood takes the forward-backward gradient (_log_likelihood_jax) above
# this many tags and differentiates the forward loop below it: measured at batch 64, length
# 128 on 2 CPU cores, the forward-backward gradient is 2.7x faster at 41 tags and 0.8x at 7
# (benchmarks/results/crf_round2.json). Decoding always takes _decode_compiled on JAX.
_JAX_FORWARD_BACKWARD_MIN_TAGS = 16


def _use_jax_forward_backward(inputs):
    num_tags = inputs.shape[-1]
    return (
        _use_jax_formulation()
        and num_tags is not None
        and num_tags > _JAX_FORWARD_BACKWARD_MIN_TAGS
    )


_COMPILED = {}


def _compiled(fn):
    """``fn`` as a ``tf.function(jit_compile=True)``, created once per function.

    Called from inside a graph, the function is traced into it and XLA compiles it (and its
    gradient) for each input shape on first execution. Inside a graph that XLA compiles as a whole
    (a caller's ``jit_compile=True``), ``fn`` itself is returned: it is inlined there. Python arguments (``None`` boundary
    scores, strategy flags) are part of the trace key.
    """
    if in_xla_context():
        # Already inside an XLA-compiled function (a train step with jit_compile=True): the
        # plain function is inlined and compiled with the rest of the caller's graph.
        return fn
    compiled = _COMPILED.get(fn)
    if compiled is None:
        import tensorflow as tf

        compiled = _COMPILED[fn] = tf.function(fn, jit_compile=True, autograph=False)
    return compiled


def _run_compiled(fn, args, static=()):
    """``fn(*args, *static)`` XLA-compiled, differentiable in the float tensors among ``args``.

    A gradient cannot cross the boundary of a compiled function (the loop's accumulators would
    have to leave it), so the gradient is a second compiled function that recomputes ``fn``
    under a tape: the forward loop runs twice in training (once in the forward pass, once in
    the backward pass), every run compiled. ``static`` holds Python values (strategy flags).
    """
    import tensorflow as tf

    positions = [i for i, a in enumerate(args) if a is not None and a.dtype.is_floating]

    def with_diff(diff):
        full = list(args)
        for i, value in zip(positions, diff):
            full[i] = value
        return tuple(full)

    @tf.custom_gradient
    def call(*diff):
        full = with_diff(diff)
        outputs = _compiled(fn)(*_no_gradient(*full), *static)

        def grad(*upstream):
            return _compiled(_recomputed_gradient)(fn, static, tuple(positions), full, upstream)

        return outputs, grad

    return call(*[args[i] for i in positions])


def _no_gradient(*values):
    """``values`` with ``stop_gradient`` on the float tensors (``None`` and ints unchanged)."""
    return tuple(
        v if v is None or not v.dtype.is_floating else ops.stop_gradient(v) for v in values
    )

def _recomputed_gradient(fn, static, positions, args, upstream):
    """Gradients of ``fn(*args, *static)`` w.r.t. ``args[positions]`` given the upstream ones."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        for i in positions:
            tape.watch(args[i])
        outputs = tf.nest.flatten(fn(*args, *static))
    pairs = [
        (output, tf.zeros_like(output) if dy is None else dy)
        for output, dy in zip(outputs, upstream)
        if output.dtype.is_floating
    ]
    sources = [args[i] for i in positions]
    grads = tape.gradient(
        [o for o, _ in pairs], sources, output_gradients=[d for _, d in pairs]
    )
    return [tf.zeros_like(x) if g is None else g for g, x in zip(grads, sources)]

def _xla_scan(step, init, xs, reverse=False, steps=None):
    """``keras.ops.scan`` for the compiled TensorFlow path: ``step(carry, x) -> (carry, y)``.

    ``y`` must have the structure, shapes and dtypes of ``carry``; ``xs`` may be a tuple of
    ``[T, ...]`` tensors. Unlike Keras' TensorFlow scan, the carry stays in the loop variables
    and the ``tf.while_loop`` has ``maximum_iterations``, so XLA compiles it and its gradient.
    ``steps`` (a scalar tensor, at most ``T``; forward scans only) stops the loop early: the
    outputs of the steps not run are zeros (XLA's TensorArrays start zeroed).
    """
    import tensorflow as tf

    xs_flat = [tf.convert_to_tensor(x) for x in tf.nest.flatten(xs)]
    n = tf.shape(xs_flat[0])[0]
    carry_flat = [tf.convert_to_tensor(c) for c in tf.nest.flatten(init)]
    ys = [tf.TensorArray(c.dtype, size=n, element_shape=c.shape) for c in carry_flat]

    def body(i, carry, ys):
        index = n - 1 - i if reverse else i
        x = tf.nest.pack_sequence_as(xs, [tf.gather(v, index) for v in xs_flat])
        carry, y = step(tf.nest.pack_sequence_as(init, carry), x)
        carry = [
            tf.ensure_shape(c, old.shape) for c, old in zip(tf.nest.flatten(carry), carry_flat)
        ]
        ys = [array.write(index, v) for array, v in zip(ys, tf.nest.flatten(y))]
        return i + 1, carry, ys

    limit = n if steps is None else steps
    _, carry, ys = tf.while_loop(
        lambda i, *_: i < limit, body, (tf.constant(0), carry_flat, ys), maximum_iterations=n
    )
    ys = [array.stack() for array in ys]
    return tf.nest.pack_sequence_as(init, carry), tf.nest.pack_sequence_as(init, ys)


# --------------------------------------------------------------------------------------------
# Scores of given paths
# --------------------------------------------------------------------------------------------


def _unary(inputs, tags, mask):
    picked = ops.take_along_axis(inputs, ops.expand_dims(tags, -1), axis=2)[..., 0]
    return ops.sum(ops.where(mask, picked, ops.zeros_like(picked)), axis=1)


def _binary(tags, mask, transition_params):
    num_tags = ops.shape(transition_params)[0]
    flat_index = tags[:, :-1] * num_tags + tags[:, 1:]  # [B, T-1]
    picked = ops.take(ops.reshape(transition_params, (-1,)), flat_index)
    # A transition into position t counts when position t is real (then t-1 is real too).
    return ops.sum(ops.where(mask[:, 1:], picked, ops.zeros_like(picked)), axis=1)


def _boundary(tags, lengths, start_transitions, end_transitions, dtype):
    score = ops.zeros(ops.shape(lengths), dtype=dtype)
    non_empty = lengths > 0
    if start_transitions is not None:
        first = ops.take(start_transitions, tags[:, 0])
        score = score + ops.where(non_empty, first, ops.zeros_like(first))
    if end_transitions is not None:
        last_index = ops.expand_dims(ops.maximum(lengths - 1, 0), 1)
        last = ops.take(end_transitions, ops.take_along_axis(tags, last_index, axis=1)[:, 0])
        score = score + ops.where(non_empty, last, ops.zeros_like(last))
    return score


def _clean_tags(tag_indices, mask):
    """Gold tags as int32 with padded positions (which may hold -1 etc.) set to 0."""
    tags = ops.cast(ops.convert_to_tensor(tag_indices), "int32")
    return ops.where(mask, tags, ops.zeros_like(tags))


def _gold_tags(tag_indices, lengths, mask):
    """Gold tags aligned with the inputs' time axis: ``(tags [B, T] int32, too_short)``.

    Tags past the inputs' ``T`` positions are ignored (tfa does the same), padded positions are
    set to 0. Fewer tag positions than ``T`` is an error when both lengths are static. Inside a
    graph with a dynamic time axis it cannot be checked while tracing: the tags are then padded
    with 0 and ``too_short`` (``[B]`` bool, else ``None``) marks the sequences longer than the
    tags given, whose scores ``_flag_too_short`` turns into NaN rather than a wrong number.
    """
    tags = ops.cast(ops.convert_to_tensor(tag_indices), "int32")
    if len(tags.shape) != 2:
        raise ValueError(
            f"tag_indices must be [batch_size, max_seq_len] integers, got shape {tags.shape}"
        )
    given, max_len = tags.shape[1], mask.shape[1]
    too_short = None
    if given is not None and max_len is not None:
        if given < max_len:
            raise ValueError(
                f"tag_indices has {given} positions per sequence but the inputs have "
                f"{max_len}: pass one tag per input position (any value, e.g. 0 or -1, past a "
                "sequence's length); tags past the inputs' positions are ignored"
            )
        if given > max_len:
            tags = tags[:, :max_len]
    else:
        too_short = lengths > ops.shape(tags)[1]
        padding = ops.zeros_like(mask, dtype="int32")
        tags = ops.concatenate([tags, padding], axis=1)[:, : ops.shape(mask)[1]]
    return ops.where(mask, tags, ops.zeros_like(tags)), too_short


def _flag_too_short(score, too_short):
    """NaN where ``too_short`` (see ``_gold_tags``): never a silently wrong score."""
    if too_short is None:
        return score
    return ops.where(too_short, ops.full_like(score, float("nan")), score)


def crf_unary_score(tag_indices, sequence_lengths, inputs):
    """Sum of the emission scores of the given tags (tfa argument order).

    Args:
        tag_indices: ``[B, T]`` int tags (more positions than ``inputs``: the extra ones are
            ignored); values past a sequence's length are ignored.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        inputs: ``[B, T, K]`` emission scores.

    Returns:
        ``[B]`` unary scores.
    """
    inputs = ops.convert_to_tensor(inputs)
    result_dtype = _result_dtype(inputs)
    inputs = ops.cast(inputs, _compute_dtype(inputs))
    shape = ops.shape(inputs)
    lengths = _lengths(sequence_lengths, shape[0], shape[1])
    mask = _mask_from_lengths(lengths, shape[1])
    tags, too_short = _gold_tags(tag_indices, lengths, mask)
    return _cast_result(_flag_too_short(_unary(inputs, tags, mask), too_short), result_dtype)


def crf_binary_score(tag_indices, sequence_lengths, transition_params):
    """Sum of the transition scores between consecutive real tags (tfa argument order).

    Args:
        tag_indices: ``[B, T]`` int tags; values past a sequence's length are ignored.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores, ``[from, to]``.

    Returns:
        ``[B]`` binary scores (0 for sequences of length 0 or 1).
    """
    tag_indices = ops.convert_to_tensor(tag_indices)
    transition_params = ops.convert_to_tensor(transition_params)
    shape = ops.shape(tag_indices)
    mask = _mask_from_lengths(_lengths(sequence_lengths, shape[0], shape[1]), shape[1])
    trans = ops.cast(transition_params, _compute_dtype(transition_params))
    score = _binary(_clean_tags(tag_indices, mask), mask, trans)
    return _cast_result(score, _result_dtype(transition_params))


def crf_sequence_score(
    inputs,
    tag_indices,
    sequence_lengths,
    transition_params,
    start_transitions=None,
    end_transitions=None,
):
    """Unnormalised score of given tag sequences: unary + binary (+ boundary) scores.

    Args:
        inputs: ``[B, T, K]`` emission scores (unary potentials).
        tag_indices: ``[B, T]`` int tags (more positions than ``inputs``: the extra ones are
            ignored); values past a sequence's length (padding, even -1)
            are ignored.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``[B]`` scores; 0 for length 0, the unary (+ boundary) score for length 1.

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 3, 2), "float32"); x[0, :, 1] = 1.0
    >>> trans = np.array([[0.0, 2.0], [0.0, 0.0]], "float32")
    >>> float(crf_sequence_score(x, [[0, 1, 1]], [3], trans)[0])  # 0+1+1 unary, 2 binary
    4.0
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(inputs))
    inputs, lengths, mask, trans, start, end = _prepare(
        inputs, sequence_lengths, transition_params, start_transitions, end_transitions
    )
    tags, too_short = _gold_tags(tag_indices, lengths, mask)
    score = _unary(inputs, tags, mask) + _binary(tags, mask, trans)
    if start is not None or end is not None:
        score = score + _boundary(tags, lengths, start, end, inputs.dtype)
    return _cast_result(_flag_too_short(score, too_short), result_dtype)


# --------------------------------------------------------------------------------------------
# Forward algorithm, log-likelihood
# --------------------------------------------------------------------------------------------


def _forward_alphas(inputs, lengths, trans, start):
    """Forward algorithm over the whole (padded) time axis. Returns ``[T, B, K]`` alphas.

    ``alphas[t, b, j]`` is the log-sum of the exp-scores of all tag prefixes ending in tag ``j``
    at position ``t`` (the emission of ``t`` and the start score included).

    Fast path: ``log sum_i exp(alpha_i + trans_ij)`` is computed as
    ``top + c_j + log(sum_i exp(alpha_i - top) * exp(trans_ij - c_j))`` with ``top`` the best
    alpha and ``c_j`` the column maximum of the transitions: one ``[B, K] x [K, K]`` matrix
    product per step instead of a ``[B, K, K]`` log-sum-exp. Terms that underflow are below
    ``1e-38`` of ``top``, so a sum of at least ``_MASS_FLOOR`` is exact to float32 precision. If
    some real position of the batch sums to less (a tag reachable only from tags far below the
    best one, e.g. with very confident emissions), the batch is recomputed with the exact
    log-sum-exp recursion (``ops.cond``, outside the loop).
    """
    if _use_compiled(inputs):
        return _run_compiled(_forward_alphas_compiled, (inputs, lengths, trans, start))
    return _forward_alphas_loop(inputs, lengths, trans, start)


def _forward_alphas_loop(inputs, lengths, trans, start):
    """``_forward_alphas`` as op-by-op ``keras.ops.scan`` loops (every backend, TF eager)."""
    first = inputs[:, 0] if start is None else inputs[:, 0] + start
    column_max = ops.stop_gradient(ops.max(trans, axis=0))  # [K]; the result does not depend on it
    exp_trans = ops.exp(trans - column_max)  # [K(from), K(to)], column maxima are 1
    xs = _next_positions(inputs)
    offsets = xs + column_max

    def step(alpha, offset):
        top = ops.stop_gradient(ops.max(alpha, axis=1, keepdims=True))
        mass = ops.matmul(ops.exp(alpha - top), exp_trans)
        alpha = ops.log(ops.maximum(mass, _MASS_FLOOR)) + top + offset
        return alpha, alpha

    _, alphas = ops.scan(step, first, offsets)
    alphas = _scan_outputs(alphas, xs, first)
    # Recover log(mass) of every real position t >= 1 outside the loop (to ~1e-7 relative of
    # the scores, hence the margin of 1 nat) and fall back where it may have underflowed.
    tops = ops.max(alphas, axis=2, keepdims=True)[:-1]
    log_mass = alphas[1:] - tops - offsets[:-1]
    real = ops.expand_dims(ops.transpose(_mask_from_lengths(lengths, ops.shape(inputs)[1])), 2)
    underflow = ops.any(ops.logical_and(real[1:], log_mass < _LOG_MASS_FLOOR + 1.0))
    return ops.cond(
        underflow, lambda: _forward_alphas_logsumexp(first, xs, trans), lambda: alphas
    )


def _forward_alphas_logsumexp(first, xs, trans):
    """The exact log-space forward recursion (``[B, K, K]`` log-sum-exp per step)."""
    trans = ops.expand_dims(trans, 0)  # [1, K(from), K(to)]

    def step(alpha, emissions):
        alpha = ops.logsumexp(ops.expand_dims(alpha, 2) + trans, axis=1) + emissions
        return alpha, alpha

    _, alphas = ops.scan(step, first, xs)
    return _scan_outputs(alphas, xs, first)


def _log_norm(alphas, lengths, end):
    last = _at_last_position(alphas, lengths)
    if end is not None:
        last = last + end
    log_norm = ops.logsumexp(last, axis=1)
    return ops.where(lengths > 0, log_norm, ops.zeros_like(log_norm))


def _gold_path_shift(inputs, tags, lengths, mask, trans, start, end):
    """Per-position scores of the gold path, to run the forward algorithm relative to it.

    ``log p(y | x) = score(y) - log Z = -log sum_y' exp(score(y') - score(y))``. Subtracting
    the gold path's score at each position (emission, incoming transition, start score) from
    every tag's emission there, and its end score from the end scores, makes the forward values
    the size of the log-likelihood rather than of ``log Z``: float32 then rounds to a fraction
    of the log-likelihood, not of the (much larger) sequence scores, so the probabilities of all
    paths sum to 1 within 1e-6 and the gradient keeps its precision on long sequences.

    Terms at or below ``_SHIFT_FLOOR`` (forbidden transitions, ``-inf`` emissions of filtered
    tags) are not shifted, so that a gold path breaking a constraint does not blow the forward
    values up to 1e4; they are returned apart and added back exactly.

    Returns:
        ``(shift [B, T], rest [B], end)``: ``log p(y | x) = rest - log Z(inputs - shift, end)``,
        with ``end`` ``[B, K]`` relative to the gold last tag's end score (or ``None``).
    """
    zeros = ops.zeros_like(inputs[..., 0])  # [B, T]
    unary = ops.take_along_axis(inputs, ops.expand_dims(tags, 2), axis=2)[..., 0]
    num_tags = ops.shape(trans)[0]
    binary = ops.take(ops.reshape(trans, (-1,)), tags[:, :-1] * num_tags + tags[:, 1:])
    first = zeros[:, :1] if start is None else ops.expand_dims(ops.take(start, tags[:, 0]), 1)
    terms = ops.stack([unary, ops.concatenate([first, binary], axis=1)], axis=2)  # [B, T, 2]
    terms = ops.where(ops.expand_dims(mask, 2), terms, ops.zeros_like(terms))
    shifted = terms > _SHIFT_FLOOR
    shift = ops.sum(ops.where(shifted, terms, ops.zeros_like(terms)), axis=2)
    rest = ops.sum(ops.where(shifted, ops.zeros_like(terms), terms), axis=(1, 2))
    if end is not None:
        last_tag = ops.take_along_axis(tags, ops.expand_dims(ops.maximum(lengths - 1, 0), 1), 1)
        gold_end = ops.take(end, last_tag)  # [B, 1]
        gold_end = ops.where(ops.expand_dims(lengths > 0, 1), gold_end, ops.zeros_like(gold_end))
        end_shifted = gold_end > _SHIFT_FLOOR
        end = end - ops.where(end_shifted, gold_end, ops.zeros_like(gold_end))  # [B, K]
        rest = rest + ops.where(end_shifted, ops.zeros_like(gold_end), gold_end)[:, 0]
    return shift, rest, end


def crf_log_norm(
    inputs, sequence_lengths, transition_params, start_transitions=None, end_transitions=None
):
    """Log partition function (log of the sum of exp-scores of all paths) by the forward algorithm.

    Args:
        inputs: ``[B, T, K]`` emission scores.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``[B]`` log-norms; 0 for length-0 sequences.

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2), "float32")
    >>> round(float(crf_log_norm(x, [2], np.zeros((2, 2), "float32"))[0]), 4)  # log(4 paths)
    1.3863
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(inputs))
    inputs, lengths, _, trans, start, end = _prepare(
        inputs, sequence_lengths, transition_params, start_transitions, end_transitions
    )
    if _use_compiled(inputs):
        log_norm = _log_norm_compiled(inputs, lengths, trans, start, end)
    else:
        log_norm = _log_norm(_forward_alphas(inputs, lengths, trans, start), lengths, end)
    return _cast_result(log_norm, result_dtype)


def crf_log_likelihood(
    inputs,
    tag_indices,
    sequence_lengths,
    transition_params=None,
    start_transitions=None,
    end_transitions=None,
):
    """Log-likelihood of tag sequences under the CRF: sequence score minus log-norm.

    Args:
        inputs: ``[B, T, K]`` emission scores.
        tag_indices: ``[B, T]`` int gold tags (ignored past each length and past ``T``).
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores ``[from, to]``. Required (``None``, tfa's
            default, raises ``ValueError``): unlike tfa, no variable is ever created here.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``(log_likelihood [B], transition_params [K, K])`` as in tfa; the log-likelihood is 0 for
        length-0 sequences.

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2), "float32")
    >>> ll, _ = crf_log_likelihood(x, [[0, 1]], [2], np.zeros((2, 2), "float32"))
    >>> round(float(ll[0]), 4)  # one of 4 equally likely paths
    -1.3863
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(inputs))
    inputs, lengths, mask, trans, start, end = _prepare(
        inputs, sequence_lengths, transition_params, start_transitions, end_transitions
    )
    tags, too_short = _gold_tags(tag_indices, lengths, mask)
    if _use_compiled(inputs) or _use_jax_forward_backward(inputs):
        run = _log_likelihood_compiled if _use_compiled(inputs) else _log_likelihood_jax
        log_likelihood = run(inputs, tags, lengths, mask, trans, start, end)
        log_likelihood = _flag_too_short(log_likelihood, too_short)
        return _cast_result(log_likelihood, result_dtype), transition_params
    gold_shift, gold_rest, end = _gold_path_shift(inputs, tags, lengths, mask, trans, start, end)
    relative = inputs - ops.expand_dims(gold_shift, 2)
    log_norm = _log_norm(_forward_alphas(relative, lengths, trans, start), lengths, end)
    log_likelihood = _flag_too_short(gold_rest - log_norm, too_short)
    return _cast_result(log_likelihood, result_dtype), transition_params


# --------------------------------------------------------------------------------------------
# Forward-backward marginals
# --------------------------------------------------------------------------------------------


def _reverse_sequences(inputs, lengths):
    """Reverses the first ``lengths[b]`` positions of each row of ``[B, T, K]``; padding stays."""
    max_len = ops.shape(inputs)[1]
    positions = ops.expand_dims(ops.arange(max_len, dtype="int32"), 0)  # [1, T]
    lengths = ops.expand_dims(lengths, 1)
    index = ops.where(positions < lengths, lengths - 1 - positions, positions)  # an involution
    return ops.take_along_axis(inputs, ops.expand_dims(index, 2), axis=1)


def crf_marginals(
    inputs, sequence_lengths, transition_params, start_transitions=None, end_transitions=None
):
    """Per-position marginal tag probabilities ``p(y_t = k | x)`` by forward-backward.

    The backward pass is the forward algorithm run on each sequence reversed, with the
    transitions transposed and the end scores as start scores.

    Args:
        inputs: ``[B, T, K]`` emission scores.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``[B, T, K]`` probabilities; each real position sums to 1, padded positions are 0.

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2), "float32")
    >>> m = crf_marginals(x, [1], np.zeros((2, 2), "float32"))
    >>> np.asarray(m).round(2).tolist()
    [[[0.5, 0.5], [0.0, 0.0]]]
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(inputs))
    inputs, lengths, mask, trans, start, end = _prepare(
        inputs, sequence_lengths, transition_params, start_transitions, end_transitions
    )
    alphas = _forward_alphas(inputs, lengths, trans, start)  # [T, B, K]
    # Reversed forward scores at reversed position L-1-t = beta_t + emission_t (in [B, T, K]).
    reversed_alphas = _forward_alphas(
        _reverse_sequences(inputs, lengths), lengths, ops.transpose(trans), end
    )
    betas_and_emissions = _reverse_sequences(_time_major(reversed_alphas), lengths)
    # p(y_t = k) = softmax_k(alpha_t + beta_t): normalising per position rather than subtracting
    # log Z keeps float32 precise when the scores are large.
    marginals = ops.softmax(_time_major(alphas) + betas_and_emissions - inputs, axis=-1)
    marginals = ops.where(ops.expand_dims(mask, 2), marginals, ops.zeros_like(marginals))
    return _cast_result(marginals, result_dtype)


# --------------------------------------------------------------------------------------------
# Viterbi decoding
# --------------------------------------------------------------------------------------------


def crf_decode(
    potentials,
    transition_params,
    sequence_length,
    start_transitions=None,
    end_transitions=None,
):
    """Highest-scoring tag sequences (Viterbi), in the graph.

    Args:
        potentials: ``[B, T, K]`` emission scores.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        sequence_length: ``[B]`` int lengths, or ``None`` for all ``T``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``(decode_tags [B, T] int32, best_score [B])``. Positions past a sequence's length hold
        tag 0; a length-0 sequence decodes to all zeros with best score 0. Ties resolve to the
        lowest tag id.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]]], "float32")
    >>> tags, score = crf_decode(x, np.zeros((2, 2), "float32"), [2])
    >>> np.asarray(tags).tolist(), float(score[0])
    ([[1, 0, 0]], 2.0)
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(potentials))
    inputs, lengths, mask, trans, start, end = _prepare(
        potentials, sequence_length, transition_params, start_transitions, end_transitions
    )
    if _use_compiled(inputs):
        args = (inputs, lengths, mask, trans, start, end)
        tags, best_score = _run_compiled(_decode_compiled, args)
        return tags, _cast_result(best_score, result_dtype)
    if _use_jax_formulation():
        tags, best_score = _decode_compiled(inputs, lengths, mask, trans, start, end, ops.scan)
        return tags, _cast_result(best_score, result_dtype)
    first = inputs[:, 0] if start is None else inputs[:, 0] + start
    xs = _next_positions(inputs)
    static_tags = inputs.shape[-1]
    if static_tags is not None and static_tags <= _BACKPOINTER_MAX_TAGS:
        tags, last_score = _viterbi_with_backpointers(first, xs, lengths, mask, trans, end)
    else:
        tags, last_score = _viterbi_recomputing_predecessors(first, xs, lengths, mask, trans, end)
    tags = ops.where(mask, tags, ops.zeros_like(tags))
    best_score = ops.max(last_score, axis=1)
    best_score = ops.where(lengths > 0, best_score, ops.zeros_like(best_score))
    return tags, _cast_result(best_score, result_dtype)


# Two ways to the same Viterbi path (ties resolve to the lowest tag id in both), chosen by the
# number of tags. With few tags each loop step is cheap and the loop's fixed cost per step
# dominates, so the forward loop keeps the best predecessor of every tag (one top_k gives
# score and index) and the backward loop only looks them up. With many tags the [B, K, K]
# top_k/argmax of every step dominates (at K = 41 it costs as much as the max itself), so the
# forward loop keeps only the max and the backward loop recomputes the predecessor of the one
# chosen tag from the same sums ([B, K] per step). Measured on 2 CPU cores, batch 64, length 128:
# backpointers are ~10 % faster at K = 7, recomputing ~35 % faster at K = 41 (BENCHMARKS.md).
_BACKPOINTER_MAX_TAGS = 16

# Up to this many tags, _decode_compiled unrolls the max over the previous tag (the trace, and
# XLA's compile time, grow with K).
_UNROLLED_MAX_TAGS = 64


def _backtrack_outputs(tags, max_len, batch):
    """Backward-scan outputs ``[T, B]`` (position order) -> ``[B, T]`` int32."""
    return ops.transpose(ops.reshape(tags, (max_len, batch)), (1, 0))


def _viterbi_with_backpointers(first, xs, lengths, mask, trans, end):
    """``(tags [B, T], last_score [B, K])``, backpointers stored by the forward loop."""
    shape = ops.shape(xs)
    max_len, batch, num_tags = shape[0], shape[1], shape[2]
    to_from = ops.expand_dims(ops.transpose(trans), 0)  # [1, K(to), K(from)]

    def forward_step(carry, emissions):
        score, _ = carry
        # top_k over the last axis gives the best predecessor's score and index in one op.
        best, backpointer = ops.top_k(ops.expand_dims(score, 1) + to_from, 1)
        score = best[..., 0] + emissions
        backpointer = ops.cast(backpointer[..., 0], "int32")  # [B, K(to)] -> K(from)
        return (score, backpointer), (score, backpointer)

    identity = ops.broadcast_to(ops.arange(num_tags, dtype="int32"), ops.shape(first))
    _, (scores, backpointers) = ops.scan(forward_step, (first, identity), xs)
    last_score = _at_last_position(_scan_outputs(scores, xs, first), lengths)
    if end is not None:
        last_score = last_score + end
    # backpointers[t] maps the tag at t to the best tag at t - 1; padded positions (and position
    # 0) point to themselves, so back-tracking from T - 1 walks unchanged down to the last real
    # position.
    backpointers = _scan_outputs(backpointers, xs, identity)
    backpointers = ops.where(
        ops.expand_dims(ops.transpose(mask), 2), backpointers, ops.expand_dims(identity, 0)
    )
    last_tag = ops.cast(ops.argmax(last_score, axis=1), "int32")  # [B]
    offsets = ops.arange(batch, dtype="int32") * num_tags

    def backward_step(tag, backpointer):
        previous = ops.take(ops.reshape(backpointer, (-1,)), offsets + tag)
        return previous, tag  # the output at position t is the tag of position t

    _, tags = ops.scan(backward_step, last_tag, backpointers, reverse=True)
    return _backtrack_outputs(tags, max_len, batch), last_score


def _viterbi_recomputing_predecessors(first, xs, lengths, mask, trans, end):
    """``(tags [B, T], last_score [B, K])``, the chosen tag's predecessor recomputed going back."""
    shape = ops.shape(xs)
    max_len, batch, num_tags = shape[0], shape[1], shape[2]
    from_to = ops.expand_dims(trans, 0)  # [1, K(from), K(to)]

    def forward_step(score, emissions):
        score = ops.max(ops.expand_dims(score, 2) + from_to, axis=1) + emissions
        return score, score

    _, scores = ops.scan(forward_step, first, xs)
    scores = _scan_outputs(scores, xs, first)  # [T, B, K]: best score ending in each tag
    last_score = _at_last_position(scores, lengths)
    if end is not None:
        last_score = last_score + end
    last_tag = ops.cast(ops.argmax(last_score, axis=1), "int32")  # [B]

    # Going down from T - 1: the best predecessor of the next position's tag, from the same
    # sums as the forward max; the tag is carried unchanged while the next position is padding.
    to_from = ops.transpose(trans)  # [K(to), K(from)]
    time_mask = ops.transpose(mask)  # [T, B]
    next_is_real = ops.concatenate([time_mask[1:], ops.zeros_like(time_mask[:1])], axis=0)

    def backward_step(next_tag, inputs):
        score, real = inputs[:, :-1], inputs[:, -1] > 0
        best = ops.cast(ops.argmax(score + ops.take(to_from, next_tag, axis=0), axis=1), "int32")
        tag = ops.where(real, best, next_tag)
        return tag, tag

    # One scanned tensor [T, B, K + 1] (scores, then the flag): TensorFlow's ops.scan fails on
    # several inputs of dynamic length, and needs their rank.
    packed = ops.concatenate(
        [scores, ops.expand_dims(ops.cast(next_is_real, scores.dtype), 2)], axis=2)
    packed = ops.reshape(packed, (max_len, batch, num_tags + 1))
    _, tags = ops.scan(backward_step, last_tag, packed, reverse=True)
    return _backtrack_outputs(tags, max_len, batch), last_score


def _forward_alphas_compiled(inputs, lengths, trans, start):
    """``_forward_alphas`` for the compiled path (see ``_forward_alphas_and_underflow``)."""
    return _forward_alphas_and_underflow(inputs, lengths, trans, start)[0]


def _forward_alphas_and_underflow(inputs, lengths, trans, start):
    """``(alphas [T, B, K], underflow)``: ``_forward_alphas`` for the compiled path.

    The same arithmetic, and ``underflow`` (scalar bool) tells whether the exact recursion was
    used. On TensorFlow, XLA cannot differentiate an ``ops.cond`` around a loop, so the exact
    loop always exists but runs 0 steps unless the fast one may have underflowed, and
    ``ops.where`` picks the result; on JAX it is an ``ops.cond``.
    """
    first = inputs[:, 0] if start is None else inputs[:, 0] + start
    column_max = ops.stop_gradient(ops.max(trans, axis=0))
    exp_trans = ops.exp(trans - column_max)
    xs = _next_positions(inputs)
    offsets = xs + column_max

    def step(alpha, offset):
        top = ops.stop_gradient(ops.max(alpha, axis=1, keepdims=True))
        mass = ops.matmul(ops.exp(alpha - top), exp_trans)
        alpha = ops.log(ops.maximum(mass, _MASS_FLOOR)) + top + offset
        return alpha, alpha

    tensorflow = keras.backend.backend() == "tensorflow"
    _, alphas = (_xla_scan if tensorflow else ops.scan)(step, first, offsets)
    alphas = _scan_outputs(alphas, xs, first)
    tops = ops.max(alphas, axis=2, keepdims=True)[:-1]
    log_mass = alphas[1:] - tops - offsets[:-1]
    real = ops.expand_dims(ops.transpose(_mask_from_lengths(lengths, ops.shape(inputs)[1])), 2)
    underflow = ops.any(ops.logical_and(real[1:], log_mass < _LOG_MASS_FLOOR + 1.0))
    from_to = ops.expand_dims(trans, 0)

    def exact_step(alpha, emissions):
        alpha = ops.logsumexp(ops.expand_dims(alpha, 2) + from_to, axis=1) + emissions
        return alpha, alpha

    if not tensorflow:  # JAX: the cond is never differentiated (see _log_likelihood_jax)
        exact = ops.cond(
            underflow,
            lambda: _scan_outputs(ops.scan(exact_step, first, xs)[1], xs, first),
            lambda: alphas,
        )
        return exact, underflow
    steps = ops.where(underflow, ops.shape(xs)[0], 0)
    _, exact = _xla_scan(exact_step, first, xs, steps=steps)
    return ops.where(underflow, _scan_outputs(exact, xs, first), alphas), underflow


def _log_norm_compiled(inputs, lengths, trans, start, end):
    """``[B]`` log-norms for the compiled path, with the forward-backward gradient.

    The forward loop runs XLA-compiled (``_forward_alphas_and_underflow``); the gradient is the
    textbook one of the forward-backward algorithm (``crf_marginals``: one more compiled loop
    over the reversed sequences, then whole-tensor products) rather than the loop run backwards,
    where the fast forward path was valid; otherwise (a batch that took the exact log-sum-exp
    fallback) the gradient of the recomputed forward pass.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def call(*diff):
        x, tr, st, en = _unpack_optional(diff, start, end)
        # The tape must not look into the compiled function (its loop's accumulators would
        # have to leave it): the gradient is grad's alone.
        log_norm, alphas, underflow = _compiled(_log_norm_forward)(
            *_no_gradient(x, lengths, tr, st, en)
        )

        def grad(upstream):
            grads = _compiled(_log_norm_gradient)(
                x, lengths, tr, st, en, alphas, underflow, upstream
            )
            return _present(grads, start, end)

        return log_norm, grad

    return call(*[v for v in (inputs, trans, start, end) if v is not None])


def _unpack_optional(diff, start, end):
    """``(inputs, trans, start, end)`` from the differentiable arguments of a custom gradient."""
    diff = list(diff)
    x, tr = diff.pop(0), diff.pop(0)
    st = diff.pop(0) if start is not None else None
    en = diff.pop(0) if end is not None else None
    return x, tr, st, en


def _present(grads, start, end):
    """The gradients of ``(inputs, trans, start, end)`` for the arguments that are not None."""
    return [g for g, v in zip(grads, (True, True, start, end)) if v is not None]


def _log_likelihood_compiled(inputs, tags, lengths, mask, trans, start, end):
    """``[B]`` log-likelihoods for the compiled path: one compiled function forward, one back.

    The forward function computes ``crf_log_likelihood`` (gold-path shift, forward loop); the
    backward one differentiates the loop-free parts under a tape and takes the log-norm's
    gradient from ``_log_norm_gradient`` with the forward pass's alphas.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def call(*diff):
        x, tr, st, en = _unpack_optional(diff, start, end)
        log_likelihood, alphas, underflow = _compiled(_log_likelihood_forward)(
            *_no_gradient(x, tags, lengths, mask, tr, st, en)
        )

        def grad(upstream):
            grads = _compiled(_log_likelihood_gradient)(
                x, tags, lengths, mask, tr, st, en, alphas, underflow, upstream
            )
            return _present(grads, start, end)

        return log_likelihood, grad

    return call(*[v for v in (inputs, trans, start, end) if v is not None])


def _log_likelihood_jax(inputs, tags, lengths, mask, trans, start, end):
    """``_log_likelihood_compiled`` for JAX: ``jax.custom_vjp`` with the same two halves.

    Differentiating the forward loop and its exact fallback (an ``ops.cond`` around a second
    loop) costs JAX more than the forward-backward gradient (10x at 41 tags).
    """
    import jax

    @jax.custom_vjp
    def log_likelihood(x, tr, st, en):
        return _log_likelihood_forward(x, tags, lengths, mask, tr, st, en)[0]

    def forward(x, tr, st, en):
        value, alphas, underflow = _log_likelihood_forward(x, tags, lengths, mask, tr, st, en)
        return value, (x, tr, st, en, alphas, underflow)

    def backward(saved, upstream):
        x, tr, st, en, alphas, underflow = saved
        grads = _log_likelihood_gradient(
            x, tags, lengths, mask, tr, st, en, alphas, underflow, upstream
        )
        return tuple(g if v is not None else None for g, v in zip(grads, (x, tr, st, en)))

    log_likelihood.defvjp(forward, backward)
    return log_likelihood(inputs, trans, start, end)


def _log_likelihood_forward(inputs, tags, lengths, mask, trans, start, end):
    shift, rest, end = _gold_path_shift(inputs, tags, lengths, mask, trans, start, end)
    relative = inputs - ops.expand_dims(shift, 2)
    log_norm, alphas, underflow = _log_norm_forward(relative, lengths, trans, start, end)
    return rest - log_norm, alphas, underflow


def _log_likelihood_gradient(
    inputs, tags, lengths, mask, trans, start, end, alphas, underflow, upstream
):
    """Gradients of ``sum(upstream * log_likelihood)`` w.r.t. ``inputs, trans, start, end``.

    ``log p(y | x) = rest - log Z(relative, trans, start, end_relative)`` (``_gold_path_shift``):
    the loop-free shift is differentiated by the backend, ``log Z`` by ``_log_norm_gradient``
    from the forward pass's alphas.
    """

    def shifted(*diff):
        x, tr, st, en = _unpack_optional(diff, start, end)
        shift, rest, end_relative = _gold_path_shift(x, tags, lengths, mask, tr, st, en)
        return rest, x - ops.expand_dims(shift, 2), end_relative

    args = [inputs, trans, start, end]
    present = [v for v in args if v is not None]
    _, relative, end_relative = shifted(*present)
    log_norm_grads = _log_norm_gradient(
        relative, lengths, trans, start, end_relative, alphas, underflow, -upstream
    )
    # log_norm's gradient flows to relative (-> inputs, trans, start via the shift), and
    # directly to trans, start and end_relative (-> end).
    grad_relative, grad_trans, grad_start, grad_end_relative = log_norm_grads

    def through_shift(*diff):
        rest, relative, end_relative = shifted(*diff)
        total = ops.sum(rest * upstream) + ops.sum(relative * ops.stop_gradient(grad_relative))
        if end_relative is not None:
            total = total + ops.sum(end_relative * ops.stop_gradient(grad_end_relative))
        return total

    grads = _vjp(through_shift, args, ops.ones((), dtype=inputs.dtype))
    grads[1] = grads[1] + grad_trans
    if start is not None:
        grads[2] = grads[2] + grad_start
    return grads


def _log_norm_forward(inputs, lengths, trans, start, end):
    alphas, underflow = _forward_alphas_and_underflow(inputs, lengths, trans, start)
    return _log_norm(alphas, lengths, end), alphas, underflow


def _log_norm_gradient(inputs, lengths, trans, start, end, alphas, underflow, upstream):
    """Gradients of ``sum(upstream * log_norm)`` w.r.t. ``inputs, trans, start, end``."""

    def recomputed():
        def log_norm(*diff):
            x, tr, st, en = _unpack_optional(diff, start, end)
            return _log_norm_forward(x, lengths, tr, st, en)[0]

        return _vjp(log_norm, [inputs, trans, start, end], upstream)

    def forward_backward():
        mask = _mask_from_lengths(lengths, ops.shape(inputs)[1])  # [B, T]
        reversed_alphas, _ = _forward_alphas_and_underflow(
            _reverse_sequences(inputs, lengths), lengths, ops.transpose(trans), end
        )
        betas_and_emissions = _reverse_sequences(_time_major(reversed_alphas), lengths)
        batch_alphas = _time_major(alphas)  # [B, T, K]
        marginals = ops.softmax(batch_alphas + betas_and_emissions - inputs, axis=-1)
        marginals = ops.where(ops.expand_dims(mask, 2), marginals, ops.zeros_like(marginals))
        weights = ops.expand_dims(ops.expand_dims(upstream, 1), 2)  # [B, 1, 1]
        grad_inputs = marginals * weights
        # Pairwise marginals of (t - 1, i) -> (t, j), summed: with a_i = exp(alpha_{t-1,i} -
        # max) and E = exp(trans - column max), the forward step's mass_j = (a E)_j satisfies
        # alpha_tj = log mass_j + max + column max_j + emission_tj, so the pair's probability
        # is a_i E_ij p_tj / mass_j (p the marginals), and mass_j >= _MASS_FLOOR here.
        column_max = ops.max(trans, axis=0)
        exp_trans = ops.exp(trans - column_max)
        previous = batch_alphas[:, :-1]
        a = ops.exp(previous - ops.max(previous, axis=2, keepdims=True))
        num_tags = ops.shape(trans)[0]
        a = ops.reshape(a, (-1, num_tags))
        mass = ops.matmul(a, exp_trans)
        later = ops.reshape(grad_inputs[:, 1:], (-1, num_tags))  # 0 at padded positions
        ratio = later / ops.maximum(mass, _MASS_FLOOR)
        grad_trans = exp_trans * ops.matmul(ops.transpose(a), ratio)
        grad_start = ops.sum(grad_inputs[:, 0], axis=0)
        if end is not None:
            last = _at_last_position(alphas, lengths) + end
            end_weights = ops.where(lengths > 0, upstream, ops.zeros_like(upstream))
            grad_end = ops.softmax(last, axis=-1) * ops.expand_dims(end_weights, 1)
            if len(end.shape) == 1:  # [K] end scores; crf_log_likelihood passes [B, K]
                grad_end = ops.sum(grad_end, axis=0)
        else:
            grad_end = ops.zeros_like(inputs[0, 0])
        if start is None:
            grad_start = ops.zeros_like(inputs[0, 0])
        return [grad_inputs, grad_trans, grad_start, grad_end]

    return ops.cond(underflow, recomputed, forward_backward)


def _vjp(fn, args, upstream):
    """Gradients of ``sum(upstream * fn(*present args))`` for each of ``args`` (zeros for None).

    ``fn`` takes the arguments that are not ``None``; TensorFlow tape or ``jax.vjp``.
    """
    present = [v for v in args if v is not None]
    if keras.backend.backend() == "jax":
        import jax

        _, pullback = jax.vjp(fn, *present)
        grads = list(pullback(upstream))
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(present)
            value = fn(*present)
        grads = tape.gradient(value, present, output_gradients=upstream)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, present)]
    placeholder = ops.zeros_like(args[0][0, 0])
    return [grads.pop(0) if v is not None else placeholder for v in args]


def _decode_compiled(inputs, lengths, mask, trans, start, end, scan=None):
    """``(tags [B, T], best_score [B])``: ``crf_decode``'s compiled-path Viterbi.

    The sums and tie-breaking (lowest tag id) of ``_viterbi_recomputing_predecessors``, the
    whole decode in one compiled function, the back-tracking loop over a tuple rather than a
    packed tensor. Recomputing the chosen tag's predecessor beats storing back-pointers here
    at every ``K``: XLA's arg-max over ``[B, K, K]`` each step costs more than the ``[B, K]``
    one going back (measured 1.4x at 7 tags, 3x at 41 on TensorFlow; more under JAX).
    """
    scan = scan or _xla_scan
    first = inputs[:, 0] if start is None else inputs[:, 0] + start
    xs = _next_positions(inputs)
    shape = ops.shape(xs)
    max_len, batch = shape[0], shape[1]
    from_to = ops.expand_dims(trans, 0)
    num_tags = inputs.shape[-1]

    def forward_step(score, emissions):
        if num_tags is not None and num_tags <= _UNROLLED_MAX_TAGS:
            # The max over the previous tag as K - 1 element-wise maxima of [B, K] sums, which
            # XLA fuses into one vectorised loop (its [B, K, K] reduction is ~2x slower on
            # CPU); max is exact, so the scores are the same bits.
            best = score[:, :1] + trans[0]
            for i in range(1, num_tags):
                best = ops.maximum(best, score[:, i : i + 1] + trans[i])
            score = best + emissions
        else:
            score = ops.max(ops.expand_dims(score, 2) + from_to, axis=1) + emissions
        return score, score

    _, scores = scan(forward_step, first, xs)
    scores = _scan_outputs(scores, xs, first)  # [T, B, K]
    last_score = _at_last_position(scores, lengths)
    if end is not None:
        last_score = last_score + end
    last_tag = ops.cast(ops.argmax(last_score, axis=1), "int32")
    time_mask = ops.transpose(mask)  # [T, B]
    next_is_real = ops.concatenate([time_mask[1:], ops.zeros_like(time_mask[:1])], axis=0)
    to_from = ops.transpose(trans)

    def backward_step(next_tag, x):
        score, real = x
        best = ops.argmax(score + ops.take(to_from, next_tag, axis=0), axis=1)
        tag = ops.where(real, ops.cast(best, "int32"), next_tag)
        return tag, tag

    _, tags = scan(backward_step, last_tag, (scores, next_is_real), reverse=True)
    tags = _backtrack_outputs(tags, max_len, batch)
    tags = ops.where(mask, tags, ops.zeros_like(tags))
    best_score = ops.max(last_score, axis=1)
    return tags, ops.where(lengths > 0, best_score, ops.zeros_like(best_score))


# --------------------------------------------------------------------------------------------
# The rest of tfa.text.crf: tag bitmaps, tfa's building blocks, numpy Viterbi
# --------------------------------------------------------------------------------------------


def crf_filtered_inputs(inputs, tag_bitmap):
    """Emission scores with the tags ruled out by ``tag_bitmap`` set to ``-inf`` (as tfa).

    Args:
        inputs: ``[B, T, K]`` emission scores.
        tag_bitmap: ``[B, T, K]`` bool (or 0/1), true for the tags allowed at each position.

    Returns:
        ``[B, T, K]`` tensor in the dtype of ``inputs`` (float32 for integer inputs):
        ``inputs`` where allowed, ``-inf`` elsewhere.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float32")
    >>> np.asarray(crf_filtered_inputs(x, [[[True, False], [True, True]]])).tolist()
    [[[1.0, -inf], [3.0, 4.0]]]
    """
    inputs = ops.convert_to_tensor(inputs)
    inputs = ops.cast(inputs, _result_dtype(inputs))
    tag_bitmap = ops.cast(ops.convert_to_tensor(tag_bitmap), "bool")
    return ops.where(tag_bitmap, inputs, ops.full_like(inputs, float("-inf")))


def crf_multitag_sequence_score(
    inputs,
    tag_bitmap,
    sequence_lengths,
    transition_params,
    start_transitions=None,
    end_transitions=None,
):
    """Log of the summed exp-scores of all tag sequences that ``tag_bitmap`` allows (as tfa).

    For partially labelled data: where an observation is consistent with several tags, all of
    them count. ``crf_multitag_sequence_score(...) - crf_log_norm(...)`` is the log-likelihood of
    the observation; with one-hot bitmaps it equals ``crf_sequence_score``.

    Args:
        inputs: ``[B, T, K]`` emission scores.
        tag_bitmap: ``[B, T, K]`` bool, true for the tags allowed at each position; ignored past
            each sequence's length. A real position with no allowed tag gives ``-inf``.
        sequence_lengths: ``[B]`` int lengths, or ``None`` for all ``T``.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``[B]`` scores in the dtype of ``inputs``; 0 for length 0 (tfa returns the log-sum of
        the first position's allowed emissions there when ``T`` is 1, and 0 otherwise).

    Example:
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2), "float32")
    >>> bitmap = [[[True, True], [True, False]]]  # 2 of the 4 paths
    >>> round(float(crf_multitag_sequence_score(x, bitmap, [2], np.zeros((2, 2)))[0]), 4)
    0.6931
    """
    result_dtype = _result_dtype(ops.convert_to_tensor(inputs))
    inputs, lengths, mask, trans, start, end = _prepare(
        inputs, sequence_lengths, transition_params, start_transitions, end_transitions
    )
    tag_bitmap = ops.cast(ops.convert_to_tensor(tag_bitmap), "bool")
    # A position without any allowed tag would make the forward values NaN (and NaN gradients
    # leak even from discarded positions): such positions allow every tag in the forward pass,
    # and a sequence with one among its real positions scores -inf afterwards.
    no_tag = ops.logical_not(ops.any(tag_bitmap, axis=2))  # [B, T]
    no_path = ops.any(ops.logical_and(no_tag, mask), axis=1)  # [B]
    tag_bitmap = ops.logical_or(tag_bitmap, ops.expand_dims(no_tag, 2))
    filtered = ops.where(tag_bitmap, inputs, ops.full_like(inputs, float("-inf")))
    log_norm = _log_norm(_forward_alphas(filtered, lengths, trans, start), lengths, end)
    log_norm = ops.where(no_path, ops.full_like(log_norm, float("-inf")), log_norm)
    return _cast_result(log_norm, result_dtype)


def crf_constrained_decode(
    potentials,
    tag_bitmap,
    transition_params,
    sequence_length,
    start_transitions=None,
    end_transitions=None,
):
    """Viterbi decoding restricted to the tags ``tag_bitmap`` allows at each position (as tfa).

    Args:
        potentials: ``[B, T, K]`` emission scores.
        tag_bitmap: ``[B, T, K]`` bool, true for the tags allowed at each position.
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        sequence_length: ``[B]`` int lengths, or ``None`` for all ``T``.
        start_transitions: optional ``[K]`` scores of the first tag.
        end_transitions: optional ``[K]`` scores of the last real tag.

    Returns:
        ``(decode_tags [B, T] int32, best_score [B])`` as ``crf_decode`` on
        ``crf_filtered_inputs(potentials, tag_bitmap)``; the best score is ``-inf`` for a
        sequence with a real position where no tag is allowed.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[0.0, 1.0], [1.0, 0.0]]], "float32")
    >>> tags, _ = crf_constrained_decode(x, [[[True, False], [True, True]]], np.zeros((2, 2)), [2])
    >>> np.asarray(tags).tolist()
    [[0, 0]]
    """
    return crf_decode(
        crf_filtered_inputs(potentials, tag_bitmap),
        transition_params,
        sequence_length,
        start_transitions,
        end_transitions,
    )


def crf_forward(inputs, state, transition_params, sequence_lengths):
    """tfa's forward step: the alphas at each sequence's last position.

    Args:
        inputs: ``[B, T, K]`` emission scores of positions ``1 .. T`` (finite, padding included).
        state: ``[B, K]`` alphas of position 0 (its emissions, plus any start scores).
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        sequence_lengths: ``[B]`` int lengths counting position 0, so at most ``T + 1``.

    Returns:
        ``[B, K]`` alphas (log-sum of the exp-scores of the prefixes ending in each tag) at
        position ``max(length - 1, 0)``, in the dtype of ``inputs``. ``logsumexp`` over the
        tags is the log-norm.

    Example:
    >>> import numpy as np
    >>> alphas = crf_forward(np.zeros((1, 1, 2)), np.zeros((1, 2)), np.zeros((2, 2)), [2])
    >>> np.asarray(alphas).round(4).tolist()  # two prefixes end in each tag
    [[0.6931, 0.6931]]
    """
    inputs = ops.convert_to_tensor(inputs)
    result_dtype = _result_dtype(inputs)
    dtype = _compute_dtype(inputs)
    inputs = ops.cast(inputs, dtype)
    state = ops.cast(ops.convert_to_tensor(state), dtype)
    trans = ops.cast(ops.convert_to_tensor(transition_params), dtype)
    full = ops.concatenate([ops.expand_dims(state, 1), inputs], axis=1)  # [B, T + 1, K]
    shape = ops.shape(full)
    lengths = _lengths(sequence_lengths, shape[0], shape[1])
    # Always the op-by-op loop: tfa's building block gives the same bits in graphs as eagerly.
    alphas = _forward_alphas_loop(full, lengths, trans, None)
    return _cast_result(_at_last_position(alphas, lengths), result_dtype)


def crf_decode_forward(inputs, state, transition_params, sequence_lengths):
    """tfa's Viterbi forward pass: back-pointers and the best scores of the last real position.

    Args:
        inputs: ``[B, T, K]`` emission scores of positions ``1 .. T``.
        state: ``[B, K]`` best scores of position 0 (its emissions).
        transition_params: ``[K, K]`` transition scores ``[from, to]``.
        sequence_lengths: ``[B]`` int number of real steps in ``inputs`` (tfa's ``crf_decode``
            passes the sequence length minus one).

    Returns:
        ``(backpointers [B, T, K] int32, last_state [B, K])``: ``backpointers[b, t, j]`` is the
        best tag before tag ``j`` at step ``t`` (0 past each length, as tfa's masked RNN);
        ``last_state`` holds the best scores ending in each tag at the last real step (``state``
        for length 0), in the dtype of ``inputs``. Ties resolve to the lowest tag id.

    Example:
    >>> import numpy as np
    >>> trans = np.array([[0.0, 5.0], [0.0, 0.0]], "float32")
    >>> bp, last = crf_decode_forward(np.zeros((1, 1, 2)), np.zeros((1, 2)), trans, [1])
    >>> np.asarray(bp).tolist(), np.asarray(last).tolist()
    ([[[0, 0]]], [[0.0, 5.0]])
    """
    inputs = ops.convert_to_tensor(inputs)
    result_dtype = _result_dtype(inputs)
    dtype = _compute_dtype(inputs)
    inputs = ops.cast(inputs, dtype)
    state = ops.cast(ops.convert_to_tensor(state), dtype)
    trans = ops.cast(ops.convert_to_tensor(transition_params), dtype)
    shape = ops.shape(inputs)
    batch, max_len, num_tags = shape[0], shape[1], shape[2]
    if inputs.shape[1] == 0:
        return ops.zeros_like(inputs, dtype="int32"), _cast_result(state, result_dtype)
    mask = _mask_from_lengths(_lengths(sequence_lengths, batch, max_len), max_len)
    to_from = ops.expand_dims(ops.transpose(trans), 0)  # [1, K(to), K(from)]
    # One scanned tensor [T, B, K + 1] (emissions, then the real-step flag), as in
    # _viterbi_recomputing_predecessors.
    packed = ops.concatenate([inputs, ops.expand_dims(ops.cast(mask, dtype), 2)], axis=2)

    def step(carry, step_inputs):
        score, _ = carry
        emissions, real = step_inputs[:, :-1], step_inputs[:, -1:] > 0
        best, backpointer = ops.top_k(ops.expand_dims(score, 1) + to_from, 1)
        score = ops.where(real, best[..., 0] + emissions, score)
        backpointer = ops.cast(backpointer[..., 0], "int32")
        backpointer = ops.where(real, backpointer, ops.zeros_like(backpointer))
        # TensorFlow's ops.scan needs outputs of the carry's structure and dtypes.
        return (score, backpointer), (score, backpointer)

    initial = (state, ops.zeros_like(state, dtype="int32"))
    (last_state, _), (_, backpointers) = ops.scan(step, initial, _time_major(packed))
    backpointers = ops.reshape(backpointers, (max_len, batch, num_tags))
    return ops.transpose(backpointers, (1, 0, 2)), _cast_result(last_state, result_dtype)


def crf_decode_backward(inputs, state):
    """tfa's Viterbi back-tracking: follows back-pointers from a given last tag.

    Args:
        inputs: ``[B, T, K]`` int back-pointers in the order they are followed (tfa's
            ``crf_decode`` reverses each sequence's real steps first).
        state: ``[B, 1]`` int tag the tracking starts from.

    Returns:
        ``[B, T, 1]`` int32: the tag each step's back-pointer leads to.

    Example:
    >>> import numpy as np
    >>> backpointers = np.array([[[1, 0], [0, 0]]], "int32")  # step 0: 0 -> 1; step 1: -> 0
    >>> np.asarray(crf_decode_backward(backpointers, [[0]]))[..., 0].tolist()
    [[1, 0]]
    """
    inputs = ops.cast(ops.convert_to_tensor(inputs), "int32")
    state = ops.reshape(ops.cast(ops.convert_to_tensor(state), "int32"), (-1,))
    shape = ops.shape(inputs)
    batch, max_len = shape[0], shape[1]
    if inputs.shape[1] == 0:
        return ops.zeros_like(inputs[..., :1])

    def step(tag, backpointers):
        tag = ops.take_along_axis(backpointers, ops.expand_dims(tag, 1), axis=1)[:, 0]
        return tag, tag

    _, tags = ops.scan(step, state, _time_major(inputs))
    return ops.expand_dims(_backtrack_outputs(tags, max_len, batch), 2)


def viterbi_decode(score, transition_params):
    """Best tag sequence of one unpadded sentence, in numpy, outside the graph (as tfa).

    Args:
        score: ``[T, K]`` emission scores (array-like; ``T >= 1``).
        transition_params: ``[K, K]`` transition scores ``[from, to]``.

    Returns:
        ``(viterbi, viterbi_score)``: the ``T`` best tag ids as a list of ints and their score
        (a numpy scalar in the dtype of ``score``). Ties resolve to the lowest tag id.

    Example:
    >>> import numpy as np
    >>> tags, best = viterbi_decode(np.array([[0.0, 1.0], [1.0, 0.0]]), np.zeros((2, 2)))
    >>> tags, float(best)
    ([1, 0], 2.0)
    """
    score = np.asarray(score)
    transition_params = np.asarray(transition_params)
    if score.ndim != 2 or score.shape[0] == 0:
        raise ValueError(f"score must be [seq_len >= 1, num_tags], got shape {score.shape}")
    if transition_params.shape != (score.shape[1],) * 2:
        raise ValueError(
            f"transition_params must be [{score.shape[1]}, {score.shape[1]}] for "
            f"{score.shape[1]} tags, got shape {transition_params.shape}"
        )
    trellis = np.zeros_like(score)
    backpointers = np.zeros(score.shape, dtype=np.int32)
    trellis[0] = score[0]
    for t in range(1, score.shape[0]):
        candidates = np.expand_dims(trellis[t - 1], 1) + transition_params  # [from, to]
        trellis[t] = score[t] + np.max(candidates, axis=0)
        backpointers[t] = np.argmax(candidates, axis=0)
    viterbi = [int(np.argmax(trellis[-1]))]
    for backpointer in backpointers[:0:-1]:
        viterbi.append(int(backpointer[viterbi[-1]]))
    viterbi.reverse()
    return viterbi, np.max(trellis[-1])


# --------------------------------------------------------------------------------------------
# Transition constraints of tag schemes
# --------------------------------------------------------------------------------------------

# Scheme name -> mapping from a label's prefix letter to its role (B, I, E, S or O).
_SCHEMES = {
    "BIO": {"B": "B", "I": "I", "O": "O"},
    "BIOS": {"B": "B", "I": "I", "S": "S", "O": "O"},
    "BIOES": {"B": "B", "I": "I", "E": "E", "S": "S", "O": "O"},
    "BMES": {"B": "B", "M": "I", "E": "E", "S": "S", "O": "O"},
    "BILOU": {"B": "B", "I": "I", "L": "E", "U": "S", "O": "O"},
}
_SCHEME_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES", "BMEOS": "BMES", "BMESO": "BMES"}
# Whether a scheme marks the last tag of a multi-character entity (E) or not (BIO, BIOS).
_HAS_END = {"BIO": False, "BIOS": False, "BIOES": True, "BMES": True, "BILOU": True}


def _parse_label(label, roles, scheme):
    if label == "O":
        if "O" not in roles:
            raise ValueError(f"label 'O' is not part of the {scheme} scheme")
        return "O", None
    prefix, sep, entity = str(label).partition("-")
    if not sep or prefix not in roles or roles[prefix] == "O" or not entity:
        raise ValueError(
            f"label {label!r} does not follow the {scheme} scheme: expected 'O' or "
            f"'<prefix>-<type>' with prefix in {sorted(p for p in roles if p != 'O')}"
        )
    return roles[prefix], entity


def allowed_transitions(labels, scheme="BIO"):
    """Which tag transitions a tag scheme allows, for constrained training and decoding.

    Labels are strings ``"O"`` or ``"<prefix>-<type>"`` such as ``"B-PER"`` / ``"I-PER"``.
    Rules (``X``, ``Y`` entity types, ``X != Y``):

    - ``BIO`` (alias ``IOB2``): ``I-X`` only after ``B-X`` or ``I-X``; no sequence starts with
      ``I-X``. So ``O -> I-X``, ``B-X -> I-Y`` and ``I-X -> I-Y`` are forbidden; any tag may end.
    - ``BIOS``: BIO plus single-character entities ``S-X``, which behave like ``O`` (``S-X ->
      I-Y`` is forbidden).
    - ``BIOES`` (alias ``IOBES``), ``BMES`` (``M`` = inside) and ``BILOU`` (``L`` = end,
      ``U`` = single): inside and end tags (``I-X``/``E-X``) only after ``B-X`` or ``I-X``;
      after ``O``, ``E-*`` or ``S-*`` only ``O``, ``B-*`` or ``S-*``; a sequence starts with
      ``O``, ``B-*`` or ``S-*`` and ends with ``O``, ``E-*`` or ``S-*``.

    Args:
        labels: sequence of ``K`` label strings, in tag-id order.
        scheme: one of ``"BIO"``, ``"BIOS"``, ``"BIOES"``, ``"BMES"``, ``"BILOU"`` (or an
            alias above), case-insensitive.

    Returns:
        ``(allowed [K, K] bool np.ndarray [from, to], allowed_start [K] bool,
        allowed_end [K] bool)``.

    Raises:
        ValueError: on an unknown scheme or a label that does not follow it.

    Example:
    >>> allowed, start, end = allowed_transitions(["O", "B-PER", "I-PER"])
    >>> allowed[0].tolist(), start.tolist()
    ([True, True, False], [True, True, False])
    """
    name = str(scheme).upper()
    name = _SCHEME_ALIASES.get(name, name)
    if name not in _SCHEMES:
        raise ValueError(
            f"unknown tag scheme {scheme!r}; expected one of "
            f"{sorted(list(_SCHEMES) + list(_SCHEME_ALIASES))}"
        )
    roles = _SCHEMES[name]
    parsed = [_parse_label(label, roles, name) for label in labels]
    has_end = _HAS_END[name]
    num_tags = len(parsed)
    allowed = np.zeros((num_tags, num_tags), dtype=bool)
    for i, (role_from, type_from) in enumerate(parsed):
        for j, (role_to, type_to) in enumerate(parsed):
            if role_to in ("I", "E"):
                ok = role_from in ("B", "I") and type_from == type_to
            elif has_end:  # B, S, O must not interrupt an open entity
                ok = role_from in ("O", "E", "S")
            else:
                ok = True
            allowed[i, j] = ok
    allowed_start = np.array([role in ("B", "S", "O") for role, _ in parsed], dtype=bool)
    if has_end:
        allowed_end = np.array([role in ("E", "S", "O") for role, _ in parsed], dtype=bool)
    else:
        allowed_end = np.ones(num_tags, dtype=bool)
    return allowed, allowed_start, allowed_end


def constrain_transitions(scores, allowed, forbidden_score=FORBIDDEN_TRANSITION_SCORE):
    """Replaces the scores of forbidden transitions by a large negative constant.

    Args:
        scores: ``[K, K]`` transition (or ``[K]`` boundary) scores.
        allowed: bool array of the same shape, e.g. from ``allowed_transitions``; ``None``
            returns ``scores`` unchanged.
        forbidden_score: the score of a forbidden transition (finite, so gradients stay finite;
            no gradient flows into the replaced entries).

    Returns:
        Tensor of the same shape as ``scores``.

    Example:
    >>> import numpy as np
    >>> allowed, _, _ = allowed_transitions(["O", "B-PER", "I-PER"])
    >>> float(constrain_transitions(np.zeros((3, 3), "float32"), allowed)[0, 2])
    -10000.0
    """
    scores = ops.convert_to_tensor(scores)
    if allowed is None:
        return scores
    allowed = ops.convert_to_tensor(np.asarray(allowed, dtype=bool))
    return ops.where(allowed, scores, ops.full_like(scores, forbidden_score))
