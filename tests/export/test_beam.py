"""`tfner.beam` / `tfner predict --runner beam`: an exported SavedModel in Apache Beam's
RunInference (DirectRunner) writes, line for line, what plain `tfner predict` writes.

Input: ~200 MSRA test sentences when ../shared/data is present (else a built-in sample), split
over a plain and a gzipped file (a glob matches both). Needs apache-beam (`pip install
"tfner[beam]"`); skipped without it. The 10,000-line comparison and the throughput measurement
are `benchmarks/beam_predict.py`.
"""

import gzip
import json
import pathlib

import pytest

beam = pytest.importorskip("apache_beam", reason='apache-beam is not installed (pip install "tfner[beam]")')
pytest.importorskip("tensorflow_hub", reason="Beam's TensorFlow model handler imports tensorflow_hub")

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SAMPLE = ["王小明在北京大学读书，他去年夏天参观了上海博物馆。", "", "联合国教科文组织在巴黎。",
          "Ｈｅｌｌｏ　世界！张伟住在南京市。", "中共中央致中国致公党十一大的贺词", "　", "李华"]


def _texts(n=200):
    path = SHARED / "data" / "msra" / "test_data"
    if path.exists():
        from tfner.data import read_msra

        sentences = read_msra("test", data_dir=SHARED / "data", download=False)
        return ["".join(s.chars) for s in sentences[:n - len(SAMPLE)]] + SAMPLE
    return (SAMPLE * (n // len(SAMPLE) + 1))[:n]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny char BiLSTM-CRF (random weights: varied tags) exported as a SavedModel."""
    import keras

    from tfner.export import export_saved_model
    from tfner.models import build_tagger

    texts = _texts()
    keras.utils.set_random_seed(3)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set("".join(texts)))[:3000]
    labels = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    tagger, _ = build_tagger("char-bilstm-crf", labels=labels, vocabulary=vocab,
                             context_units=8, embedding_dim=8)
    base = tmp_path_factory.mktemp("beam_model") / "tiny"
    return export_saved_model(tagger, base), texts


@pytest.mark.parametrize("output_format", ["tags", "jsonl"])
def test_beam_output_equals_tfner_predict(exported, tmp_path, output_format):
    from tfner import beam as tfner_beam
    from tfner.export import TextPredictor, predict_file

    model, texts = exported
    half = len(texts) // 2
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("\n".join(texts[:half]) + "\n", encoding="utf-8")
    with gzip.open(inputs / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(texts[half:]) + "\n")

    predictor = TextPredictor(model)
    expected = {}
    for name, lines in (("a", texts[:half]), ("b", texts[half:])):
        plain_in = tmp_path / f"{name}.plain.txt"
        plain_in.write_text("\n".join(lines) + "\n", encoding="utf-8")
        plain_out = tmp_path / f"{name}.plain.out"
        assert predict_file(predictor, plain_in, plain_out, output_format=output_format,
                            progress=False) == len(lines)
        expected[name] = plain_out.read_text(encoding="utf-8").splitlines()

    out_dir = tmp_path / "out"
    info = tfner_beam.run(model, str(inputs / "*"), str(out_dir) + "/", output_format=output_format,
                          max_batch_size=16)
    assert info["inputs"] == 2
    suffix = "tags" if output_format == "tags" else "jsonl"
    for name in ("a", "b"):
        got = (out_dir / f"{name}.{suffix}").read_text(encoding="utf-8").splitlines()
        assert len(got) == len(expected[name])
        if output_format == "tags":
            assert got == expected[name]
        else:
            for g, e in zip(got, expected[name]):
                g, e = json.loads(g), json.loads(e)
                assert g["text"] == e["text"]
                assert [(x["start"], x["end"], x["type"], x["text"]) for x in g["entities"]] == \
                       [(x["start"], x["end"], x["type"], x["text"]) for x in e["entities"]]
                for x, y in zip(g["entities"], e["entities"]):  # other batches, other padding
                    assert x["confidence"] == pytest.approx(y["confidence"], abs=1e-5)


def test_beam_keyed_records_and_single_file_output(exported, tmp_path):
    from tfner import beam as tfner_beam

    model, texts = exported
    texts = texts[:20]
    source = tmp_path / "one.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    single = tmp_path / "one.tags"
    tfner_beam.run(model, str(source), str(single))
    assert len(single.read_text(encoding="utf-8").splitlines()) == len(texts)

    info = tfner_beam.run(model, str(source), str(tmp_path / "keyed"), keyed=True,
                          pipeline_options=["--direct_num_workers=1"])
    records = [json.loads(line) for shard in info["shards"]
               for line in pathlib.Path(shard).read_text(encoding="utf-8").splitlines()]
    assert sorted(r["line"] for r in records) == list(range(1, len(texts) + 1))
    by_line = {r["line"]: r for r in records}
    assert by_line[1]["file"].endswith("one.txt")
    assert by_line[1]["tags"] == single.read_text(encoding="utf-8").splitlines()[0]
