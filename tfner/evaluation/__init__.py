"""Evaluation: entity-level scores (equal to seqeval's default mode), confusion matrix, reports."""

from tfner.evaluation.metrics import (
    confusion_matrix,
    entity_scores,
    format_report,
    normalize_rows,
    repair_transitions,
)
from tfner.evaluation.span_metrics import gold_spans, span_set_scores

__all__ = ["confusion_matrix", "entity_scores", "format_report", "normalize_rows", "repair_transitions",
           "gold_spans", "span_set_scores"]
