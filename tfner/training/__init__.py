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
    encoder_layer_depths,
    make_optimizer,
    training_plan,
)

__all__ = ["GroupedAdamW", "WarmupLinearDecay", "EntityF1Evaluation", "EpochTimer", "TrainConfig",
           "TrainResult", "TrainingPlan", "RunMismatchError", "DEFAULT_MAX_EPOCHS",
           "DEFAULT_EPOCHS_WITHOUT_DEV", "batch_dataset", "fit_tagger", "make_optimizer", "encoder_layer_depths",
           "training_plan"]

# Paper C: multi-task training (per-task learning rates, multi-task batches, DWA).
from tfner.training.dwa import DynamicWeightAveraging, dwa_weights  # noqa: E402
from tfner.training.multitask import (  # noqa: E402
    PAPER_LEARNING_RATES,
    MultiTaskConfig,
    MultiTaskCorpus,
    MultiTaskResult,
    NERDevEvaluation,
    encode_multitask_corpus,
    fit_multitask,
    make_multitask_optimizer,
    multitask_batch,
    multitask_dataset,
    paper_gradient_scales,
    task_labels_from_sentences,
)

__all__ += ["DynamicWeightAveraging", "dwa_weights", "PAPER_LEARNING_RATES", "MultiTaskConfig",
            "MultiTaskCorpus", "MultiTaskResult", "NERDevEvaluation", "encode_multitask_corpus",
            "fit_multitask", "make_multitask_optimizer", "multitask_batch", "multitask_dataset",
            "paper_gradient_scales", "task_labels_from_sentences"]
