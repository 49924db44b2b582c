"""Training: per-group AdamW, warm-up + linear decay, dev-F1 callbacks, resumable `fit_tagger`."""

from tfner.training.optimizers import GroupedAdamW, WarmupLinearDecay
from tfner.training.trainer import (
    EntityF1Evaluation,
    EpochTimer,
    TrainConfig,
    TrainResult,
    batch_dataset,
    fit_tagger,
    make_optimizer,
)

__all__ = ["GroupedAdamW", "WarmupLinearDecay", "EntityF1Evaluation", "EpochTimer", "TrainConfig",
           "TrainResult", "batch_dataset", "fit_tagger", "make_optimizer"]
