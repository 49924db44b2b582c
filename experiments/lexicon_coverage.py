"""How far a lexicon reaches beyond the training text: the MSRA test entities that never occur as
an entity in train, and how many of them are lexicon words (by the lexicon's word class).

This is the question behind ``run_msra.py --unseen-words class``: a test entity the training text
never had can only get lexicon help from a word the lexicon knows, and with jieba's dictionary the
word's part-of-speech tag (``nr`` person, ``ns`` place, ``nt`` organisation) says what kind it is.

    python experiments/lexicon_coverage.py                     # jieba's dictionary
    python experiments/lexicon_coverage.py --lexicon words.txt # any word list (word count class)

Prints a summary and writes ``results/msra/lexicon_coverage.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def entities(sentences):
    """``[(type, text)]`` of every gold entity (lenient BIO reading)."""
    from tfner.data.schemes import spans_from_tags

    return [(typ, "".join(s.chars[start:end])) for s in sentences for typ, start, end in spans_from_tags(s.tags, "BIO")]


def coverage(train, test, lexicon):
    """Counts of the test entities: seen as a train entity, in the train text only, or unseen; and,
    for those not seen as a train entity, ``{type: {lexicon class or "-": count}}``."""
    train_entities = {text for _, text in entities(train)}
    train_text = "\n".join("".join(s.chars) for s in train)
    where = collections.Counter()
    classes = collections.defaultdict(collections.Counter)
    test_entities = entities(test)
    for typ, text in test_entities:
        if text in train_entities:
            where["seen as a train entity"] += 1
            continue
        where["in the train text only" if text in train_text else "not in the train text"] += 1
        classes[typ][lexicon.classes.get(text, "(lexicon word, no class)") if text in lexicon else "-"] += 1
    new = sum(sum(c.values()) for c in classes.values())
    in_lexicon = sum(n for c in classes.values() for k, n in c.items() if k != "-")
    return {"test_entities": len(test_entities), "where": dict(where), "not_seen_as_train_entity": new,
            "of_those_lexicon_words": in_lexicon,
            "lexicon_class_by_type": {t: dict(c.most_common()) for t, c in sorted(classes.items())}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lexicon", default="jieba", help="'jieba' or a word list / word2vec file")
    p.add_argument("--data-dir", default=None, help="corpus root (default: the data resolver)")
    p.add_argument("--out", default="results/msra/lexicon_coverage.json")
    args = p.parse_args(argv)
    from tfner.data import read_msra
    from tfner.features import Lexicon

    lexicon = Lexicon.load(args.lexicon)
    result = coverage(read_msra("train", data_dir=args.data_dir), read_msra("test", data_dir=args.data_dir), lexicon)
    result["lexicon"] = {"source": lexicon.source, "words": len(lexicon), "with_class": len(lexicon.classes)}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{result['test_entities']} test entities; {result['not_seen_as_train_entity']} never occur as an "
          f"entity in train, {result['of_those_lexicon_words']} of those are lexicon words")
    for typ, counts in result["lexicon_class_by_type"].items():
        top = ", ".join(f"{k} {n}" for k, n in list(counts.items())[:5])
        print(f"  {typ}: {top}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
