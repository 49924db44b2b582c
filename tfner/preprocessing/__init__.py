"""Text -> ids: the character tokenizer, long-text windows, and the tf.data input pipeline."""

from tfner.preprocessing.pipeline import EncodedCorpus
from tfner.preprocessing.pipeline import encode_corpus
from tfner.preprocessing.pipeline import make_dataset
from tfner.preprocessing.pipeline import padding_fraction
from tfner.preprocessing.pipeline import plan_batches
from tfner.preprocessing.pipeline import steps_per_epoch
from tfner.preprocessing.tokenizer import CharTokenizer
from tfner.preprocessing.tokenizer import TFCharLookup
from tfner.preprocessing.windows import DEFAULT_PUNCTUATION
from tfner.preprocessing.windows import length_stats
from tfner.preprocessing.windows import max_length_from_lengths
from tfner.preprocessing.windows import split_long_sentences
from tfner.preprocessing.windows import stitch
from tfner.preprocessing.windows import window_spans

__all__ = [
    "CharTokenizer",
    "DEFAULT_PUNCTUATION",
    "EncodedCorpus",
    "TFCharLookup",
    "encode_corpus",
    "length_stats",
    "make_dataset",
    "max_length_from_lengths",
    "padding_fraction",
    "plan_batches",
    "split_long_sentences",
    "steps_per_epoch",
    "stitch",
    "window_spans",
]
