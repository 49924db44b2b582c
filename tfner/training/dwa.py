"""Dynamic weight averaging (DWA) of a multi-task model's loss terms (paper C, eq. 12).

`w_i(t) = N exp(r_i(t-1) / T) / sum_n exp(r_n(t-1) / T)`, `r_n(t-1) = L_n(t-1) / L_n(t-2)`,
with `L_n(e)` the average of loss term `n` over epoch `e`, `N` the number of terms and `T` a
temperature (`T = 1`: a softmax of the rates times N; large `T`: every weight near 1). A term whose
loss fell more slowly (larger `r`) gets more weight. Epochs 0 and 1 have no two previous losses
and train with every weight 1.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np

logger = logging.getLogger("tfner.training")

DEFAULT_TEMPERATURE = 2.0


def dwa_weights(previous_losses, earlier_losses, temperature=DEFAULT_TEMPERATURE):
    """The DWA weights of one epoch from the average losses of the two epochs before it.

    Args:
        previous_losses: `{term: L(t-1)}`.
        earlier_losses: `{term: L(t-2)}` (same terms).
        temperature: `T > 0`.

    Returns:
        `{term: w(t)}`, summing to the number of terms. A term whose rate is undefined (a loss
        missing, zero or not finite: a task absent from an epoch's batches logs 0) gets rate 1.

    Example:
    >>> w = dwa_weights({"ner": 1.0, "cws": 1.0}, {"ner": 2.0, "cws": 1.0}, temperature=1.0)
    >>> round(w["ner"], 4), round(w["cws"], 4)   # ner fell faster (r = 0.5) -> less weight
    (0.7551, 1.2449)
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    terms = list(previous_losses)
    rates = []
    for term in terms:
        before, after = earlier_losses.get(term), previous_losses.get(term)
        if before is None or after is None or not (math.isfinite(before) and math.isfinite(after)) \
                or before <= 0 or after <= 0:
            rates.append(1.0)
        else:
            rates.append(after / before)
    scaled = np.asarray(rates, dtype=np.float64) / float(temperature)
    scaled -= scaled.max()
    weights = len(terms) * np.exp(scaled) / np.exp(scaled).sum()
    return {term: float(w) for term, w in zip(terms, weights)}


class DynamicWeightAveraging(keras.callbacks.Callback):
    """Sets a `MultiTaskTagger`'s loss weights by DWA at the start of every epoch.

    Reads each term's epoch-average loss from the epoch logs (`"<term>_loss"`, which the model
    tracks), and writes the weights used in each epoch into the logs (`"<term>_weight"`, so they
    land in the History / history.csv) and into `weights_history`.

    The callback keeps its own loss history: a run resumed at epoch `e` (`initial_epoch=e`)
    starts with weights 1 until this callback has seen two epochs, unless `loss_history` is given
    (the per-epoch `{term: loss}` dicts of the epochs before).

    Args:
        temperature: `T` of eq. (12) (the paper does not give it; 2.0 as in DWA's original
            paper, Liu et al. 2019).
        terms: the loss terms to weight; default: all of the model's `loss_terms`.
        loss_history: optional earlier `{term: average loss}` per epoch, oldest first.

    Attributes:
        weights_history: one `{"epoch": e, term: weight, ...}` per epoch trained.
        loss_history: one `{term: average loss}` per epoch seen.

    Example:
    >>> dwa = DynamicWeightAveraging(temperature=2.0)
    >>> # model.fit(dataset, epochs=10, callbacks=[dwa]); dwa.weights_history[-1]
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, terms=None, loss_history=None):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.terms = list(terms) if terms is not None else None
        self.loss_history = [dict(row) for row in (loss_history or ())]
        self.weights_history = []
        self._current = None

    def _terms(self):
        terms = self.terms if self.terms is not None else list(self.model.loss_terms)
        unknown = sorted(set(terms) - set(self.model.loss_terms))
        if unknown:
            raise ValueError(f"DWA terms {unknown} are not loss terms of the model "
                             f"({list(self.model.loss_terms)})")
        return terms

    def on_epoch_begin(self, epoch, logs=None):
        terms = self._terms()
        if len(self.loss_history) >= 2:
            weights = dwa_weights({t: self.loss_history[-1].get(t) for t in terms},
                                  {t: self.loss_history[-2].get(t) for t in terms},
                                  self.temperature)
        else:
            weights = {term: 1.0 for term in terms}
        self.model.set_loss_weights(weights)
        self._current = weights
        self.weights_history.append({"epoch": int(epoch), **weights})
        logger.info("epoch %d: DWA loss weights %s", epoch + 1,
                    ", ".join(f"{t} {w:.3f}" for t, w in weights.items()))

    def on_epoch_end(self, epoch, logs=None):
        terms = self._terms()
        logs = logs if logs is not None else {}
        missing = [t for t in terms if f"{t}_loss" not in logs]
        if missing:
            logger.warning("epoch %d: no average loss logged for %s; DWA treats its rate as 1",
                           epoch + 1, missing)
        self.loss_history.append({t: float(logs[f"{t}_loss"]) for t in terms
                                  if f"{t}_loss" in logs})
        for term, weight in (self._current or {}).items():
            logs[f"{term}_weight"] = weight
