"""`tfner` command line: train | evaluate | export | predict | serve | check.

    tfner train --preset bert-bilstm-crf --encoder ../shared/encoders/tiny-bert-zh-L2-H128 \
        --train train.txt --dev dev.txt --out runs/my-tagger --epochs 3
    tfner evaluate --model runs/my-tagger/best.keras --data test.txt
    tfner export --model runs/my-tagger --out saved_models/my-tagger      # -> saved_models/my-tagger/1/
    tfner predict --model saved_models/my-tagger --input sentences.txt --output tags.txt
    tfner predict --model runs/my-tagger/best.keras --input sentences.txt --output spans.jsonl \
        --format jsonl
    tfner serve --model saved_models/my-tagger --port 8501                # TF Serving's REST API
    tfner check --text sentences.txt --tags tags.txt

Corpora for train/evaluate are CoNLL-style files (`char<TAB or SPACE>tag`, blank line between
sentences) or a corpus name known to the resolver (`msra:train`, `msra:test`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger("tfner.cli")


def _read_corpus(spec, scheme="BIO"):
    from tfner.data import read_conll, read_msra

    if spec.startswith("msra:"):
        return read_msra(spec.split(":", 1)[1])
    return read_conll(spec, scheme=scheme)


def cmd_train(a):
    import keras

    from tfner.data import LabelVocabulary, corpus_stats
    from tfner.encoders import default_encoder_path
    from tfner.models import PRESETS, build_tagger
    from tfner.preprocessing import CharTokenizer, encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    keras.utils.set_random_seed(a.seed)
    train = _read_corpus(a.train, a.scheme)
    dev = _read_corpus(a.dev, a.scheme) if a.dev else None
    labels = LabelVocabulary.from_sentences(train, a.scheme)
    logger.info("train: %s", corpus_stats(train, a.scheme))
    vocabulary = None
    if PRESETS[a.preset]["encoder"] is None:
        vocab_file = a.vocab or str(default_encoder_path() / "vocab.txt")
        vocabulary = CharTokenizer.from_vocab_file(vocab_file).vocabulary
    tagger, tokenizer = build_tagger(
        a.preset, labels=labels.labels, encoder=a.encoder, vocabulary=vocabulary,
        context_units=a.context_units, dropout=a.dropout, scheme=a.scheme)
    train, _ = split_long_sentences(train, a.max_length)
    config = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, max_steps=a.max_steps,
                         encoder_lr=a.encoder_lr, head_lr=a.head_lr, crf_lr=a.crf_lr,
                         seed=a.seed, eval_max_length=a.max_length)
    result = fit_tagger(tagger, encode_corpus(train, tokenizer, labels), dev, tokenizer, config, a.out)
    final = f"{a.out}/final.keras"
    tagger.save(final)
    print(json.dumps({"best": result.best_path, "final": final, "best_dev_f1": result.best_dev_f1,
                      "steps": result.steps_trained}))


def cmd_evaluate(a):
    from tfner.evaluation import entity_scores, format_report
    from tfner.export import load_tagger
    from tfner.models import predict_tags

    tagger = load_tagger(a.model)
    data = _read_corpus(a.data, tagger.scheme)
    pred = predict_tags(tagger, data, batch_size=a.batch_size)
    scores = entity_scores([s.tags for s in data], pred, scheme=tagger.scheme)
    print(format_report(scores))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(scores, fh, indent=2)


def cmd_export(a):
    from tfner.export import export_saved_model, find_keras_model, load_tagger

    path = find_keras_model(a.model)
    tagger = load_tagger(path)
    target = export_saved_model(tagger, a.out, version=a.version, window=a.window,
                                overlap=a.overlap, max_batch_windows=a.max_batch_windows,
                                jit_compile=a.jit_compile)
    print(f"exported {path} to {target}")


def cmd_predict(a):
    from tfner.export import TextPredictor, predict_file

    predictor = TextPredictor(a.model, window=a.window, overlap=a.overlap, jit_compile=a.jit_compile)
    n = predict_file(predictor, a.input, a.output, output_format=a.format,
                     batch_size=a.batch_size, chunk_size=a.chunk, progress=not a.quiet)
    print(f"wrote {n} {'tag' if a.format == 'tags' else 'JSON'} lines to {a.output}")


def cmd_serve(a):
    from tfner.serving import serve

    serve(a.model, port=a.port, host=a.host, name=a.name, version_policy=a.model_version_policy,
          max_body_bytes=a.max_body_bytes, warmup=a.warmup, timeout_s=a.timeout)


def cmd_check(a):
    problems = check_tag_file(a.text, a.tags)
    for p in problems[:20]:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print("ok: every tag line has one tag per character")
    return 0


def check_tag_file(text_path, tag_path):
    """Problems (strings) where the tag file does not have one tag per character of the text file."""
    problems = []
    with open(text_path, encoding="utf-8-sig") as ft, open(tag_path, encoding="utf-8") as fg:
        text_lines = [line.rstrip("\r\n") for line in ft]
        tag_lines = [line.rstrip("\r\n") for line in fg]
    if len(text_lines) != len(tag_lines):
        problems.append(f"{tag_path}: {len(tag_lines)} tag lines for {len(text_lines)} text lines")
    for i, (text, tags) in enumerate(zip(text_lines, tag_lines), start=1):
        n_tags = len(tags.split(" ")) if tags else 0
        if n_tags != len(text):
            problems.append(f"{tag_path}:{i}: {n_tags} tags for {len(text)} characters")
    return problems


def build_parser():
    p = argparse.ArgumentParser(prog="tfner", description="Chinese NER with TensorFlow/Keras")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tagger on CoNLL-style files")
    t.add_argument("--preset", default="bert-bilstm-crf")
    t.add_argument("--encoder", help="HF dir, TF1 checkpoint dir or hub id (encoder presets)")
    t.add_argument("--vocab", help="vocab.txt for character presets (default: the offline encoder's)")
    t.add_argument("--train", required=True)
    t.add_argument("--dev")
    t.add_argument("--out", required=True)
    t.add_argument("--scheme", default="BIO")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--encoder-lr", type=float, default=5e-5)
    t.add_argument("--head-lr", type=float, default=1e-3)
    t.add_argument("--crf-lr", type=float)
    t.add_argument("--context-units", type=int, default=128)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=42)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="entity P/R/F1 of a .keras tagger on a corpus")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--json")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write a TF Serving SavedModel (raw text in, entities out)")
    x.add_argument("--model", required=True, help="a .keras file or a training run directory")
    x.add_argument("--out", required=True, help="the model's base directory, e.g. saved_models/msra")
    x.add_argument("--version", type=int, help="default: one more than the highest existing")
    x.add_argument("--window", type=int, help="characters per window (default: encoder limit or 510)")
    x.add_argument("--overlap", type=int, help="context shared by neighbouring windows (default 32)")
    x.add_argument("--max-batch-windows", type=int,
                   help="windows per pass through the tagger inside the graph (default 64)")
    x.add_argument("--jit-compile", action="store_true",
                   help="compile the tagger with XLA (much lower CPU latency; TF Serving then needs "
                        "--xla_cpu_compilation_enabled=true)")
    x.set_defaults(func=cmd_export)

    r = sub.add_parser("predict", help="one sentence per line in, one tag line (or JSON) per line out")
    r.add_argument("--model", required=True,
                   help="a SavedModel (version or base directory), a .keras file or a run directory")
    r.add_argument("--input", required=True)
    r.add_argument("--output", required=True)
    r.add_argument("--format", choices=("tags", "jsonl"), default="tags",
                   help="tags: space-separated tags; jsonl: entity spans with confidences")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--chunk", type=int, default=4096, help="lines read at a time (bounded memory)")
    r.add_argument("--window", type=int, help=".keras models: characters per window")
    r.add_argument("--overlap", type=int, help=".keras models: context shared by windows")
    r.add_argument("--jit-compile", action="store_true", help=".keras models: compile with XLA")
    r.add_argument("--quiet", action="store_true", help="no progress counter")
    r.set_defaults(func=cmd_predict)

    v = sub.add_parser("serve", help="serve a SavedModel over TF Serving's REST API")
    v.add_argument("--model", required=True, help="saved_models/<name> (or one version directory)")
    v.add_argument("--port", type=int, default=8501)
    v.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    v.add_argument("--name", help="model name in URLs (default: the directory name)")
    v.add_argument("--model-version-policy", choices=("latest", "all"), default="latest")
    v.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024,
                   help="larger request bodies get 413 (default 10 MiB)")
    v.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                   help="before listening, run inputs of every compiled shape, so no request pays "
                        "an XLA compilation (default: on for --jit-compile exports, off otherwise)")
    v.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a connection may stay silent (mid-request or idle) before it is "
                        "closed (default 30)")
    v.set_defaults(func=cmd_serve)

    c = sub.add_parser("check", help="verify a tag file has one tag per character of its text file")
    c.add_argument("--text", required=True)
    c.add_argument("--tags", required=True)
    c.set_defaults(func=cmd_check)
    return p


def main(argv=None):
    from tfner.training.experiment import setup_logging

    setup_logging()
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
