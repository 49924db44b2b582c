"""Beam RunInference vs plain `tfner predict` on real MSRA test sentences: equal output, chars/s.

    python benchmarks/beam_predict.py [--model SAVED_MODEL] [--lines 10000] [--workers 2]
        [--out benchmarks/results/beam_predict.json]

Input: --lines lines of MSRA test sentences (the 4,365 test sentences repeated in order when
more lines are asked for), written as a gzipped text file. Model: --model, or a char
BiLSTM-CRF of the size `make reproduce` trains (random weights: the speed is the same; the
output is compared, not scored), exported with `export_saved_model`.

Measured (wall time, including model loading and, for Beam, pipeline start-up and worker
processes): plain `predict_file` in this process (batch 64), and `tfner.beam.run` with the
DirectRunner in multi-process mode (`--direct_num_workers=N --direct_running_mode=
multi_processing`). The tag files must be equal line for line. Needs apache-beam (tfner[beam]).
"""

import argparse
import gzip
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def msra_lines(n):
    from tfner.data import read_msra

    shared = REPO.parent / "shared" / "data"
    sentences = read_msra("test", data_dir=shared if shared.exists() else None)
    texts = ["".join(s.chars) for s in sentences if s.chars]
    return [texts[i % len(texts)] for i in range(n)], len(texts)


def default_model(workdir, texts):
    import keras

    from tfner.export import export_saved_model
    from tfner.models import build_tagger

    keras.utils.set_random_seed(0)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set("".join(texts)))
    labels = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    tagger, _ = build_tagger("char-bilstm-crf", labels=labels, vocabulary=vocab,
                             context_units=128, embedding_dim=128)
    return export_saved_model(tagger, pathlib.Path(workdir) / "bench_model")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "beam_predict.json"))
    args = parser.parse_args(argv)

    from tfner import beam as tfner_beam
    from tfner.export import TextPredictor, predict_file

    lines, distinct = msra_lines(args.lines)
    chars = sum(len(t) for t in lines)
    with tempfile.TemporaryDirectory(prefix="tfner-beam-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        model = args.model or default_model(tmp, lines)
        source = tmp / "msra_test.txt.gz"
        with gzip.open(source, "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        plain_in = tmp / "msra_test.txt"
        plain_in.write_text("\n".join(lines) + "\n", encoding="utf-8")

        start = time.perf_counter()
        predictor = TextPredictor(model)
        predict_file(predictor, plain_in, tmp / "plain.tags", batch_size=args.batch_size, progress=False)
        plain_s = time.perf_counter() - start

        start = time.perf_counter()
        tfner_beam.run(model, str(source), str(tmp / "beam.tags"), max_batch_size=args.batch_size,
                       pipeline_options=[f"--direct_num_workers={args.workers}",
                                         "--direct_running_mode=multi_processing"])
        beam_s = time.perf_counter() - start

        plain = (tmp / "plain.tags").read_text(encoding="utf-8").splitlines()
        got = (tmp / "beam.tags").read_text(encoding="utf-8").splitlines()
        differing = sum(a != b for a, b in zip(plain, got)) + abs(len(plain) - len(got))

    import apache_beam
    import tensorflow as tf

    report = {
        "lines": len(lines), "distinct_msra_test_sentences": distinct, "characters": chars,
        "model": str(args.model or "char BiLSTM-CRF, 128 units, random weights (exported SavedModel)"),
        "batch_size": args.batch_size,
        "tfner_predict": {"seconds": round(plain_s, 2), "chars_per_s": round(chars / plain_s)},
        "beam_direct_multi_processing": {"workers": args.workers, "seconds": round(beam_s, 2),
                                         "chars_per_s": round(chars / beam_s)},
        "lines_differing": differing,
        "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "apache_beam": apache_beam.__version__, "tensorflow": tf.__version__,
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "wall time including model loading and pipeline/worker start-up; niced, on a shared machine",
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
