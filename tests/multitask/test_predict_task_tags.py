"""predict_task_tags: one auxiliary-task tag per character, long sentences windowed (as predict_tags)."""

import pytest

from tfner.training.multitask import predict_task_tags


def test_predict_task_tags_one_tag_per_character(mt):
    model = mt.tiny_model()
    texts = [s.chars for s in mt.pre_annotated()]
    for task in ("cws", "pos", "ner"):
        tags = predict_task_tags(model, mt.pre_annotated(), task, batch_size=2)
        assert [len(t) for t in tags] == [len(c) for c in texts]
        assert all(tag in model.task_labels[task] for row in tags for tag in row)
    # pieces of 3 characters: still one tag per character, and the same tags as the model's own
    # output on each piece
    cut = predict_task_tags(model, ["王小明在北京工作"], "cws", max_length=3)[0]
    pieces = [predict_task_tags(model, [p], "cws")[0] for p in ("王小明", "在北京", "工作")]
    assert cut == pieces[0] + pieces[1] + pieces[2]
    with pytest.raises(ValueError, match="not a task"):
        predict_task_tags(model, texts, "srl")
