"""Paper A: ALBERT-BiLSTM-CRF on MSRA (Tables 3 and 4), with the rows it compares against.

    python experiments/run_msra.py                          # paper hyper-parameters, all rows
    python experiments/run_msra.py --max-steps 300 --train-fraction 0.2   # a short run, same code
    python experiments/run_msra.py --config experiments/configs/msra_quick.json
    python experiments/run_msra.py --config experiments/configs/msra_main.json   # `make reproduce`
    python experiments/run_msra.py --config experiments/configs/msra_softlexicon.json  # + bigrams, SoftLexicon

Rows are tfner presets: char-bilstm-crf (no pretraining), bert-softmax ("BERT fine-tuning"),
bert-bilstm-crf, albert-softmax ("ALBERT fine-tuning"), albert-bilstm-crf (the paper's model).
When a paper encoder cannot be had (no hub here), the script says so and uses the offline encoder;
every row is labelled with the encoder actually used. Results go to results/msra/<run>/.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfner.training.experiment import parse_args  # noqa: E402

logger = logging.getLogger("tfner.experiment.msra")

PAPER_TABLE3 = {  # ALBERT-BiLSTM-CRF per type, P/R/F1 (%)
    "PER": (97.87, 96.40, 97.13), "LOC": (97.36, 90.72, 93.92), "ORG": (96.69, 93.61, 95.13)}
PAPER_TABLE4 = {  # P/R/F1 (%)
    "lattice-lstm-crf": ("Lattice-LSTM-CRF", 93.57, 92.79, 93.18),
    "bert-softmax": ("BERT fine-tuning", 96.68, 96.01, 96.33),
    "albert-softmax": ("ALBERT fine-tuning", 95.15, 94.11, 94.62),
    "bert-bilstm-crf": ("BERT-BiLSTM-CRF", 97.92, 96.88, 97.40),
    "albert-bilstm-crf": ("ALBERT-BiLSTM-CRF", 97.38, 93.16, 95.22),
    "char-bilstm-crf": ("(in-house non-pretrained reference; paper: Lattice-LSTM-CRF)", None, None, None),
}
ALL_ROWS = "char-bilstm-crf,bert-softmax,bert-bilstm-crf,albert-softmax,albert-bilstm-crf"


@dataclasses.dataclass
class MsraArgs:
    """Reproduce paper A (ALBERT-BiLSTM-CRF on MSRA)."""

    rows: str = dataclasses.field(default=ALL_ROWS, metadata={"help": "comma-separated presets"})
    bert_encoder: str = dataclasses.field(
        default="bert-base-chinese",
        metadata={"help": "encoder of the BERT rows: HF dir, TF1 checkpoint dir or hub id"})
    albert_encoder: str = dataclasses.field(
        default="albert_base_zh",
        metadata={"help": "encoder of the ALBERT rows (paper: brightmart albert_base_zh TF1 checkpoint)"})
    offline_encoder: str = dataclasses.field(
        default="", metadata={"help": "used when a paper encoder is unavailable (default: "
                                      "../shared/encoders/tiny-bert-zh-L2-H128 or $TFNER_ENCODER_DIR)"})
    data_dir: str = dataclasses.field(default="", metadata={"help": "corpus root (default: resolver)"})
    epochs: int = dataclasses.field(default=3, metadata={"help": "maximum epochs"})
    max_steps: int | None = dataclasses.field(default=None, metadata={"help": "cap on optimizer steps per row"})
    steps_per_epoch: int | None = dataclasses.field(
        default=None, metadata={"help": "steps between dev evaluations (default: one pass)"})
    train_fraction: float = dataclasses.field(default=1.0, metadata={"help": "fraction of train used"})
    test_fraction: float = dataclasses.field(default=1.0, metadata={"help": "fraction of test scored"})
    dev_size: int = dataclasses.field(
        default=2000, metadata={"help": "sentences held out of train for early stopping (MSRA has no dev)"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "paper: 64"})
    max_length: int = dataclasses.field(
        default=128, metadata={"help": "paper: 128; 0 = mean + 3 sigma of train lengths"})
    encoder_lr: float = dataclasses.field(default=2e-5, metadata={"help": "paper: 2e-5"})
    head_lr: float = dataclasses.field(default=1e-3, metadata={"help": "BiLSTM / embeddings / emissions"})
    crf_lr: float | None = dataclasses.field(default=None, metadata={"help": "CRF transitions (default head_lr)"})
    layer_decay: float = dataclasses.field(
        default=1.0, metadata={"help": "layer-wise lr decay: the top encoder layer trains at encoder_lr, each "
                                       "layer below at this factor more (1 = none)"})
    warmup_fraction: float = 0.1
    dropout: float = dataclasses.field(default=0.1, metadata={"help": "paper: 0.1"})
    context_units: int = dataclasses.field(default=128, metadata={"help": "BiLSTM units per direction"})
    context_layers: int = dataclasses.field(default=1, metadata={"help": "stacked BiLSTM layers"})
    char_embedding_dim: int = 128
    char_embeddings: str = dataclasses.field(
        default="", metadata={"help": "initial character embeddings for char rows: a word2vec text file, "
                                      "or an encoder directory whose token embeddings are used"})
    features: str = dataclasses.field(
        default="", metadata={"help": "input features of the char rows: bigram, softlexicon or both "
                                      "(comma-separated; see tfner.features)"})
    lexicon: str = dataclasses.field(
        default="jieba", metadata={"help": "SoftLexicon words: 'jieba' (its dictionary), a word list or a "
                                           "word2vec file"})
    word_vectors: str = dataclasses.field(
        default="", metadata={"help": "word2vec file for the lexicon words (default: gensim on train)"})
    bigram_vectors: str = dataclasses.field(
        default="", metadata={"help": "word2vec file for bigrams (default: gensim on train)"})
    unseen_words: str = dataclasses.field(
        default="drop", metadata={"help": "lexicon words absent from the training text: drop, shared "
                                          "(kept, one vector per word length) or class (kept, one vector "
                                          "per lexicon class: jieba's part-of-speech tag)"})
    own_min_count: int = dataclasses.field(
        default=1, metadata={"help": "with --unseen-words shared/class: training-text words counted fewer "
                                     "times share those vectors too (1: all have their own)"})
    lexicon_word_dropout: float = dataclasses.field(
        default=0.0, metadata={"help": "with --unseen-words shared/class: in training, a word with its own vector "
                                       "uses its shared vector with this probability (a tfner addition, not "
                                       "in Ma et al. 2020)"})
    unlabelled_text: str = dataclasses.field(
        default="", metadata={"help": "texts whose words and bigrams count as feature statistics too, their "
                                      "tags never read: 'dev', 'test' and/or files of one text per line, "
                                      "comma-separated; 'dev,test' is the SoftLexicon reference code's "
                                      "setting (lexicon counts from train, dev and test text)"})
    feature_dim: int = dataclasses.field(default=50, metadata={"help": "bigram / lexicon vector size"})
    max_word_length: int = dataclasses.field(default=6, metadata={"help": "longest lexicon word matched"})
    bigram_min_count: int = dataclasses.field(
        default=1, metadata={"help": "rarer bigrams share the unknown id"})
    check_export: bool = dataclasses.field(
        default=False, metadata={"help": "export the first row and check its tags on the whole test set "
                                         "against the Keras model's (raw text in)"})
    patience: int = 3
    seed: int = 42
    output_dir: str = "results/msra"
    run_name: str = dataclasses.field(default="", metadata={"help": "default: derived from the arguments"})
    verbose: int = 2
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "discard a different run already in the output directory "
                                         "(otherwise refused; an identical rerun resumes or reuses it)"})
    export_dir: str = dataclasses.field(
        default="", metadata={"help": "export the first row's best model as a SavedModel here "
                                      "(e.g. saved_models/msra; a new version each run)"})
    demo_text: str = dataclasses.field(
        default="", metadata={"help": "after training, print the entities the model finds in this text "
                                      "(through the export when --export-dir is given)"})

    def __post_init__(self):
        unknown = [r for r in self.row_list() if r not in PAPER_TABLE4 or r == "lattice-lstm-crf"]
        if unknown:
            raise ValueError(f"unknown rows {unknown}; choose from {ALL_ROWS}")
        if not 0 < self.train_fraction <= 1 or not 0 < self.test_fraction <= 1:
            raise ValueError("fractions must be in (0, 1]")
        from tfner.features import parse_features

        parse_features(self.features)
        for part in _parts(self.unlabelled_text):
            if part not in ("dev", "test") and not os.path.isfile(part):
                raise ValueError(f"--unlabelled-text: {part!r} is neither dev nor test nor a file")
        if self.unlabelled_text and not self.features:
            raise ValueError("--unlabelled-text feeds the input features' statistics: add --features")

    def row_list(self):
        return _parts(self.rows)


def main(argv=None):
    args = parse_args(MsraArgs, argv)
    import keras

    from tfner.data import LabelVocabulary, corpus_stats, read_msra
    from tfner.encoders import default_encoder_path
    from tfner.evaluation import confusion_matrix, entity_scores
    from tfner.models import build_tagger, parameter_counts, predict_tags
    from tfner.preprocessing import encode_corpus, max_length_from_lengths, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger
    from tfner.training.experiment import load_encoder_or_fallback, prepare_run_dir, write_json
    from tfner.evaluation.reports import msra_tables, plot_dev_curves

    run_name = args.run_name or _default_run_name(args)
    run_dir = prepare_run_dir(args.output_dir, run_name, args)
    offline = args.offline_encoder or str(default_encoder_path())

    # --- data ---------------------------------------------------------------------------------
    data_dir = args.data_dir or None
    train_all = read_msra("train", data_dir=data_dir)
    test = read_msra("test", data_dir=data_dir)
    rng = _rng(args.seed)
    order = rng.permutation(len(train_all))
    dev = [train_all[i] for i in order[:args.dev_size]]
    train = [train_all[i] for i in order[args.dev_size:]]
    if args.train_fraction < 1:
        train = train[:max(1, int(len(train) * args.train_fraction))]
    if args.test_fraction < 1:
        test = test[:max(1, int(len(test) * args.test_fraction))]
    labels = LabelVocabulary.from_types(["LOC", "ORG", "PER"], "BIO")
    max_length = args.max_length or max_length_from_lengths([len(s) for s in train])
    train, n_split = split_long_sentences(train, max_length)
    data_info = {
        "corpus": "MSRA (SIGHAN 2006, processed copy)",
        "train": corpus_stats(train), "dev (held out of train)": corpus_stats(dev),
        "test": corpus_stats(test), "max_length": max_length, "train_windows_split": n_split,
    }
    logger.info("data: %s", data_info)
    unlabelled = _unlabelled_texts(args.unlabelled_text, {"dev": dev, "test": test})
    feature_source = _FeatureSource(args, train, unlabelled) if args.features else None

    # --- rows ---------------------------------------------------------------------------------
    results = {}
    used_encoders = {}
    for row in args.row_list():
        family = row.split("-")[0]
        keras.utils.set_random_seed(args.seed)
        encoder_used, note, bundle = None, None, None
        if family in ("bert", "albert"):
            spec = args.bert_encoder if family == "bert" else args.albert_encoder
            bundle, note = load_encoder_or_fallback(spec, offline)
            encoder_used = _encoder_label(bundle.source, spec if note else None)
            twin = _same_model_already_run(row, bundle.source, used_encoders, results)
            if twin:
                logger.warning("%s: same encoder (%s) and head as %s: reusing its result",
                               row, encoder_used, twin)
                results[row] = dict(results[twin], reused_from=twin, note=note, encoder=encoder_used)
                continue
            used_encoders[row] = bundle.source
        else:
            encoder_used = "none (random character embeddings)"
        logger.info("=== %s (encoder: %s) ===", row, encoder_used)
        vocabulary, embedding_matrix = None, None
        if bundle is None:
            from tfner.preprocessing import CharTokenizer

            vocabulary = CharTokenizer.from_vocab_file(os.path.join(offline, "vocab.txt")).vocabulary
            if args.char_embeddings:
                from tfner.encoders import char_embedding_matrix

                embedding_matrix, encoder_used = char_embedding_matrix(args.char_embeddings, vocabulary, seed=args.seed)
        feature_info = None
        if feature_source is not None:
            encoder_used += " + " + args.features.replace(",", " + ")
        tagger, tokenizer = build_tagger(
            row, labels=labels.labels, encoder=bundle, vocabulary=vocabulary,
            context_units=args.context_units, context_layers=args.context_layers, embedding_dim=args.char_embedding_dim,
            embedding_matrix=embedding_matrix, dropout=args.dropout,
            features=feature_source.layers if feature_source is not None else None)
        if feature_source is not None:
            feature_info = feature_source.info
        params = parameter_counts(tagger)
        corpus = encode_corpus(train, tokenizer, labels)
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
            steps_per_epoch=args.steps_per_epoch, encoder_lr=args.encoder_lr, head_lr=args.head_lr,
            crf_lr=args.crf_lr, layer_decay=args.layer_decay, warmup_fraction=args.warmup_fraction, patience=args.patience,
            seed=args.seed, eval_max_length=max_length, verbose=args.verbose)
        start = time.perf_counter()
        result = fit_tagger(tagger, corpus, dev, tokenizer, config, run_dir / row, overwrite=args.overwrite)
        train_seconds = time.perf_counter() - start
        pred = predict_tags(tagger, test, tokenizer=tokenizer, max_length=max_length)
        scores = entity_scores([s.tags for s in test], pred, scheme="BIO")
        logger.info("%s: test entity F1 %.4f", row, scores["f1"])
        results[row] = {
            "encoder": encoder_used, "note": note, "parameters": params,
            "steps_trained": result.steps_trained, "epochs_run": len(result.history),
            "seconds_per_epoch": result.seconds_per_epoch, "train_wall_seconds": train_seconds,
            "best_dev_f1": result.best_dev_f1, "history": result.history, "test": scores,
            "features": feature_info,
            "test_confusion": {"labels": labels.labels, "rows_true_cols_pred": confusion_matrix(
                [s.tags for s in test], pred, labels.labels).tolist()},
        }
        if args.check_export and row == args.row_list()[0]:
            results[row]["export_check"] = _check_export(tagger, test, pred, run_dir / "export_check")
        write_json(run_dir / "metrics.json", {"data": data_info, "rows": results})

    # --- tables and figures ---------------------------------------------------------------------
    write_json(run_dir / "metrics.json", {"data": data_info, "rows": results})
    table3, table4 = msra_tables(results, PAPER_TABLE3, PAPER_TABLE4, data_info, args)
    (run_dir / "table3.md").write_text(table3, encoding="utf-8")
    (run_dir / "table4.md").write_text(table4, encoding="utf-8")
    plot_dev_curves({r: v["history"] for r, v in results.items() if "reused_from" not in v},
                    run_dir / "dev_f1.png", title=f"MSRA dev entity F1 ({run_name})")
    print(table4)
    print(table3)
    logger.info("wrote %s", run_dir)
    if args.export_dir or args.demo_text:
        _export_and_demo(args, run_dir / args.row_list()[0])
    return results


def _export_and_demo(args, row_dir):
    """Exports the first row's best model (``--export-dir``) and tags ``--demo-text`` with it."""
    from tfner.export import TextPredictor, export_saved_model, load_tagger

    model = row_dir / "best.keras"
    if not model.exists():
        logger.warning("%s: no best model to export or demo (no dev set?)", row_dir)
        return
    source = model
    if args.export_dir:
        source = export_saved_model(load_tagger(model), args.export_dir)
        logger.info("exported %s to %s", model, source)
        print(f"\nSavedModel: {source}  (serve it: tfner serve --model {args.export_dir}; "
              f"tag a file: tfner predict --model {args.export_dir} --input sentences.txt)")
    if args.demo_text:
        result = TextPredictor(str(source))([args.demo_text])[0]
        print(f"\nDemo: {args.demo_text}")
        for entity in result["entities"]:
            print(f"  {entity['type']:<4} {entity['text']}  [{entity['start']}, {entity['end']})  "
                  f"confidence {entity['confidence']:.3f}")
        if not result["entities"]:
            print("  (no entities found)")


class _FeatureSource:
    """Builds the input feature layers of the char rows; the gensim vectors and the fitted
    lexicon are computed once and shared by the rows (each row gets its own layers)."""

    def __init__(self, args, train, unlabelled=()):
        from tfner.features import Lexicon, load_vectors, parse_features, train_bigram_vectors, train_word_vectors

        self.args, self.train, self.unlabelled = args, train, list(unlabelled)
        statistics = list(train) + self.unlabelled
        self.names = parse_features(args.features)
        start = time.perf_counter()
        self.word_vectors = self.bigram_vectors = self.lexicon = None
        if "softlexicon" in self.names:
            self.lexicon = Lexicon.load(args.lexicon)
            self.source_words = len(self.lexicon)
            self.word_vectors = (load_vectors(args.word_vectors) if args.word_vectors
                                 else train_word_vectors(statistics, args.feature_dim, seed=args.seed))
        if "bigram" in self.names:
            self.bigram_vectors = (load_vectors(args.bigram_vectors) if args.bigram_vectors
                                   else train_bigram_vectors(statistics, args.feature_dim, seed=args.seed))
        self.seconds = time.perf_counter() - start
        self.info = None

    def layers(self, tokenizer):
        from tfner.features import build_input_features

        layers, info = build_input_features(
            self.train, tokenizer, self.names, lexicon=self.lexicon, unseen_words=self.args.unseen_words,
            own_min_count=self.args.own_min_count, word_dropout=self.args.lexicon_word_dropout,
            word_vectors=self.word_vectors, bigram_vectors=self.bigram_vectors, dim=self.args.feature_dim,
            max_word_length=self.args.max_word_length, bigram_min_count=self.args.bigram_min_count,
            unlabelled_texts=self.unlabelled or None, seed=self.args.seed)
        trained_on = "the training text" + (f" and the unlabelled text ({self.args.unlabelled_text})"
                                            if self.unlabelled else "")
        for name, given in (("bigram", self.args.bigram_vectors), ("softlexicon", self.args.word_vectors)):
            if name in info:
                info[name]["vectors"] = given or f"gensim word2vec (skip-gram) trained on {trained_on}"
        if "softlexicon" in info:
            info["softlexicon"].update(lexicon=self.args.lexicon, lexicon_words=self.source_words)
        self.info = dict(info, preparation_seconds=round(self.seconds, 1))
        return layers


def _unlabelled_texts(spec, splits):
    """``--unlabelled-text``: the raw texts of the named splits (``dev``, ``test``) and of files
    (one text per line), in order; their tags are never read."""
    from tfner.features import read_unlabelled_texts

    texts = []
    for part in _parts(spec):
        if part in splits:
            texts.extend("".join(s.chars) for s in splits[part])
            logger.warning("--unlabelled-text: the %s text (%d sentences) counts as lexicon/bigram statistics "
                           "(words, counts, gensim vectors), as in the SoftLexicon reference code; its tags "
                           "are not read", part, len(splits[part]))
        else:
            texts.extend(read_unlabelled_texts(part))
    return texts


def _parts(spec):
    """The non-empty items of a comma-separated argument."""
    return [p.strip() for p in spec.split(",") if p.strip()]


def _check_export(tagger, test, pred, out_dir):
    """Exports ``tagger`` and tags the raw test texts through the SavedModel: the share of
    sentences whose tags equal the Keras path's (``pred``), and the tagging speed."""
    from tfner.export import TextPredictor, export_saved_model

    path = export_saved_model(tagger, out_dir)
    predictor = TextPredictor(str(path))
    texts = ["".join(s.chars) for s in test]
    start = time.perf_counter()
    served = []
    for b in range(0, len(texts), 64):
        served.extend(r["tags"] for r in predictor(texts[b:b + 64]))
    seconds = time.perf_counter() - start
    same = sum(a == b for a, b in zip(served, pred))
    report = {"sentences": len(texts), "equal_tags": same, "differing": len(texts) - same,
              "saved_model": str(path), "chars_per_second": round(sum(map(len, texts)) / seconds, 1)}
    logger.info("export check: %d of %d test sentences tagged identically by the SavedModel",
                same, len(texts))
    return report


def _same_model_already_run(row, encoder_used, used_encoders, results):
    head = row.split("-", 1)[1]
    for other, enc in used_encoders.items():
        if other != row and enc == encoder_used and other.split("-", 1)[1] == head and other in results:
            return other
    return None


def _encoder_label(source, substituted_for=None):
    path = source.rstrip("/")
    if path.endswith((".safetensors", ".bin", ".json")) or ".ckpt" in os.path.basename(path):
        path = os.path.dirname(path)
    name = os.path.basename(path) or source
    return f"{name} (offline substitute for {substituted_for})" if substituted_for else name


def _rng(seed):
    import numpy as np

    return np.random.default_rng(seed)


def _default_run_name(args):
    parts = []
    if args.max_steps:
        parts.append(f"steps{args.max_steps}")
    else:
        parts.append(f"ep{args.epochs}")
    if args.train_fraction < 1:
        parts.append(f"train{args.train_fraction:g}")
    rows = args.row_list()
    parts.append("all" if ",".join(rows) == ALL_ROWS else "+".join(rows))
    if args.features:
        parts.append(args.features.replace(",", "+"))
    if args.unlabelled_text:
        parts.append("unlabelled-" + "+".join(os.path.basename(p) for p in _parts(args.unlabelled_text)))
    return "_".join(parts)


if __name__ == "__main__":
    main()
