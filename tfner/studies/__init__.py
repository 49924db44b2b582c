"""Building blocks of the study scripts (paper B's CRF-vs-softmax studies): corpus loading with
dev/test hold-outs, one trained-and-scored model variant, aggregation over seeds, labels.

Example:
>>> # data = load_study_data("msra", train_fraction=0.05, dev_size=500)
>>> # result = run_variant(Variant("crf", preset="bert-crf"), data, encoder_dir, TrainSettings(), "out/crf")
"""

from tfner.studies.claims import check_claims, claims_markdown
from tfner.studies.runner import (
    StudyData,
    TrainSettings,
    Variant,
    caption,
    load_study_data,
    run_variant,
    summarize,
)

__all__ = ["StudyData", "TrainSettings", "Variant", "caption", "check_claims", "claims_markdown", "load_study_data",
           "run_variant", "summarize"]
