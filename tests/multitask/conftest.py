"""Tiny hand-made multi-task data: pre-annotated sentences (NER tags, CWS and POS features,
consistency targets) and the same text split into single-task corpora."""

import types

import keras
import numpy as np
import pytest

from tfner.data import TaggedSentence
from tfner.models import MultiTaskTagger
from tfner.preprocessing import CharTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京工作")

# text, NER, CWS, POS; the consistency targets are the CWS/POS tags at entity characters.
ROWS = [
    ("王小明在北京工作", "B-PER I-PER I-PER O B-LOC I-LOC O O", "B M E S B E B E",
     "B-nr M-nr E-nr S-p B-ns E-ns B-v E-v"),
    ("小明在工作", "B-PER I-PER O O O", "B E S B E", "B-nr E-nr S-p B-v E-v"),
    ("北京", "B-LOC I-LOC", "B E", "B-ns E-ns"),
    ("在工作", "O O O", "S B E", "S-p B-v E-v"),
]


def pre_annotated():
    sentences = []
    for number, (text, ner, cws, pos) in enumerate(ROWS):
        ner, cws, pos = ner.split(), cws.split(), pos.split()
        target = [None if n == "O" else c for n, c in zip(ner, cws)]
        pos_target = [None if n == "O" else p for n, p in zip(ner, pos)]
        sentences.append(TaggedSentence(
            list(text), ner, features={"cws": cws, "pos": pos, "cws_consistency": target,
                                       "pos_consistency": pos_target},
            source=f"tiny:{number + 1}"))
    return sentences


def single_task(task):
    """The same texts as a corpus of one task only (NER tags, or only a CWS / POS layer)."""
    out = []
    for s in pre_annotated():
        if task == "ner":
            out.append(TaggedSentence(s.chars, s.tags, source=s.source))
        else:
            out.append(TaggedSentence(s.chars, [], features={task: s.features[task]},
                                      source=s.source))
    return out


def task_labels(tasks=("ner", "cws", "pos")):
    from tfner.training import task_labels_from_sentences

    return task_labels_from_sentences(pre_annotated(), tasks)


def tiny_model(tasks=("ner", "cws", "pos"), seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("context_units", 4)
    kwargs.setdefault("embedding_dim", 6)
    return MultiTaskTagger("char", tasks=task_labels(tasks), vocabulary=VOCAB, **kwargs)


def tiny_inputs():
    tokenizer = CharTokenizer(VOCAB)
    rows = [tokenizer.encode(list(text)) for text, *_ in ROWS]
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), "int32")
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = True
    return {"token_ids": ids, "padding_mask": mask}


@pytest.fixture
def mt():
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    return types.SimpleNamespace(VOCAB=VOCAB, ROWS=ROWS, pre_annotated=pre_annotated,
                                 single_task=single_task, task_labels=task_labels,
                                 tiny_model=tiny_model, tiny_inputs=tiny_inputs)
