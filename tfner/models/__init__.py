"""Taggers: the composable `NERTagger`, named presets, and prediction on raw text."""

from tfner.models.presets import PRESETS, build_tagger, parameter_counts
from tfner.models.tagger import NERTagger, masked_token_cross_entropy

__all__ = ["NERTagger", "PRESETS", "build_tagger", "parameter_counts", "masked_token_cross_entropy",
           "predict_tags", "predict_spans"]


def predict_tags(*args, **kwargs):
    """See `tfner.models.predict.predict_tags`."""
    from tfner.models.predict import predict_tags as _predict_tags

    return _predict_tags(*args, **kwargs)


def predict_spans(*args, **kwargs):
    """See `tfner.models.predict.predict_spans`."""
    from tfner.models.predict import predict_spans as _predict_spans

    return _predict_spans(*args, **kwargs)

# Paper C: the multi-task tagger (NER + CWS + POS heads, label-consistency loss).
from tfner.models.multitask import MultiTaskTagger, build_multitask_tagger  # noqa: E402

__all__ += ["MultiTaskTagger", "build_multitask_tagger"]
