"""Evaluation: entity-level scores (equal to seqeval's default mode), confusion matrix, reports."""

from tfner.evaluation.metrics import (
    confusion_matrix,
    entity_scores,
    format_report,
    normalize_rows,
    repair_transitions,
)

__all__ = ["confusion_matrix", "entity_scores", "format_report", "normalize_rows", "repair_transitions"]
