"""Fixtures building corrupted copies of the real corpora (../shared/data) in a temporary folder.

Each builder takes a slice of a real corpus, damages it the way files get damaged in practice
(re-encoded, compressed, cut, blank lines stripped, labels nulled, ...) and returns the path of the
damaged copy with what the test needs to know about it (e.g. the line the damage is on). Tests skip
when ../shared/data is absent (the ``shared_data`` fixture of tests/conftest.py).
"""

import dataclasses
import json
import logging

import pytest

# Slices small enough to keep each test fast, large enough to be real text with entities.
MSRA_SENTENCES = 300


@dataclasses.dataclass
class Corrupted:
    """A damaged copy: ``path``, the ``line`` the damage is on (1-based) or None, and notes."""

    path: object
    line: int | None = None
    info: dict = dataclasses.field(default_factory=dict)


def _sentences_of(text):
    """Blank-line separated blocks of a column file, each a list of lines."""
    blocks, block = [], []
    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _column_text(blocks):
    return "".join("\n".join(block) + "\n\n" for block in blocks)


@pytest.fixture
def real_corpora(shared_data):
    """Paths of the real corpus files used as sources."""
    paths = {
        "msra_test": shared_data / "msra" / "test_data",
        "weibo_train": shared_data / "weibo" / "weiboNER_2nd_conll.train",
        "weibo_dev": shared_data / "weibo" / "weiboNER_2nd_conll.dev",
        "cluener_dev": shared_data / "cluener2020" / "dev.json",
        "cluener_test": shared_data / "cluener2020" / "test.json",
        "pd_dev": shared_data / "peoples_daily_ner" / "example.dev",
    }
    for path in paths.values():
        if not path.is_file():
            pytest.skip(f"{path} is not present")
    return paths


@pytest.fixture
def msra_blocks(real_corpora):
    """The first MSRA_SENTENCES sentences of MSRA test as lists of ``char<TAB>tag`` lines."""
    return _sentences_of(real_corpora["msra_test"].read_text("utf-8"))[:MSRA_SENTENCES]


@pytest.fixture
def msra_slice(tmp_path, msra_blocks):
    """An intact UTF-8 copy of the MSRA slice (the reference the corrupted copies are read against)."""
    path = tmp_path / "msra_slice.txt"
    path.write_text(_column_text(msra_blocks), "utf-8")
    return path


@pytest.fixture
def corrupt(tmp_path, real_corpora, msra_blocks):
    """``corrupt(kind) -> Corrupted``: a damaged copy of a real corpus slice in ``tmp_path``."""
    msra_text = _column_text(msra_blocks)
    msra_bytes = msra_text.encode("utf-8")

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def build(kind):
        if kind == "gbk":
            return Corrupted(write("gbk.txt", msra_text.encode("gb18030")), 1)
        if kind == "utf16-bom":
            return Corrupted(write("utf16bom.txt", msra_text.encode("utf-16")))
        if kind in ("utf16-le", "utf16-be"):
            return Corrupted(write(f"{kind}.txt", msra_text.encode(kind.replace("utf16", "utf-16"))), 1)
        if kind == "utf8-bom":
            return Corrupted(write("bom.txt", b"\xef\xbb\xbf" + msra_bytes))
        if kind == "gzip":
            import gzip

            return Corrupted(write("train.txt.gz", gzip.compress(msra_bytes)), 1)
        if kind == "random":
            import random

            rng = random.Random(7)
            return Corrupted(write("random.bin", bytes(rng.randrange(256) for _ in range(20_000))))
        if kind in ("cut", "cut-newline"):
            # Cut 1 byte into a multi-byte character past the middle of the file.
            offset = len(msra_bytes) // 2
            while msra_bytes[offset] < 0xC0:  # the lead byte of a multi-byte character
                offset += 1
            data = msra_bytes[:offset + 1] + (b"\n" if kind == "cut-newline" else b"")
            return Corrupted(write(f"{kind}.txt", data), msra_bytes.count(b"\n", 0, offset) + 1)
        if kind == "gbk-line":
            lines = msra_text.split("\n")
            k = next(i for i, line in enumerate(lines) if i > 100 and line and ord(line[0]) > 0x4E00)
            head, tail = "\n".join(lines[:k]) + "\n", "\n" + "\n".join(lines[k + 1:])
            data = head.encode() + lines[k].encode("gbk") + tail.encode()
            return Corrupted(write("gbk_line.txt", data), k + 1)
        if kind == "empty":
            return Corrupted(write("empty.txt", b""))
        if kind == "blank-only":
            return Corrupted(write("blank.txt", "\n \n\t\n\r\n\n"))
        if kind == "no-blank-lines":
            text = "".join(line + "\n" for block in msra_blocks for line in block)
            return Corrupted(write("stripped.txt", text), 1, {"lines": text.count("\n")})
        if kind == "some-blank-lines-stripped":
            # Sentences 100..199 run together: one "sentence" starting at sentence 100's first line.
            head = _column_text(msra_blocks[:100])
            middle = "".join(line + "\n" for block in msra_blocks[100:200] for line in block) + "\n"
            text = head + middle + _column_text(msra_blocks[200:])
            return Corrupted(write("partly_stripped.txt", text), head.count("\n") + 1,
                             {"chars": sum(len(b) for b in msra_blocks[100:200])})
        if kind == "orphan":
            blocks = [list(b) for b in msra_blocks]
            # First B- tag that follows an O: turn it into an orphan I-.
            for bi, block in enumerate(blocks):
                for li in range(1, len(block)):
                    if "\tB-" in block[li] and block[li - 1].endswith("\tO"):
                        block[li] = block[li].replace("\tB-", "\tI-")
                        line = sum(len(b) + 1 for b in blocks[:bi]) + li + 1
                        return Corrupted(write("orphan.txt", _column_text(blocks)), line)
            raise AssertionError("no B- after O in the slice")
        if kind in ("three-columns", "missing-tag"):
            blocks = [list(b) for b in msra_blocks]
            bi, li = 150, 3
            blocks[bi][li] = blocks[bi][li] + "\tX" if kind == "three-columns" else blocks[bi][li].split("\t")[0]
            line = sum(len(b) + 1 for b in blocks[:bi]) + li + 1
            return Corrupted(write(f"{kind}.txt", _column_text(blocks)), line)
        if kind in ("bmes", "bioes"):
            from tfner.data import convert_tags

            scheme = kind.upper()
            blocks = []
            for block in msra_blocks:
                chars = [line.split("\t")[0] for line in block]
                tags = convert_tags([line.split("\t")[1] for line in block], "BIO", scheme)
                blocks.append([f"{c} {t}" for c, t in zip(chars, tags)])
            lines = _column_text(blocks).split("\n")
            first = next(i for i, line in enumerate(lines) if line[2:4] in ("M-", "E-", "S-")) + 1
            return Corrupted(write(f"{kind}.txt", _column_text(blocks)), first)
        if kind == "slash":
            from tfner.data import spans_from_tags

            out = []
            for block in msra_blocks:
                chars = [line.split("\t")[0] for line in block]
                tags = [line.split("\t")[1] for line in block]
                words, i = [], 0
                for type_, start, end in spans_from_tags(tags, "BIO"):
                    words += [f"{c}/o" for c in chars[i:start]]
                    words.append("".join(chars[start:end]) + "/" + {"PER": "nr", "LOC": "ns", "ORG": "nt"}[type_])
                    i = end
                words += [f"{c}/o" for c in chars[i:]]
                out.append(" ".join(words) + "\r\n")
            return Corrupted(write("slash.txt", "".join(out)))
        if kind in ("cluener-null", "cluener-start-gt-end", "cluener-renamed"):
            lines = real_corpora["cluener_dev"].read_text("utf-8").splitlines()[:400]
            if kind == "cluener-renamed":
                return Corrupted(write("cluener_dev.txt", "\n".join(lines) + "\n"))
            records = [json.loads(line) for line in lines]
            if kind == "cluener-null":
                nulled = [i for i in range(0, 400, 37)][:9]
                for i in nulled:
                    records[i]["label"] = None
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                return Corrupted(write("null.json", text), nulled[0] + 1, {"nulled": nulled})
            k = next(i for i, r in enumerate(records) if i > 50 and any(
                e > s for spans in r["label"].values() for ps in spans.values() for s, e in ps))
            for spans in records[k]["label"].values():
                for positions in spans.values():
                    for p in positions:
                        if p[1] > p[0]:
                            p[0], p[1] = p[1], p[0]
                            break
                    else:
                        continue
                    break
                else:
                    continue
                break
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return Corrupted(write("swapped.json", text), k + 1)
        if kind == "weibo-2015":
            # The original 2015 release: no position digits, emoji as UTF-16 surrogate halves (written
            # as 3-byte sequences, invalid UTF-8), each half on its own line. The 2nd-version file
            # lost its emoji ("\ufffd\ufffd0"); put real ones back, cycling through a few.
            emoji = ["\U0001F600", "\U0001F62D", "\U0001F44D", "\U0001F525"]
            out, used, n = [], [], 0
            for line in real_corpora["weibo_train"].read_text("utf-8").split("\n"):
                if not line.strip():
                    out.append(line)
                    continue
                field, tag = line.split("\t")
                if field.startswith("\ufffd\ufffd"):
                    e = emoji[n % len(emoji)]
                    n += 1
                    used.append(e)
                    units = e.encode("utf-16-be")
                    high, low = (chr(int.from_bytes(units[i:i + 2], "big")) for i in (0, 2))
                    out.append(f"{high}\t{tag}")
                    out.append(f"{low}\t{tag}")
                else:
                    out.append(f"{field[0]}\t{tag}")
            data = "\n".join(out).encode("utf-8", "surrogatepass")
            return Corrupted(write("weiboNER.conll.train", data), None, {"emoji": used})
        raise KeyError(kind)

    return build


@pytest.fixture
def tfner_warnings(caplog):
    """``tfner_warnings()`` -> the WARNING messages logged under ``tfner`` so far."""
    caplog.set_level(logging.WARNING, logger="tfner")

    def messages():
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("tfner")]

    return messages
