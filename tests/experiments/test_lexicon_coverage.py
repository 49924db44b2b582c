"""experiments/lexicon_coverage.py on a hand-made corpus."""

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_test_entities_are_split_by_where_they_occur_in_train_and_by_lexicon_class():
    import lexicon_coverage

    from tfner.data import TaggedSentence
    from tfner.features import Lexicon

    train = [TaggedSentence(list("王明去北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
             TaggedSentence(list("南京好"), ["O", "O", "O"])]
    test = [TaggedSentence(list("王明到南京见李华"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-PER", "I-PER"]),
            TaggedSentence(list("上海"), ["B-LOC", "I-LOC"])]
    lexicon = Lexicon({"南京": 5, "上海": 3, "李华": 1}, classes={"南京": "ns", "上海": "ns"})
    result = lexicon_coverage.coverage(train, test, lexicon)
    assert result["test_entities"] == 4
    assert result["where"] == {"seen as a train entity": 1, "in the train text only": 1, "not in the train text": 2}
    assert result["not_seen_as_train_entity"] == 3 and result["of_those_lexicon_words"] == 3
    assert result["lexicon_class_by_type"] == {"LOC": {"ns": 2}, "PER": {"(lexicon word, no class)": 1}}
