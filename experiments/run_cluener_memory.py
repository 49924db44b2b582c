"""Paper D: the associated-memory network on CLUENER2020 (Tables 4, 5, 7, 8; Fig. 6-7).

    python experiments/run_cluener_memory.py                        # the default study (CPU, < 2 h)
    python experiments/run_cluener_memory.py --study table7 --seeds 42
    python experiments/run_cluener_memory.py --config experiments/configs/cluener_memory_paper.json
    python experiments/run_cluener_memory.py --max-steps 20 --train-fraction 0.02 --seeds 42   # a smoke run

CLUENER2020's test labels are unpublished: dev is the evaluation set (the paper's Table 7/8 numbers
are the online test scores). Results go to results/cluener_memory/<run>/: tables.md (every table
with the paper's numbers side by side, labelled with encoder, data fraction, epochs and steps),
metrics.json, config.json (resolved arguments), attention_correct.png / attention_wrong.png (heat
maps between a dev sentence and its first memory), cluener_predict.json (test predictions in the
official submission format) and run.log.

Studies (``--study``; ``all`` runs both):

- ``table7``: rows ``lstm-crf`` (character embeddings + BiLSTM + self-attention + CRF),
  ``lstm-crf-memory`` (the same + associated memory), ``encoder-crf`` (pretrained encoder +
  self-attention + CRF; the paper: BERT-base / RoBERTa-wwm-ext) and ``encoder-crf-memory`` (the
  paper's model), each over ``--seeds``: dev P/R/F1 per seed, mean and spread, per-class dev
  P/R/F1 (Table 5), and the address-enhanced variant (Table 8: every memory entity tag looked up
  with the ``address`` label embedding), evaluated on the trained ``encoder-crf-memory`` models
  (``--address-mode eval``, no extra training) or trained with it (``--address-mode train``).
  Memory rows select memories by POS edit distance (``--selection``).
- ``selection`` (Table 4): one ``encoder-crf-memory`` model trained with category-distance memories
  (gold categories of the training sentences), scored on dev with memories chosen from dev's gold
  categories and from the entity-category classifier's predictions; the edit-distance row is
  ``encoder-crf-memory`` of table7 (trained here when table7 is not run). The classifier (encoder +
  mean pooling + sigmoid, trained on the training sentences) is scored on dev too.

Encoder: ``--encoder`` (paper: hfl/chinese-roberta-wwm-ext), default the offline encoder
(``tfner.encoders.default_encoder_path``: tiny-bert-zh-L2-H128), as in run_msra.py.

Default configuration (``python experiments/run_cluener_memory.py``): both studies, 4 rows x 3
seeds (42, 43, 44), tiny-bert-zh-L2-H128, train fraction 0.5 (5,374 of 10,748 sentences, 336
steps per epoch), 2 epochs (672 steps per training), batch 16, max length 64, 4 memories, the
paper's learning rates, dropout and attention size; the full dev set is scored after each epoch.

Its cost, measured on 2 CPU cores that were busy with another training run, this script under
``nice -n 19`` (``--max-steps 30 --epochs 1 --seeds 42``, same data and sizes; the median step
leaves out the first two steps, which trace the graph):

    row / part                     step (s)   one dev evaluation (s)   one training, 672 steps (s)
    lstm-crf                       0.16-0.18    5                        ~160
    lstm-crf-memory                0.44-0.46   15                        ~365
    encoder-crf                    0.13-0.16    7                        ~160
    encoder-crf-memory             0.44        24                        ~370 (+ ~20 s address eval)
    encoder-crf-memory (category)  0.55-0.62   22                        ~500 (selection study)
    category classifier            0.10         -                        ~100
    label embeddings (word2vec on 5,374 sentences) 42 s, POS tagging + memory selection 12 s,
    corpus encoding, heat maps and the test predictions ~2 min

Estimate of the default study: 3 x (160 + 365 + 160 + 390) + 500 + 100 + ~170 = ~4,000 s, about
67 minutes (under the 2 hours asked for, with room for slower steps). A memory step is ~3x a
no-memory step (each batch encodes 1 + 4 sentences). The 30-step measuring run itself took 8.3
min (tracing and the dev evaluations dominate short runs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfner.training.experiment import parse_args  # noqa: E402

logger = logging.getLogger("tfner.experiment.cluener_memory")

STUDIES = ("table7", "selection")
ROWS = ("lstm-crf", "lstm-crf-memory", "encoder-crf", "encoder-crf-memory")
PAPER_TABLE7 = {  # online test F1 (%)
    "lstm-crf": ("LSTM+CRF (LSTM+CRF+char 70.16)", 70.00),
    "lstm-crf-memory": ("LSTM+CRF+char + memory", 71.20),
    "encoder-crf": ("BERT-base (RoBERTa-wwm-base-ext 79.16)", 78.82),
    "encoder-crf-memory": ("RoBERTa-wwm-base-ext + memory", 79.98),
}
PAPER_TABLE4 = {  # dev P/R/F1 (%)
    "pos_edit": ("edit distance", 78.97, 81.41, 80.17),
    "category_gold": ("entity-category distance (gold)", 86.07, 87.11, 86.59),
    "category_pred": ("entity-category distance (pred)", 79.33, 81.58, 80.44),
}
PAPER_TABLE5 = {  # dev per class P/R/F1 (%): (RoBERTa-base, RoBERTa-base + memory + self-attention)
    "name": ((86.75, 90.11, 88.4), (86.25, 89.03, 87.62)),
    "organization": ((80.93, 80.93, 80.93), (80.05, 83.11, 81.55)),
    "position": ((81.26, 83.14, 82.19), (80.73, 82.22, 81.46)),
    "company": ((84.2, 81.75, 82.95), (80.25, 83.86, 82.02)),
    "address": ((59.76, 66.49, 62.94), (63.07, 67.29, 65.11)),
    "game": ((81.21, 86.44, 83.74), (82.19, 89.15, 85.53)),
    "government": ((79.1, 85.83, 82.33), (79.93, 87.04, 83.33)),
    "scene": ((69.12, 71.77, 70.42), (72.02, 66.51, 69.15)),
    "book": ((82.0, 79.87, 80.92), (81.82, 81.82, 81.82)),
    "movie": ((85.19, 76.16, 80.42), (84.56, 76.16, 80.14)),
    "macro": ((78.76, 80.99, 79.86), (78.97, 81.41, 80.17)),
}
PAPER_TABLE8 = {"address": 80.62, "memory": 79.98}


@dataclasses.dataclass
class CluenerMemoryArgs:
    """Reproduce paper D (associated-memory network) on CLUENER2020."""

    study: str = dataclasses.field(default="all", metadata={"help": "|".join(STUDIES) + "|all"})
    rows: str = dataclasses.field(default=",".join(ROWS), metadata={"help": "table7 rows, comma-separated"})
    encoder: str = dataclasses.field(
        default="", metadata={"help": "encoder of the encoder rows: HF dir, TF1 checkpoint or hub id (paper: "
                                      "hfl/chinese-roberta-wwm-ext); default: the offline encoder"})
    offline_encoder: str = dataclasses.field(
        default="", metadata={"help": "used when --encoder is unavailable (default: tiny-bert-zh-L2-H128)"})
    encoder_layers: int | None = dataclasses.field(
        default=None, metadata={"help": "keep only the first k encoder layers"})
    data_dir: str = dataclasses.field(default="", metadata={"help": "corpus root (default: resolver)"})
    train_fraction: float = dataclasses.field(default=0.5, metadata={"help": "share of train used (paper 1)"})
    dev_fraction: float = dataclasses.field(default=1.0, metadata={"help": "share of dev scored"})
    epochs: int = dataclasses.field(default=2, metadata={"help": "epochs per training (paper 20)"})
    max_steps: int | None = dataclasses.field(default=None, metadata={"help": "cap on steps per training"})
    steps_per_epoch: int | None = dataclasses.field(
        default=None, metadata={"help": "steps between dev evaluations (default: one pass)"})
    batch_size: int = dataclasses.field(default=16, metadata={"help": "paper 16"})
    max_length: int = dataclasses.field(
        default=64, metadata={"help": "sentences and memories, characters (paper 64); longer training "
                                      "sentences are split at punctuation, dev/test ones windowed"})
    num_memories: int = dataclasses.field(default=4, metadata={"help": "memories per sentence (paper 4)"})
    # The default study's few hundred steps need higher rates than the paper's 20 epochs: at the paper's
    # 2e-4 the LSTM-CRF row had dev F1 0.00 after 336 steps (measured), at 2e-3 0.15 then 0.40 after 672.
    encoder_lr: float = dataclasses.field(
        default=1e-3, metadata={"help": "paper 3e-5 (the offline 2-layer encoder trains best near 1e-3)"})
    head_lr: float = dataclasses.field(
        default=2e-3, metadata={"help": "every other layer (paper 2e-4; too low for the default's few steps)"})
    warmup_fraction: float = 0.1
    dropout: float = dataclasses.field(default=0.1, metadata={"help": "paper 0.1"})
    attention_dim: int = dataclasses.field(default=512, metadata={"help": "self-attention size (paper 512)"})
    attention_heads: int = 8
    context_units: int = dataclasses.field(default=128, metadata={"help": "BiLSTM units of the LSTM rows"})
    embedding_dim: int = dataclasses.field(default=128, metadata={"help": "character embeddings, LSTM rows"})
    selection: str = dataclasses.field(
        default="pos_edit", metadata={"help": "memory selection of the table7 memory rows: pos_edit|category"})
    word_vectors: str = dataclasses.field(
        default="", metadata={"help": "word2vec text file for the label embeddings (default: trained on train)"})
    word2vec_epochs: int = 5
    classifier_epochs: int | None = dataclasses.field(
        default=None, metadata={"help": "epochs of the category classifier (default --epochs)"})
    address_mode: str = dataclasses.field(
        default="eval", metadata={"help": "Table 8: eval (swap the label table of the trained models), train "
                                          "(train one model with it, first seed) or off"})
    submission_row: str = dataclasses.field(
        default="encoder-crf-memory", metadata={"help": "row whose first-seed model tags the test set"})
    seeds: str = dataclasses.field(default="42,43,44", metadata={"help": "table7 seeds; selection uses the first"})
    data_seed: int = dataclasses.field(default=42, metadata={"help": "order of the train-fraction sample"})
    eval_batch_size: int = 64
    output_dir: str = "results/cluener_memory"
    run_name: str = dataclasses.field(default="", metadata={"help": "default: derived from the arguments"})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "replace a finished run of that name"})
    verbose: int = 2

    def __post_init__(self):
        if self.study not in STUDIES + ("all",):
            raise ValueError(f"unknown study {self.study!r}; choose from {', '.join(STUDIES)}, all")
        unknown = [r for r in self.row_list() if r not in ROWS]
        if unknown:
            raise ValueError(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
        if "table7" in self.study_list() and not self.row_list():
            raise ValueError("--rows needs at least one row")
        if not self.seed_list():
            raise ValueError("--seeds needs at least one seed")
        if not 0 < self.train_fraction <= 1 or not 0 < self.dev_fraction <= 1:
            raise ValueError("fractions must be in (0, 1]")
        if self.selection not in ("pos_edit", "category"):
            raise ValueError(f"--selection must be pos_edit or category, got {self.selection!r}")
        if self.address_mode not in ("eval", "train", "off"):
            raise ValueError(f"--address-mode must be eval, train or off, got {self.address_mode!r}")
        if self.submission_row and self.submission_row not in ROWS:
            raise ValueError(f"--submission-row must be one of {', '.join(ROWS)} (or empty)")
        for name in ("epochs", "batch_size", "max_length", "num_memories"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")

    def row_list(self):
        return [r.strip() for r in self.rows.split(",") if r.strip()]

    def seed_list(self):
        return [int(s) for s in self.seeds.split(",") if s.strip()]

    def study_list(self):
        return list(STUDIES) if self.study == "all" else [self.study]


def _make_step_timer():
    import keras

    class _StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self._start = [], None

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self._start is not None:
                self.times.append(time.perf_counter() - self._start)

        def median(self):
            """Median step time without the first two steps (tracing), None when too few steps."""
            import statistics

            rest = self.times[2:]
            return statistics.median(rest) if rest else None

    return _StepTimer()


class UserError(Exception):
    """A problem the user can fix (missing data or encoder, a finished run in the way)."""


def main(argv=None):
    args = parse_args(CluenerMemoryArgs, argv)
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)


def run(args):
    import keras
    import numpy as np

    from tfner.data import LabelVocabulary, corpus_stats, read_cluener2020
    from tfner.data.resolve import corpus_file
    from tfner.encoders import default_encoder_path
    from tfner.evaluation import entity_scores
    from tfner.data.schemes import spans_from_tags
    from tfner.memory import (MemoryTrainConfig, build_memory_tagger, encode_memory_bank, encode_memory_corpus,
                              fit_memory_tagger, paper_label_embeddings, predict_memory_tags, select_memories)
    from tfner.memory.reports import address_enhanced_label_embeddings, mean_spread, write_cluener_submission
    from tfner.preprocessing import CharTokenizer, split_long_sentences
    from tfner.training.experiment import load_encoder_or_fallback, prepare_run_dir, write_json

    run_name = args.run_name or _default_run_name(args)
    out = os.path.join(args.output_dir, run_name)
    if os.path.exists(os.path.join(out, "metrics.json")) and not args.overwrite:
        raise UserError(f"{out} already holds a finished run; pass --overwrite or another --run-name")
    data_dir = args.data_dir or None
    try:
        train_all = read_cluener2020("train", data_dir)
        dev_all = read_cluener2020("dev", data_dir)
        test = read_cluener2020("test", data_dir)
        test_path = corpus_file("cluener2020", "test", root=data_dir)
        offline = args.offline_encoder or str(default_encoder_path())
    except FileNotFoundError as error:
        raise UserError(str(error).splitlines()[0]) from None
    run_dir = prepare_run_dir(args.output_dir, run_name, args)
    start_all = time.perf_counter()

    # --- data ---------------------------------------------------------------------------------
    rng = np.random.default_rng(args.data_seed)
    train = list(train_all)
    if args.train_fraction < 1:
        keep = np.sort(rng.permutation(len(train))[:max(1, int(len(train) * args.train_fraction))])
        train = [train[i] for i in keep]
    dev = dev_all[:max(1, int(len(dev_all) * args.dev_fraction))] if args.dev_fraction < 1 else dev_all
    train, n_split = split_long_sentences(train, args.max_length)
    test_ids = [json.loads(line)["id"] for line in test_path.read_text("utf-8").splitlines() if line.strip()]
    if len(test_ids) != len(test):
        raise UserError(f"{test_path}: {len(test_ids)} ids for {len(test)} sentences")
    labels = LabelVocabulary.from_sentences(train_all, "BIOS")
    categories = labels.types
    data_info = {"corpus": "CLUENER2020 (dev = evaluation set; test labels unpublished)",
                 "train": corpus_stats(train, "BIOS"), "dev": corpus_stats(dev, "BIOS"),
                 "test_sentences": len(test), "train_fraction": args.train_fraction,
                 "max_length": args.max_length, "train_windows_split": n_split}
    logger.info("data: %s", data_info)
    timings = {}

    # --- label embeddings, memories --------------------------------------------------------------
    t = time.perf_counter()
    label_matrix, _ = paper_label_embeddings(train, labels, word_vectors=args.word_vectors or None,
                                             seed=args.data_seed, epochs=args.word2vec_epochs)
    timings["label_embeddings_s"] = time.perf_counter() - t
    n = args.num_memories
    t = time.perf_counter()
    selections = {"train:pos_edit": select_memories(train, train, "pos_edit", n, exclude_self=True),
                  "dev:pos_edit": select_memories(dev, train, "pos_edit", n),
                  "test:pos_edit": select_memories(test, train, "pos_edit", n)}
    if args.selection == "category" or "selection" in args.study_list():
        selections["train:category"] = select_memories(train, train, "category", n, exclude_self=True,
                                                       categories=categories)
        selections["dev:category_gold"] = select_memories(dev, train, "category", n, categories=categories)
    timings["selection_s"] = time.perf_counter() - t

    # --- representations -------------------------------------------------------------------------
    needs_encoder = ("selection" in args.study_list() or args.selection == "category"
                     or any(r.startswith("encoder") for r in args.row_list()))
    bundle, note, encoder_name = None, None, "not used"
    if needs_encoder:
        bundle, note = load_encoder_or_fallback(args.encoder or offline, offline, num_layers=args.encoder_layers)
        encoder_name = _encoder_label(bundle.source, args.encoder if note else None)
    char_vocabulary = CharTokenizer.from_vocab_file(os.path.join(offline, "vocab.txt")).vocabulary

    def make_config(seed, epochs=None):
        return MemoryTrainConfig(
            epochs=epochs or args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
            steps_per_epoch=args.steps_per_epoch, encoder_lr=args.encoder_lr, head_lr=args.head_lr,
            warmup_fraction=args.warmup_fraction, seed=seed, max_length=args.max_length,
            memory_max_length=args.max_length, num_memories=n, dropout=args.dropout,
            label_embedding_dim=label_matrix.shape[1], attention_dim=args.attention_dim,
            attention_heads=args.attention_heads, eval_batch_size=args.eval_batch_size, verbose=args.verbose)

    tokenizers = {}

    def corpora(row, train_key, dev_key):
        """(train corpus, dev corpus) of a row, memories from the given selections."""
        tokenizer = tokenizers[row.startswith("encoder")]
        bank = encode_memory_bank(train, tokenizer, labels, args.max_length)
        train_corpus = encode_memory_corpus(train, selections[train_key], bank, tokenizer, labels,
                                            max_length=args.max_length)
        dev_corpus = encode_memory_corpus(dev, selections[dev_key], bank, tokenizer, labels,
                                          max_length=args.max_length, long_sentences="window")
        return train_corpus, dev_corpus

    def train_row(row, seed, train_key="train:pos_edit", dev_key="dev:pos_edit", matrix=None, tag=""):
        use_memory = row.endswith("memory")
        keras.utils.set_random_seed(seed)
        config = make_config(seed)
        if row.startswith("encoder"):
            encoder, vocabulary = bundle, None
        else:
            encoder, vocabulary = None, char_vocabulary
        model, tokenizer = build_memory_tagger(
            labels.labels, encoder=encoder, vocabulary=vocabulary,
            label_embeddings=label_matrix if matrix is None else matrix, config=config,
            use_memory=use_memory, context_units=args.context_units, embedding_dim=args.embedding_dim,
            scheme="BIOS")
        tokenizers.setdefault(row.startswith("encoder"), tokenizer)
        train_corpus, dev_corpus = corpora(row, train_key, dev_key)
        name = f"{row}{tag}_seed{seed}"
        logger.info("=== %s (encoder: %s, memories: %s) ===", name,
                    encoder_name if encoder is not None else "none (character embeddings)",
                    train_key.split(":")[1] if use_memory else "none")
        start = time.perf_counter()
        timer = _make_step_timer()
        result = fit_memory_tagger(model, train_corpus, config, dev_corpus=dev_corpus, dev_sentences=dev,
                                   output_dir=None, callbacks=[timer])
        seconds = time.perf_counter() - start
        steps = result.steps_trained
        pred = predict_memory_tags(model, dev_corpus, batch_size=args.eval_batch_size)
        scores = entity_scores([s.tags for s in dev], pred, scheme="BIOS")
        step_time = timer.median()
        logger.info("%s: dev F1 %.4f (%d steps, %.0f s in all, median step %s s, dev evaluations %s s)", name,
                    scores["f1"], steps, seconds, f"{step_time:.3f}" if step_time else "?",
                    "/".join(f"{h.get('val_seconds', 0):.0f}" for h in result.history))
        record = {"row": row, "seed": seed, "encoder": encoder_name if encoder is not None else
                  "none (character embeddings)", "memories": train_key.split(":")[1] if use_memory else None,
                  "steps_trained": steps, "epochs_run": len(result.history), "train_wall_seconds": seconds,
                  "median_step_seconds": step_time, "step_seconds": timer.times,
                  "dev_eval_seconds": [h.get("val_seconds") for h in result.history],
                  "best_dev_f1_during_training": result.best_dev_f1,
                  "history": result.history, "dev": scores}
        return model, dev_corpus, pred, record

    metrics = {"data": data_info, "encoder": encoder_name, "encoder_note": note, "timings": timings,
               "table7": {}, "selection": {}, "classifier": None, "address": None, "figures": {},
               "submission": None}
    models = {}  # (row, tag) -> (model, dev corpus, dev predictions) of the first seed

    def save():
        metrics["timings"]["total_s"] = time.perf_counter() - start_all
        write_json(run_dir / "metrics.json", metrics)

    seeds = args.seed_list()
    # --- Table 7 ---------------------------------------------------------------------------------
    if "table7" in args.study_list():
        train_key = f"train:{args.selection}"
        dev_key = "dev:pos_edit" if args.selection == "pos_edit" else "dev:category_pred"
        if dev_key == "dev:category_pred":
            _predicted_category_selection(args, metrics, selections, train, dev, bundle, categories,
                                          make_config, n, models)
        address = []
        for row in args.row_list():
            runs = []
            for seed in seeds:
                keys = (train_key, dev_key) if row.endswith("memory") else ("train:pos_edit", "dev:pos_edit")
                model, dev_corpus, pred, record = train_row(row, seed, *keys)
                runs.append(record)
                if row == "encoder-crf-memory" and args.address_mode == "eval":
                    address.append(_address_eval(model, dev_corpus, dev, labels, seed,
                                                 address_enhanced_label_embeddings, predict_memory_tags,
                                                 entity_scores, args.eval_batch_size))
                if seed == seeds[0]:
                    models[(row, "")] = (model, dev_corpus, pred)
                else:
                    del model
                metrics["table7"][row] = _summarise(runs, mean_spread)
                save()
        if args.address_mode == "train":
            matrix = address_enhanced_label_embeddings(label_matrix, labels.labels)
            _, _, _, record = train_row("encoder-crf-memory", seeds[0], train_key, dev_key, matrix=matrix,
                                        tag="-address")
            address.append({"seed": seeds[0], "mode": "train", "dev": record["dev"], "run": record})
        if address:
            metrics["address"] = {"mode": args.address_mode, "runs": address,
                                  "f1": mean_spread([a["dev"]["f1"] for a in address])}
        save()

    # --- Table 4: selection ablation, and the classifier -----------------------------------------
    if "selection" in args.study_list():
        seed = seeds[0]
        if "encoder-crf-memory" in metrics["table7"] and metrics["table7"]["encoder-crf-memory"]["runs"][0][
                "memories"] == "pos_edit":
            edit = metrics["table7"]["encoder-crf-memory"]["runs"][0]
        else:
            model, dev_corpus, pred, edit = train_row("encoder-crf-memory", seed)
            models.setdefault(("encoder-crf-memory", ""), (model, dev_corpus, pred))
        metrics["selection"]["pos_edit"] = {"dev": edit["dev"], "steps_trained": edit["steps_trained"],
                                            "seed": seed, "trained_with": "pos_edit"}
        if "dev:category_pred" not in selections:
            _predicted_category_selection(args, metrics, selections, train, dev, bundle, categories,
                                          make_config, n, models)
        model, gold_corpus, gold_pred, record = train_row("encoder-crf-memory", seed, "train:category",
                                                          "dev:category_gold", tag="-category")
        metrics["selection"]["category_gold"] = {"dev": record["dev"], "steps_trained": record["steps_trained"],
                                                 "seed": seed, "trained_with": "category (gold)", "run": record}
        _, pred_corpus = corpora("encoder-crf-memory", "train:category", "dev:category_pred")
        pred = predict_memory_tags(model, pred_corpus, batch_size=args.eval_batch_size)
        metrics["selection"]["category_pred"] = {
            "dev": entity_scores([s.tags for s in dev], pred, scheme="BIOS"),
            "steps_trained": record["steps_trained"], "seed": seed,
            "trained_with": "category (gold); dev memories from the classifier's categories"}
        gold_f1 = metrics["selection"]["category_gold"]["dev"]["f1"]
        metrics["selection"]["gold_jump_f1"] = {
            "over_predicted": gold_f1 - metrics["selection"]["category_pred"]["dev"]["f1"],
            "over_edit_distance": gold_f1 - metrics["selection"]["pos_edit"]["dev"]["f1"]}
        del model
        save()

    # --- heat maps and the submission ------------------------------------------------------------
    memory_models = [k for k in (("encoder-crf-memory", ""), ("lstm-crf-memory", "")) if k in models]
    if memory_models:
        model, dev_corpus, pred = models[memory_models[0]]
        metrics["figures"] = _heat_maps(run_dir, model, dev, pred, selections["dev:pos_edit"], train,
                                        memory_models[0][0], seeds[0])
    submission_key = (args.submission_row, "")
    if submission_key not in models and models:
        submission_key = memory_models[0] if memory_models else next(iter(models))
    if submission_key in models:
        model = models[submission_key][0]
        row = submission_key[0]
        tokenizer = tokenizers[row.startswith("encoder")]
        bank = encode_memory_bank(train, tokenizer, labels, args.max_length)
        test_corpus = encode_memory_corpus(test, selections["test:pos_edit"], bank, tokenizer, None,
                                           max_length=args.max_length, long_sentences="window")
        test_pred = predict_memory_tags(model, test_corpus, batch_size=args.eval_batch_size)
        path = write_cluener_submission(run_dir / "cluener_predict.json", test_ids,
                                        ["".join(s.chars) for s in test], test_pred)
        metrics["submission"] = {"file": path.name, "row": row, "seed": seeds[0], "sentences": len(test_pred),
                                 "memories": "pos_edit",
                                 "entities": sum(len(spans_from_tags(t, "BIOS")) for t in test_pred)}
    save()
    tables = _tables(metrics, args, run_name)
    (run_dir / "tables.md").write_text(tables, encoding="utf-8")
    print(tables)
    logger.info("wrote %s in %.0f s", run_dir, time.perf_counter() - start_all)
    return metrics


def _predicted_category_selection(args, metrics, selections, train, dev, bundle, categories, make_config, n,
                                  models):
    """Trains the entity-category classifier, scores it on dev, selects dev memories from its output."""
    import keras

    from tfner.memory import (EntityCategoryClassifier, evaluate_category_classifier, fit_category_classifier,
                              predict_categories, select_memories)
    from tfner.memory.model import make_representation

    seed = args.seed_list()[0]
    keras.utils.set_random_seed(seed)
    representation, tokenizer = make_representation(bundle)
    classifier = EntityCategoryClassifier(representation, categories=categories, vocabulary=tokenizer.vocabulary,
                                          context=None, dropout=args.dropout)
    config = make_config(seed, args.classifier_epochs)
    start = time.perf_counter()
    timer = _make_step_timer()
    history = fit_category_classifier(classifier, train, tokenizer, config, callbacks=[timer])
    seconds = time.perf_counter() - start
    steps = int(keras.ops.convert_to_numpy(history.model.optimizer.iterations))  # the trained (replica) model
    scores = evaluate_category_classifier(classifier, dev, tokenizer, batch_size=args.eval_batch_size)
    logger.info("category classifier: dev P %.4f R %.4f F1 %.4f (%d steps, %.0f s)", scores["precision"],
                scores["recall"], scores["f1"], steps, seconds)
    predicted = predict_categories(classifier, dev, tokenizer, batch_size=args.eval_batch_size)
    selections["dev:category_pred"] = select_memories(dev, train, "category", n, query_categories=predicted,
                                                      categories=categories)
    metrics["classifier"] = {"dev": scores, "steps_trained": steps, "train_wall_seconds": seconds,
                             "median_step_seconds": timer.median(),
                             "threshold": classifier.threshold, "seed": seed,
                             "history": {k: [float(x) for x in v] for k, v in history.history.items()}}


def _address_eval(model, dev_corpus, dev, labels, seed, enhance, predict, entity_scores, batch):
    """Table 8 by evaluation: the trained model's label table swapped for the address-enhanced one
    (the table is a variable read at call time, so the compiled tagging function sees the swap)."""
    import numpy as np

    layer = model.memory_layer
    table = np.asarray(keras_to_numpy(layer.label_embeddings))
    layer.set_label_embeddings(enhance(table, labels.labels))
    try:
        pred = predict(model, dev_corpus, batch_size=batch)
    finally:
        layer.set_label_embeddings(table)
    return {"seed": seed, "mode": "eval", "dev": entity_scores([s.tags for s in dev], pred, scheme="BIOS")}


def keras_to_numpy(value):
    import keras

    return keras.ops.convert_to_numpy(value)


def _heat_maps(run_dir, model, dev, pred, dev_memories, train, row, seed):
    """attention_correct.png / attention_wrong.png: a dev sentence (with entities) tagged exactly
    right / wrongly, against its first memory."""
    from tfner.memory import memory_attention_map
    from tfner.memory.reports import plot_memory_attention

    found = {}
    for i, (sentence, tags) in enumerate(zip(dev, pred)):
        if len(sentence.chars) > 40 or dev_memories[i][0] < 0 or not any(t != "O" for t in sentence.tags):
            continue
        kind = "correct" if list(tags) == list(sentence.tags) else "wrong"
        found.setdefault(kind, i)
        if len(found) == 2:
            break
    figures = {}
    for kind, i in sorted(found.items()):
        memory = train[int(dev_memories[i][0])]
        rows, columns, matrix = memory_attention_map(model, dev[i].chars, memory.chars, memory.tags)
        path = plot_memory_attention(
            rows, columns, matrix, run_dir / f"attention_{kind}.png", row_tags=pred[i], column_tags=memory.tags,
            title=f"{row} (seed {seed}): dev sentence {i} ({kind}ly tagged) vs its first memory (train "
                  f"{int(dev_memories[i][0])})",
            caption="rows: input sentence with predicted tags; columns: memory with gold tags; "
                    f"gold tags of the input: {' '.join(t for t in dev[i].tags if t != 'O') or 'none'}")
        figures[kind] = {"file": path.name if path else None, "dev_index": i, "memory_index": int(dev_memories[i][0]),
                         "text": "".join(dev[i].chars), "memory": "".join(memory.chars)}
    return figures


def _summarise(runs, mean_spread):
    f1 = [r["dev"]["f1"] for r in runs]
    return {"runs": runs, "f1": mean_spread(f1), "precision": mean_spread([r["dev"]["precision"] for r in runs]),
            "recall": mean_spread([r["dev"]["recall"] for r in runs]),
            "encoder": runs[0]["encoder"], "memories": runs[0]["memories"],
            "steps_trained": [r["steps_trained"] for r in runs],
            "median_step_seconds": [r["median_step_seconds"] for r in runs]}


def _pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def _tables(metrics, args, run_name):
    data = metrics["data"]
    head = [f"Run `{run_name}`: CLUENER2020, train {data['train']['sentences']:,} sentences (fraction "
            f"{args.train_fraction:g}), dev {data['dev']['sentences']:,} (evaluation set); encoder rows: "
            f"{metrics['encoder']}; LSTM rows: character embeddings + BiLSTM; epochs {args.epochs}"
            f"{f', max steps {args.max_steps}' if args.max_steps else ''}; batch {args.batch_size}; max length "
            f"{args.max_length}; {args.num_memories} memories; seeds {args.seeds}."]
    if metrics.get("encoder_note"):
        head.append(f"Note: {metrics['encoder_note']}.")
    head.append("The paper's numbers: RoBERTa-wwm-ext, full data, 20 epochs, max length 64; Table 7/8 are its "
                "online test F1, here dev F1 (test labels are unpublished).")
    out = ["# Paper D on CLUENER2020: associated-memory network", "", *head, ""]
    t7 = metrics.get("table7") or {}
    if t7:
        out += ["## Table 7: with and without memory (dev entity F1, %)", "",
                "| row | encoder | memories | steps | F1 mean | F1 std | F1 per seed | P mean | R mean | paper row "
                "| paper F1 |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row, v in t7.items():
            paper_name, paper_f1 = PAPER_TABLE7[row]
            out.append(f"| {row} | {v['encoder']} | {v['memories'] or '-'} | {', '.join(map(str, v['steps_trained']))} "
                       f"| {_pct(v['f1']['mean'])} | {_pct(v['f1']['std'])} | "
                       f"{' / '.join(_pct(r['dev']['f1']) for r in v['runs'])} | {_pct(v['precision']['mean'])} | "
                       f"{_pct(v['recall']['mean'])} | {paper_name} | {paper_f1:.2f} |")
        for base, mem in (("lstm-crf", "lstm-crf-memory"), ("encoder-crf", "encoder-crf-memory")):
            if base in t7 and mem in t7:
                diff = t7[mem]["f1"]["mean"] - t7[base]["f1"]["mean"]
                paper = PAPER_TABLE7[mem][1] - PAPER_TABLE7[base][1]
                out.append(f"\nMemory effect, {base}: {100 * diff:+.2f} F1 (mean over {t7[mem]['f1']['n']} seeds; "
                           f"paper {paper:+.2f}, online test).")
        out.append("")
        if metrics.get("address"):
            a = metrics["address"]
            mem = t7.get("encoder-crf-memory")
            out += ["## Table 8: address-enhanced memory (dev F1, %)", "",
                    f"Every memory entity tag looked up with the `address` label embedding of the same BIOS position "
                    f"(mode `{a['mode']}`: " + ("the trained encoder-crf-memory models with their label table swapped"
                                               if a["mode"] == "eval" else "a model trained with the swapped table")
                    + ").", "", "| model | F1 mean | F1 per seed | paper F1 |", "| --- | --- | --- | --- |"]
            if mem:
                out.append(f"| encoder-crf-memory | {_pct(mem['f1']['mean'])} | "
                           f"{' / '.join(_pct(r['dev']['f1']) for r in mem['runs'])} | {PAPER_TABLE8['memory']:.2f} |")
            out.append(f"| encoder-crf-memory, address-enhanced | {_pct(a['f1']['mean'])} | "
                       f"{' / '.join(_pct(r['dev']['f1']) for r in a['runs'])} | {PAPER_TABLE8['address']:.2f} |")
            out.append("")
        for row in t7:
            paper_column = 1 if row.endswith("memory") else 0
            title = ("RoBERTa-base + memory + self-attention" if paper_column else "RoBERTa-base")
            scores = t7[row]["runs"][0]["dev"]
            out += [f"## Table 5: per-class dev P/R/F1 (%), {row}, seed {t7[row]['runs'][0]['seed']} (paper: {title})",
                    "", "| type | P | R | F1 | support | paper P | paper R | paper F1 |",
                    "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for type_, s in scores["per_type"].items():
                p = PAPER_TABLE5.get(type_, (("",) * 3,) * 2)[paper_column]
                out.append(f"| {type_} | {_pct(s['precision'])} | {_pct(s['recall'])} | {_pct(s['f1'])} | "
                           f"{s['support']} | {p[0]} | {p[1]} | {p[2]} |")
            m = scores["macro"]
            p = PAPER_TABLE5["macro"][paper_column]
            out.append(f"| macro | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} | | {p[0]} | "
                       f"{p[1]} | {p[2]} |")
            out.append(f"| micro | {_pct(scores['precision'])} | {_pct(scores['recall'])} | {_pct(scores['f1'])} | "
                       f"{scores['true_entities']} | | | |")
            out.append("")
    sel = metrics.get("selection") or {}
    if sel:
        out += [f"## Table 4: memory selection ablation, encoder-crf-memory, dev P/R/F1 (%), seed {args.seed_list()[0]}",
                "", "| selection | trained with | steps | P | R | F1 | paper P | paper R | paper F1 |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key in ("pos_edit", "category_gold", "category_pred"):
            if key in sel:
                s = sel[key]["dev"]
                name, pp, pr, pf = PAPER_TABLE4[key]
                out.append(f"| {name} | {sel[key]['trained_with']} | {sel[key]['steps_trained']} | "
                           f"{_pct(s['precision'])} | {_pct(s['recall'])} | {_pct(s['f1'])} | {pp} | {pr} | {pf} |")
        if "gold_jump_f1" in sel:
            j = sel["gold_jump_f1"]
            out.append(f"\nGold-category jump: {100 * j['over_predicted']:+.2f} F1 over predicted categories, "
                       f"{100 * j['over_edit_distance']:+.2f} over edit distance (paper +6.15 and +6.42).")
        out.append("")
    clf = metrics.get("classifier")
    if clf:
        s = clf["dev"]
        out += ["## Entity-category classifier (multi-label, dev, micro over sentences x categories, %)", "",
                f"Encoder {metrics['encoder']} + mean pooling + sigmoid, threshold {clf['threshold']}, "
                f"{clf['steps_trained']} steps. The paper gives no classifier score.", "",
                "| category | P | R | F1 | support |", "| --- | --- | --- | --- | --- |"]
        for name, c in s["per_category"].items():
            out.append(f"| {name} | {_pct(c['precision'])} | {_pct(c['recall'])} | {_pct(c['f1'])} | {c['support']} |")
        out.append(f"| **micro** | {_pct(s['precision'])} | {_pct(s['recall'])} | {_pct(s['f1'])} | {s['true']} |")
        out.append(f"\nExact match of the category set: {_pct(s['exact_match'])} % of dev sentences.\n")
    figures = metrics.get("figures") or {}
    if figures:
        out += ["## Attention heat maps (Fig. 6-7)", ""]
        for kind, f in figures.items():
            out.append(f"- `{f['file']}`: {kind}ly tagged dev sentence {f['dev_index']} 「{f['text']}」 vs memory "
                       f"(train {f['memory_index']}) 「{f['memory']}」")
        out.append("")
    if metrics.get("submission"):
        s = metrics["submission"]
        out.append(f"Test predictions: `{s['file']}` ({s['sentences']} sentences, row {s['row']}, seed {s['seed']}, "
                   f"{s['memories']} memories), the official submission format.\n")
    t = metrics["timings"]
    out.append(f"Wall time {t.get('total_s', 0) / 60:.1f} min (label embeddings {t['label_embeddings_s']:.0f} s, "
               f"memory selection {t['selection_s']:.0f} s).")
    return "\n".join(out) + "\n"


def _encoder_label(source, substituted_for=None):
    path = str(source).rstrip("/")
    if path.endswith((".safetensors", ".bin", ".json")) or ".ckpt" in os.path.basename(path):
        path = os.path.dirname(path)
    name = os.path.basename(path) or str(source)
    return f"{name} (offline substitute for {substituted_for})" if substituted_for else name


def _default_run_name(args):
    parts = [f"steps{args.max_steps}" if args.max_steps else f"ep{args.epochs}"]
    if args.train_fraction < 1:
        parts.append(f"train{args.train_fraction:g}")
    parts.append(f"len{args.max_length}")
    parts.append(args.study)
    return "_".join(parts)


if __name__ == "__main__":
    main()
