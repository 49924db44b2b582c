"""Pre-annotation for paper C: tagging, alignment, correction to entities, consistency targets,
the three-layer file, the cache and Weibo's segmentation agreement.

Most tests use fake taggers (a fixed word list per text) so they do not depend on jieba's
dictionary; one uses real jieba on a short sentence, and two slow ones run on slices of the real
corpora.
"""

import doctest
import logging
import pathlib

import pytest

from tfner.data import (
    CorpusError,
    PreAnnotationError,
    TaggedSentence,
    WordSpan,
    annotate_sentence,
    char_tags_from_words,
    consistency_target_ids,
    consistency_targets,
    correct_word_spans,
    cws_labels,
    entity_type_counts,
    map_weibo_types,
    pos_labels,
    pre_annotate_corpus,
    read_multitask_corpus,
    segmentation_agreement,
    spans_from_tags,
    word_spans,
    words_from_char_tags,
    write_multitask_corpus,
)
from tfner.data import pre_annotation, word_taggers
from tfner.data.pre_annotation import WEIBO_NAMED_ONLY_MAPPING, reference_word_starts

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


class FakeTagger:
    """Fixed segmentations per text ("word/pos word/pos" or a list of pairs); any other text is cut
    into one-character nouns. Counts its calls."""

    def __init__(self, table=None, tagger_id=None):
        self.table = table or {}
        self.calls = 0
        if tagger_id is not None:
            self.cache_key = {"fake": tagger_id}

    def __call__(self, text):
        self.calls += 1
        words = self.table.get(text)
        if isinstance(words, str):
            return [tuple(item.split("/")) for item in words.split()]
        if words is not None:
            return list(words)
        return [(c, "n") for c in text]


def sentence(text, tags, source="test.txt:1", **features):
    return TaggedSentence(list(text), list(tags), dict(features), source)


def entity_words(annotated, scheme="BMES"):
    """Checks every gold entity is exactly one word of the pre-annotation."""
    words = words_from_char_tags(annotated.features["cws"], annotated.features["pos"], scheme)
    spans = {(w.start, w.end) for w in words}
    return all((s, e) in spans for _, s, e in spans_from_tags(annotated.tags))


# --- alignment ---------------------------------------------------------------------------------


def test_alignment_bmes_bies_bie():
    words = [WordSpan(0, 3, "nr"), WordSpan(3, 4, "v"), WordSpan(4, 6, "ns")]
    assert char_tags_from_words(words, "BMES") == (
        ["B", "M", "E", "S", "B", "E"], ["B-nr", "M-nr", "E-nr", "S-v", "B-ns", "E-ns"],
    )
    assert char_tags_from_words(words, "BIES") == (
        ["B", "I", "E", "S", "B", "E"], ["B-nr", "I-nr", "E-nr", "S-v", "B-ns", "E-ns"],
    )
    # BIE has no single-character tag: a one-character word is B (the paper's 王/小/明 -> B B B).
    assert char_tags_from_words(words, "BIE") == (
        ["B", "I", "E", "B", "B", "E"], ["B-nr", "I-nr", "E-nr", "B-v", "B-ns", "E-ns"],
    )
    assert cws_labels("BIES") == ["B", "I", "E", "S"]
    with pytest.raises(ValueError, match="unknown CWS scheme"):
        char_tags_from_words(words, "BIO")


@pytest.mark.parametrize("scheme", ["BMES", "BIES", "BIE"])
def test_char_tags_back_to_words(scheme):
    words = [WordSpan(0, 1, "v"), WordSpan(1, 2, "p"), WordSpan(2, 6, "nt"), WordSpan(6, 8, "n")]
    cws, pos = char_tags_from_words(words, scheme)
    assert words_from_char_tags(cws, pos, scheme) == words


def test_word_spans_checks_the_concatenation():
    assert word_spans([("北京", "ns"), ("欢迎", "v")], "北京欢迎") == [WordSpan(0, 2, "ns"), WordSpan(2, 4, "v")]
    with pytest.raises(PreAnnotationError, match=r"a\.txt:3: .*at character 2 the tagger has '欢'"):
        word_spans([("北京", "ns"), ("欢", "v")], "北京迎你", "a.txt:3")
    with pytest.raises(PreAnnotationError, match="cover 2 of the sentence's 4"):
        word_spans([("北京", "ns")], "北京欢迎")
    with pytest.raises(PreAnnotationError, match="empty or non-string word"):
        word_spans([("", "x"), ("北京", "ns")], "北京")
    with pytest.raises(PreAnnotationError, match="POS tag 'n s'"):
        word_spans([("北京", "n s")], "北京")


def test_mismatched_tagger_names_the_sentence():
    corpus = [sentence("我去北京", "O O B-LOC I-LOC".split(), "corpus.txt:1"),
              sentence("他来上海", "O O B-LOC I-LOC".split(), "corpus.txt:6")]
    dropping = FakeTagger({"他来上海": "他/r 来/v 上/ns"})  # loses a character
    with pytest.raises(PreAnnotationError, match=r"corpus\.txt:6: .*cover 3 of the sentence's 4"):
        pre_annotate_corpus(corpus, tagger=dropping, cache=False)
    changing = FakeTagger({"我去北京": "我/r 去/v 北平/ns"})  # returns other characters
    with pytest.raises(PreAnnotationError, match=r"corpus\.txt:1: .*'北平'"):
        pre_annotate_corpus(corpus, tagger=changing, cache=False)

    def failing(text):
        raise RuntimeError("boom")

    with pytest.raises(PreAnnotationError, match=r"corpus\.txt:1: the tagger failed .*boom"):
        pre_annotate_corpus(corpus, tagger=failing, cache=False)


# --- correction to the entities ----------------------------------------------------------------


def test_entity_split_by_the_segmenter_becomes_one_word():
    # The paper's example: 王小明 cut into 王/小/明 -> one word B M E (BIES/BIE: B I E) with POS nr.
    s = sentence("王小明来了", "B-PER I-PER I-PER O O".split())
    tagger = FakeTagger({"王小明来了": "王/n 小/a 明/a 来/v 了/ul"})
    out, report = annotate_sentence(s, tagger)
    assert out.features["cws"] == ["B", "M", "E", "S", "S"]
    assert out.features["pos"] == ["B-nr", "M-nr", "E-nr", "S-v", "S-ul"]
    assert (report.corrected, report.split, report.cut, report.remnant_words) == (1, 1, 0, 0)
    out, _ = annotate_sentence(s, tagger, cws_scheme="BIES")
    assert out.features["cws"][:3] == ["B", "I", "E"]
    out, _ = annotate_sentence(s, tagger, cws_scheme="BIE")
    assert out.features["cws"] == ["B", "I", "E", "B", "B"]
    assert out.features["pos"] == ["B-nr", "I-nr", "E-nr", "B-v", "B-ul"]
    assert out.tags == s.tags and out.source == s.source


def test_entity_spanning_two_words_and_remnants_keep_their_pos():
    # 张三 spans the end of 见张 and the start of 三丰: both edges cut; 见 and 丰 are remnants.
    s = sentence("见张三丰收", "O B-PER I-PER O O".split())
    tagger = FakeTagger({"见张三丰收": "见张/v 三丰/nr 收/v"})
    out, report = annotate_sentence(s, tagger)
    assert out.features["cws"] == ["S", "B", "E", "S", "S"]
    assert out.features["pos"] == ["S-v", "B-nr", "E-nr", "S-nr", "S-v"]
    assert (report.corrected, report.split, report.cut, report.remnant_words) == (1, 1, 1, 2)


def test_single_character_entities_inside_one_word():
    s = sentence("中美合作", "B-LOC B-LOC O O".split())
    out, report = annotate_sentence(s, FakeTagger({"中美合作": "中美/j 合作/vn"}))
    assert out.features["cws"] == ["S", "S", "B", "E"]
    assert out.features["pos"] == ["S-ns", "S-ns", "B-vn", "E-vn"]
    assert (report.entities, report.corrected, report.cut, report.remnant_words) == (2, 2, 2, 0)
    out, _ = annotate_sentence(s, FakeTagger({"中美合作": "中美/j 合作/vn"}), cws_scheme="BIE")
    assert out.features["cws"] == ["B", "B", "B", "E"]


def test_entity_boundary_inside_a_longer_word():
    # 北京 ends inside 北京市: the word is cut, 市 becomes a word of its own with 北京市's POS.
    s = sentence("北京市长", "B-LOC I-LOC O O".split())
    out, report = annotate_sentence(s, FakeTagger({"北京市长": "北京市/ns 长/n"}))
    assert out.features["cws"] == ["B", "E", "S", "S"]
    assert out.features["pos"] == ["B-ns", "E-ns", "S-ns", "S-n"]
    assert (report.corrected, report.split, report.cut, report.remnant_words) == (1, 0, 1, 1)
    # An entity starting inside a word that begins before it: 副/省长 -> 副 + 省长.
    s = sentence("副省长", "O B-ORG I-ORG".split())
    out, _ = annotate_sentence(s, FakeTagger({"副省长": "副省长/n"}))
    assert out.features["pos"] == ["S-n", "B-nt", "E-nt"]


def test_entities_already_one_word_keep_the_tagger_pos_unless_relabelled():
    s = sentence("新华社报道", "B-ORG I-ORG I-ORG O O".split())
    tagger = FakeTagger({"新华社报道": "新华社/nt 报道/v"})
    out, report = annotate_sentence(s, tagger)
    assert out.features["pos"] == ["B-nt", "M-nt", "E-nt", "B-v", "E-v"]
    assert (report.corrected, report.pos_disagreements) == (0, 0)
    tagger = FakeTagger({"新华社报道": "新华社/n 报道/v"})
    out, report = annotate_sentence(s, tagger)
    assert out.features["pos"][:3] == ["B-n", "M-n", "E-n"]
    assert (report.corrected, report.pos_disagreements) == (0, 1)
    out, _ = annotate_sentence(s, tagger, entity_pos="all")
    assert out.features["pos"][:3] == ["B-nt", "M-nt", "E-nt"]


def test_adjacent_entities_sharing_a_word():
    # One word over the end of one entity and the start of the next: split between them.
    words = [WordSpan(0, 2, "nr"), WordSpan(2, 4, "x")]
    new, report = correct_word_spans(words, [("PER", 0, 1), ("LOC", 1, 3)], {"PER": "nr", "LOC": "ns"})
    assert new == [WordSpan(0, 1, "nr"), WordSpan(1, 3, "ns"), WordSpan(3, 4, "x")]
    assert report.corrected == 2 and report.remnant_words == 1


def test_corpus_report_counts():
    corpus = [
        sentence("王小明来了", "B-PER I-PER I-PER O O".split(), "c.txt:1"),
        sentence("北京市长", "B-LOC I-LOC O O".split(), "c.txt:7"),
        sentence("新华社报道", "B-ORG I-ORG I-ORG O O".split(), "c.txt:12"),
        sentence("好", ["O"], "c.txt:18"),
    ]
    tagger = FakeTagger({"王小明来了": "王/n 小/a 明/a 来/v 了/ul", "北京市长": "北京市/ns 长/n",
                         "新华社报道": "新华社/nt 报道/v"})
    out, report = pre_annotate_corpus(corpus, tagger=tagger, cache=False)
    assert (report.sentences, report.sentences_corrected) == (4, 2)
    assert (report.entities, report.entities_corrected, report.entities_split, report.entities_cut) == (3, 2, 1, 1)
    assert report.from_cache is False and report.cache_file is None
    assert [s.source for s in out] == [s.source for s in corpus]
    assert all(entity_words(s) for s in out)
    assert "corrected the segmentation of 2 sentences and 2 of 3 entities" in report.summary()
    assert corpus[0].features == {}  # the input is not changed


def test_unknown_entity_type_raises_or_uses_the_given_pos():
    corpus = [sentence("看红楼梦", "O B-book I-book I-book".split(), "cl.json:4")]
    with pytest.raises(PreAnnotationError, match=r"book \(1, first at cl\.json:4\).*type_to_pos"):
        pre_annotate_corpus(corpus, tagger=FakeTagger(), cache=False)
    out, _ = pre_annotate_corpus(corpus, tagger=FakeTagger(), cache=False, type_to_pos={"book": "nz"})
    assert out[0].features["pos"] == ["S-n", "B-nz", "M-nz", "E-nz"]
    out, _ = pre_annotate_corpus(corpus, tagger=FakeTagger(), cache=False, unknown_type_pos="n")
    assert out[0].features["pos"][1:] == ["B-n", "M-n", "E-n"]


def test_other_ner_schemes_and_features_are_kept():
    s = sentence("去北京", ["O", "B-LOC", "E-LOC"], word_position=[0, 0, 1])
    out, _ = pre_annotate_corpus([s], tagger=FakeTagger(), cache=False)  # BIOES inferred
    assert out[0].features["pos"] == ["S-n", "B-ns", "E-ns"]
    assert out[0].features["word_position"] == [0, 0, 1]
    unlabelled = TaggedSentence(list("去北京"), [], {}, "u.txt:1")
    out, report = pre_annotate_corpus([unlabelled], tagger=FakeTagger(), cache=False)
    assert out[0].features["cws"] == ["S", "S", "S"] and report.entities == 0


# --- consistency targets -----------------------------------------------------------------------


def test_consistency_targets():
    tags = ["O", "B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG"]
    t = consistency_targets(tags)
    assert t.cws == [None, "B", "M", "E", None, "S", "B", "E"]
    assert t.pos == [None, "B-nr", "M-nr", "E-nr", None, "S-ns", "B-nt", "E-nt"]
    assert t.mask == [False, True, True, True, False, True, True, True]
    # The paper's example: <O B-PER I-PER O O> -> <O B E O O>.
    assert consistency_targets(["O", "B-PER", "I-PER", "O", "O"]).cws == [None, "B", "E", None, None]
    t = consistency_targets(tags, cws_scheme="BIE")
    assert t.cws == [None, "B", "I", "E", None, "B", "B", "E"]
    assert t.pos[5] == "B-ns"
    t = consistency_targets(tags, boundaries_only=True)
    assert t.mask == [False, True, False, True, False, True, True, True]
    assert t.cws[2] is None
    t = consistency_targets(sentence("看书", ["B-book", "I-book"]), type_to_pos={"book": "nz"})
    assert t.pos == ["B-nz", "E-nz"]
    with pytest.raises(PreAnnotationError, match="'book' has no POS"):
        consistency_targets(["B-book"])
    with pytest.raises(PreAnnotationError, match="x.txt:2"):
        consistency_targets(sentence("看", ["M-PER"], "x.txt:2"))


def test_consistency_target_ids_and_labels():
    s = sentence("王五去北京", "B-PER I-PER O B-LOC I-LOC".split())
    out, _ = annotate_sentence(s, FakeTagger({"王五去北京": "王五/nr 去/v 北京/ns"}))
    labels = pos_labels([out])
    assert labels == ["B-nr", "M-nr", "E-nr", "S-nr", "B-ns", "M-ns", "E-ns", "S-ns", "S-v"]
    cws, pos, mask = consistency_target_ids(consistency_targets(s), cws_labels(), labels)
    assert cws.tolist() == [0, 2, 0, 0, 2]
    assert pos.tolist() == [0, 2, 0, 4, 6]
    assert mask.tolist() == [True, True, False, True, True]
    with pytest.raises(ValueError, match="unknown label 'B-nr'"):
        consistency_target_ids(consistency_targets(s), cws_labels(), ["S-v"])


# --- the three-layer file ----------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    corpus = [
        sentence("王小明来了", "B-PER I-PER I-PER O O".split(), "c.txt:1"),
        sentence("在 北京", "O O B-LOC I-LOC".split(), "c.txt:7"),  # a space as a character
        sentence("😀好", ["O", "O"], "c.txt:12"),
    ]
    tagger = FakeTagger({"王小明来了": "王/n 小/a 明/a 来/v 了/ul", "在 北京": [("在", "p"), (" ", "x"), ("北京", "ns")]})
    for scheme in ("BMES", "BIE"):
        out, _ = pre_annotate_corpus(corpus, tagger=tagger, cws_scheme=scheme, cache=False)
        path = tmp_path / f"{scheme}.tsv"
        write_multitask_corpus(out, path)
        back = read_multitask_corpus(path)
        assert [(s.chars, s.tags, s.features) for s in back] == [
            (s.chars, s.tags, {"cws": s.features["cws"], "pos": s.features["pos"]}) for s in out
        ]
        assert back[1].source == f"{path}:7"
    assert path.read_text("utf-8").splitlines()[:2] == ["王\tB-PER\tB\tB-nr", "小\tI-PER\tI\tI-nr"]


def test_write_refuses_what_it_cannot_write(tmp_path):
    plain = sentence("去", ["O"], "p.txt:1")
    with pytest.raises(ValueError, match=r"p\.txt:1: no features \['cws', 'pos'\]"):
        write_multitask_corpus([plain], tmp_path / "a.tsv")
    tab = sentence("\t", ["O"], "t.txt:1", cws=["S"], pos=["S-x"])
    with pytest.raises(ValueError, match=r"t\.txt:1: cannot write '\\t'"):
        write_multitask_corpus([tab], tmp_path / "a.tsv")
    unlabelled = TaggedSentence(["去"], [], {"cws": ["S"], "pos": ["S-v"]}, "u.txt:1")
    with pytest.raises(ValueError, match="unlabelled"):
        write_multitask_corpus([unlabelled], tmp_path / "a.tsv")


@pytest.mark.parametrize(
    "lines, line, problem",
    [
        (["去\tO\tS\tS-v", "北\tB-LOC\tB\tS-ns", "京\tI-LOC\tE\tE-ns"], 2, "POS tag 'S-ns' should be 'B-<POS>'"),
        (["去\tO\tS\tS-v", "北\tB-LOC\tE\tE-ns"], 2, "CWS tag 'E' cannot come after 'S'"),
        (["北\tB-LOC\tB\tB-ns", "京\tI-LOC\tE\tE-n"], 2, "POS changes inside a word: 'ns' then 'n'"),
        (["北\tB-LOC\tB\tB-ns", "京\tI-LOC\tM\tM-ns"], 2, "the sentence ends inside a word"),
        (["去\tO\tS"], 1, "expected 4 fields"),
        (["去\tX-LOC\tS\tS-v"], 1, "tag 'X-LOC'"),
    ],
)
def test_read_errors_name_file_and_line(tmp_path, lines, line, problem):
    path = tmp_path / "bad.tsv"
    path.write_text("好\tO\tS\tS-a\n\n" + "\n".join(lines) + "\n", "utf-8")
    with pytest.raises(CorpusError, match=rf"bad\.tsv:{line + 2}: .*{problem}") as error:
        read_multitask_corpus(path, cws_scheme="BMES")
    assert error.value.line == line + 2


# --- cache ---------------------------------------------------------------------------------------


def test_second_call_reads_the_cache(tmp_path, caplog):
    corpus = [sentence("王小明来了", "B-PER I-PER I-PER O O".split(), "c.txt:1"),
              sentence("北京市长", "B-LOC I-LOC O O".split(), "c.txt:7")]
    table = {"王小明来了": "王/n 小/a 明/a 来/v 了/ul", "北京市长": "北京市/ns 长/n"}
    tagger = FakeTagger(table, tagger_id="fake-1")
    first, report1 = pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 2 and not report1.from_cache
    assert pathlib.Path(report1.cache_file).is_file()
    second, report2 = pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 2, "the second call must not run the tagger"
    assert report2.from_cache
    assert [(s.chars, s.tags, s.features, s.source) for s in second] == \
        [(s.chars, s.tags, s.features, s.source) for s in first]
    assert (report2.entities_corrected, report2.sentences_corrected) == (report1.entities_corrected, 2)
    # Anything in the key changes the file: the scheme, the tagger's identity, the corpus.
    pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path, cws_scheme="BIE")
    assert tagger.calls == 4
    pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path, tagger_id="fake-2")
    assert tagger.calls == 6
    changed = [corpus[0], sentence("北京市长", "B-LOC I-LOC I-LOC O".split(), "c.txt:7")]
    pre_annotate_corpus(changed, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 8
    # A damaged cache file is reported and replaced.
    pathlib.Path(report1.cache_file).write_text("garbage\n", "utf-8")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        _, report3 = pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 10 and not report3.from_cache
    assert any("ignoring the pre-annotation cache" in r.getMessage() for r in caplog.records)
    pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 10


def test_plain_callable_is_not_cached_without_an_identity(tmp_path):
    corpus = [sentence("北京", ["B-LOC", "I-LOC"])]
    tagger = FakeTagger()
    pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert tagger.calls == 2 and not list(tmp_path.iterdir())


def test_default_cache_folder_is_under_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tagger = FakeTagger(tagger_id="x")
    _, report = pre_annotate_corpus([sentence("北京", ["B-LOC", "I-LOC"])], tagger=tagger)
    assert pathlib.Path(report.cache_file).parent == tmp_path / "tfner" / "pre_annotation"


# --- Weibo types and segmentation agreement ------------------------------------------------------


def test_map_weibo_types():
    s = sentence("李娜和妈妈在北京", "B-PER.NAM I-PER.NAM O B-PER.NOM I-PER.NOM O B-GPE.NAM I-GPE.NAM".split())
    mapped = map_weibo_types([s])
    assert entity_type_counts(mapped) == {"LOC": 1, "PER": 2}
    assert mapped[0].tags[6:] == ["B-LOC", "I-LOC"]
    named = map_weibo_types([s], WEIBO_NAMED_ONLY_MAPPING)
    assert named[0].tags[3:5] == ["O", "O"] and entity_type_counts(named) == {"LOC": 1, "PER": 1}
    with pytest.raises(PreAnnotationError, match="'MISC' is not in the mapping"):
        map_weibo_types([sentence("好", ["B-MISC"])])


def test_segmentation_agreement():
    # Reference: 我 | 爱 | 北京 | 天安门 ; tagger: 我 | 爱北京 | 天安 | 门.
    s = sentence("我爱北京天安门", ["O"] * 7, word_position=[0, 0, 0, 1, 0, 1, 2])
    same = sentence("你好", ["O", "O"], "b:1", word_position=[0, 1])
    tagger = FakeTagger({"我爱北京天安门": "我/r 爱北京/v 天安/ns 门/n", "你好": "你好/l"})
    result = segmentation_agreement([s, same], tagger=tagger)
    assert (result.reference_words, result.tagger_words, result.matched_words) == (5, 5, 2)
    assert (result.reference_boundaries, result.tagger_boundaries, result.matched_boundaries) == (3, 3, 2)
    assert result.identical_sentences == 1 and result.identical_share == 0.5
    p, r, f = result.boundary_scores
    assert p == pytest.approx(2 / 3) and r == pytest.approx(2 / 3) and f == pytest.approx(2 / 3)
    # Corrected to an entity 北京天安门 (LOC), the tagger's 爱北京 and 天安|门 are re-cut.
    s.tags = ["O", "O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "I-LOC"]
    corrected = segmentation_agreement([s], tagger=tagger, corrected=True)
    assert corrected.tagger_words == 3 and corrected.matched_words == 2  # 我, 爱
    assert reference_word_starts([1, 2, 0, 2]) == ([0, 2], 2)
    with pytest.raises(PreAnnotationError, match="no feature 'word_position'"):
        segmentation_agreement([sentence("好", ["O"])], tagger=tagger)


# --- taggers -------------------------------------------------------------------------------------


def test_pluggable_tagger_with_cache_key(tmp_path):
    class Segmenter:
        name = "my-segmenter"
        cache_key = {"tagger": "my-segmenter", "version": 3}

        def __init__(self):
            self.calls = 0

        def __call__(self, text):
            self.calls += 1
            return [(text[:1], "r"), (text[1:], "v")] if len(text) > 1 else [(text, "r")]

    segmenter = Segmenter()
    corpus = [sentence("他来", ["B-PER", "O"])]
    out, report = pre_annotate_corpus(corpus, tagger=segmenter, cache_dir=tmp_path)
    assert out[0].features["pos"] == ["S-r", "S-v"] and report.tagger == "my-segmenter"
    pre_annotate_corpus(corpus, tagger=segmenter, cache_dir=tmp_path)
    assert segmenter.calls == 1
    with pytest.raises(ValueError, match="unknown word tagger 'pkuseg'"):
        pre_annotate_corpus(corpus, tagger="pkuseg")


def test_real_jieba_on_a_short_sentence(tmp_path):
    pytest.importorskip("jieba")
    tagger = word_taggers.JiebaTagger(hmm=False)
    text = "王小明在北京大学读书"
    words = tagger(text)
    assert "".join(w for w, _ in words) == text
    key = tagger.cache_key
    assert key["hmm"] is False and key["jieba_version"] and len(key["dictionary_sha256"]) == 64
    corpus = [sentence(text, "B-PER I-PER I-PER O B-ORG I-ORG I-ORG I-ORG O O".split(), "j.txt:1")]
    out, report = pre_annotate_corpus(corpus, tagger=tagger, cache_dir=tmp_path)
    assert entity_words(out[0])
    assert out[0].features["pos"][:3] == ["B-nr", "M-nr", "E-nr"] or report.entities_corrected == 0
    assert "HMM off" in report.tagger
    _, again = pre_annotate_corpus(corpus, tagger=word_taggers.JiebaTagger(hmm=False), cache_dir=tmp_path)
    assert again.from_cache
    _, hmm_on = pre_annotate_corpus(corpus, tagger="jieba", hmm=True, cache_dir=tmp_path)
    assert not hmm_on.from_cache


def test_doctests():
    assert doctest.testmod(pre_annotation).failed == 0
    assert doctest.testmod(word_taggers).failed == 0


# --- real corpora (slices) -----------------------------------------------------------------------


@pytest.mark.slow
def test_peoples_daily_slice_every_entity_one_word(tmp_path):
    if not (SHARED_DATA / "peoples_daily_ner").is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    pytest.importorskip("jieba")
    from tfner.data import read_peoples_daily_ner

    corpus = read_peoples_daily_ner("test", data_dir=SHARED_DATA)[:200]
    out, report = pre_annotate_corpus(corpus, cache_dir=tmp_path)
    assert report.sentences == 200 and report.entities == sum(entity_type_counts(corpus).values())
    assert all(entity_words(s) for s in out)
    write_multitask_corpus(out, tmp_path / "pd.tsv")
    back = read_multitask_corpus(tmp_path / "pd.tsv")
    assert [s.features for s in back] == [s.features for s in out]


@pytest.mark.slow
def test_weibo_slice_agreement_and_types():
    if not (SHARED_DATA / "weibo").is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    pytest.importorskip("jieba")
    from tfner.data import read_weibo_ner

    corpus = read_weibo_ner("dev", data_dir=SHARED_DATA)[:100]
    result = segmentation_agreement(corpus, hmm=True)
    assert result.sentences == 100 and 0 < result.matched_words <= result.reference_words
    mapped = map_weibo_types(corpus)
    assert set(entity_type_counts(mapped)) <= {"PER", "LOC", "ORG"}
    assert sum(entity_type_counts(mapped).values()) == sum(entity_type_counts(corpus).values())
