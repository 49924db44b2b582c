"""AdamW with per-group learning rates and a warm-up + linear-decay schedule.

Adam normalises each parameter's update by its own gradient scale, so scaling a group's gradients
(a common trick in TF1 code) does *not* change its effective learning rate. Per-group learning rates
therefore have to be applied to the update itself: `GroupedAdamW` multiplies the learning rate of
every variable whose path matches a group pattern, exactly like PyTorch parameter groups.
"""

from __future__ import annotations

import re

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfner")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak_learning_rate`, then linear decay to `end_fraction * peak`.

    Args:
        peak_learning_rate: the learning rate reached at the end of warm-up.
        total_steps: the number of optimizer steps of the whole run.
        warmup_steps: steps of linear warm-up (an int) — see `warmup_fraction`.
        warmup_fraction: used when `warmup_steps` is None: `warmup_fraction * total_steps`.
        end_fraction: the final learning rate as a fraction of the peak.

    Example:
    >>> schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(schedule(5)), 6), round(float(schedule(10)), 6), round(float(schedule(100)), 6)
    (0.0005, 0.001, 0.0)
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=None, warmup_fraction=0.1,
                 end_fraction=0.0):
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = max(int(total_steps), 1)
        if warmup_steps is None:
            warmup_steps = int(round(warmup_fraction * self.total_steps))
        self.warmup_steps = int(warmup_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.end_fraction = float(end_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = float(max(self.warmup_steps, 1))
        warm = peak * step / warmup
        decay_span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - self.warmup_steps) / decay_span, 0.0, 1.0)
        decayed = peak * (1.0 - (1.0 - self.end_fraction) * progress)
        if self.warmup_steps <= 0:
            return decayed
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "warmup_fraction": self.warmup_fraction,
            "end_fraction": self.end_fraction,
        }


@keras.saving.register_keras_serializable(package="tfner")
class GroupedAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is multiplied per variable group.

    Args:
        learning_rate: the base learning rate (float or schedule) — the *encoder's* rate in the
            taggers of `tfner.models`.
        lr_multipliers: ordered mapping `regex -> multiplier`; the first pattern found
            (`re.search`) in a variable's path sets its multiplier, else 1.0. Weight decay of a
            variable is scaled by the same multiplier (as in PyTorch parameter groups).
        **kwargs: everything `keras.optimizers.AdamW` accepts.

    Example:
    >>> import keras
    >>> opt = GroupedAdamW(2e-5, lr_multipliers={"^crf/": 100.0, "^(context|emissions)": 50.0})
    >>> opt.multiplier_for_path("crf/transitions")
    100.0
    """

    def __init__(self, learning_rate=1e-3, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self._compiled_patterns = [(re.compile(p), float(m)) for p, m in self.lr_multipliers.items()]
        self._multipliers_by_index = []

    def multiplier_for_path(self, path):
        for pattern, multiplier in self._compiled_patterns:
            if pattern.search(path):
                return multiplier
        return 1.0

    def build(self, variables):
        super().build(variables)
        self._multipliers_by_index = [self.multiplier_for_path(v.path) for v in variables]

    def group_summary(self, variables):
        """`{multiplier: number of parameters}` for logging which variables got which rate."""
        summary = {}
        for v in variables:
            m = self.multiplier_for_path(v.path)
            summary[m] = summary.get(m, 0) + int(v.numpy().size if hasattr(v, "numpy") else 0)
        return summary

    def _multiplier(self, variable):
        return self._multipliers_by_index[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multiplier(variable)
        if multiplier != 1.0:
            learning_rate = ops.cast(learning_rate, variable.dtype) * multiplier
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        if _tf_replicated():
            return self._apply_weight_decay_replicated(variables)
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype) * self._multiplier(variable)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)

    # --- tf.distribute (several replicas in sync) -------------------------------------------
    # Keras clips each replica's own gradient before the all-reduce; a replica sees a share of
    # the batch, so that is not the single-process clip. Here the gradients are all-reduced
    # first and clipped after, and weight decay is applied on every replica through the
    # strategy (per group, like the update).

    def _clip_gradients(self, grads):
        if _tf_replicated():
            return grads  # clipped after the all-reduce (`_backend_update_step`)
        return super()._clip_gradients(grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not _tf_replicated():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import tensorflow as tf

        trainable_variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        clipped = super()._clip_gradients([g for g, _ in grads_and_vars])
        grads_and_vars = [(g, v) for g, (_, v) in zip(clipped, grads_and_vars)]
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, grads_and_vars, learning_rate)

    def _apply_weight_decay_replicated(self, variables):
        import tensorflow as tf

        def apply(distribution, variables, **kwargs):
            for variable in variables:
                if not self._use_weight_decay(variable):
                    continue
                multiplier = self._multiplier(variable)

                def decay(v, multiplier=multiplier):
                    lr = tf.cast(self.learning_rate, v.dtype) * multiplier
                    v.assign_sub(v * tf.cast(self.weight_decay, v.dtype) * lr)

                value = variable.value if isinstance(variable, keras.Variable) else variable
                distribution.extended.update(value, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(apply, self._distribution_strategy, variables)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = dict(self.lr_multipliers)
        return config


def _tf_replicated():
    """True while tracing a train step under a tf.distribute strategy with several replicas."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
