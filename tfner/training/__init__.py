"""Training: per-group AdamW, warm-up + linear decay, dev-F1 callbacks, early stopping by default,
`fit_tagger` that resumes a killed run exactly and refuses to resume a different one."""

from tfner.training.optimizers import GroupedAdamW, WarmupLinearDecay
from tfner.training.resume import RunMismatchError
from tfner.training.trainer import (
    DEFAULT_EPOCHS_WITHOUT_DEV,
    DEFAULT_MAX_EPOCHS,
    EntityF1Evaluation,
    EpochTimer,
    TrainConfig,
    TrainingPlan,
    TrainResult,
    batch_dataset,
    fit_tagger,
    make_optimizer,
    training_plan,
)

__all__ = ["GroupedAdamW", "WarmupLinearDecay", "EntityF1Evaluation", "EpochTimer", "TrainConfig",
           "TrainResult", "TrainingPlan", "RunMismatchError", "DEFAULT_MAX_EPOCHS",
           "DEFAULT_EPOCHS_WITHOUT_DEV", "batch_dataset", "fit_tagger", "make_optimizer",
           "training_plan"]
