"""The legacy TensorFlow peer: TF 2.15 + tensorflow-addons 0.23 CRF + transformers 4.54.1 ``TFBertModel``.

Runs inside ``benchmarks/.envs/legacy-tf215`` (created by ``benchmarks/envs.py``), never in
tfner's own environment. This is the stack closest to the papers' TensorFlow setup and the last one
where ``tfa.text.crf`` works: ``TFBertModel`` -> dropout -> ``tf.keras`` ``Bidirectional(LSTM)``
-> dropout -> ``Dense`` -> ``tfa.text.crf_log_likelihood``, trained with a ``tf.function`` train
step (input signature with dynamic batch and length, so it traces once). It loads the same
weights as tfner (``benchmarks/tfner_side.py prepare``); the start/end transition scores that
tfner's CRF learns (tfa has none) are added to the first/last real emissions, which is exactly
their definition, so the model is the same function.

Subcommands: ``crf`` (tfa correctness and speed), ``parity``, ``train``; results are JSON files.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_addons as tfa  # noqa: E402

import benchlib  # noqa: E402


def versions():
    import transformers

    return {"tensorflow": tf.__version__, "tensorflow_addons": tfa.__version__,
            "transformers": transformers.__version__}


# --------------------------------------------------------------------------------------------
# crf
# --------------------------------------------------------------------------------------------


def time_calls(fn, args, rounds, calls, warmup=3):
    """Milliseconds per call of ``fn(*args)`` (results fetched), one value per round."""
    def fetch(t):  # embedding gradients are IndexedSlices; unused variables have None
        return None if t is None else (t.values if isinstance(t, tf.IndexedSlices) else t).numpy()

    return benchlib.time_rounds(lambda: fn(*args), rounds, calls, warmup,
                                sync=lambda out: tf.nest.map_structure(fetch, out))


def cmd_crf(args):
    work = pathlib.Path(args.work)
    results = dict(**versions(), framework="tfa", cases={})
    for num_tags in (int(k) for k in args.tags.split(",")):
        data = dict(np.load(work / f"crf_inputs_K{num_tags}.npz"))
        results["cases"][f"K{num_tags}"] = benchlib.measure_tf_crf(
            tf, tfa.text.crf_log_likelihood, tfa.text.crf_decode, data,
            work / f"crf_out_tfa_K{num_tags}.npz", args.rounds, args.calls)
    results["peak_rss_mb"] = benchlib.peak_rss_mb()
    benchlib.write_json(args.out, results)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


class LegacyTagger(tf.keras.Model):
    """TFBertModel + BiLSTM + Dense with a tfa CRF loss (tf.keras 2.15 subclassed model)."""

    def __init__(self, bert, meta):
        super().__init__()
        self.bert = bert
        self.meta = meta
        self.special = meta["special_ids"]
        units = int(meta["context_units"])
        num_tags = len(meta["labels"])
        self.dropout = tf.keras.layers.Dropout(meta["dropout"])
        self.bilstm = tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(units, return_sequences=True))
        self.dense = tf.keras.layers.Dense(num_tags)
        self.transitions = tf.Variable(tf.zeros([num_tags, num_tags]), name="transitions")
        self.start_transitions = tf.Variable(tf.zeros([num_tags]), name="start_transitions")
        self.end_transitions = tf.Variable(tf.zeros([num_tags]), name="end_transitions")
        forbidden = float(meta["forbidden_score"])
        self._allowed = tf.constant(np.asarray(meta["allowed"], bool))
        self._allowed_start = tf.constant(np.asarray(meta["allowed_start"], bool))
        self._allowed_end = tf.constant(np.asarray(meta["allowed_end"], bool))
        self._forbidden = forbidden

    def constrained(self, value, allowed):
        return tf.where(allowed, value, tf.fill(tf.shape(value), self._forbidden))

    def call(self, ids, mask, training=False):
        batch = tf.shape(ids)[0]
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        pad, cls, sep = self.special["pad"], self.special["cls"], self.special["sep"]
        ids = tf.where(mask, ids, pad)
        extended = tf.concat([tf.fill([batch, 1], cls), ids, tf.fill([batch, 1], pad)], axis=1)
        positions = tf.range(tf.shape(extended)[1])[None, :]
        extended = tf.where(positions == (lengths + 1)[:, None], sep, extended)
        attention = tf.cast(positions <= (lengths + 1)[:, None], tf.int32)
        hidden = self.bert(input_ids=extended, attention_mask=attention, training=training).last_hidden_state
        hidden = self.dropout(hidden[:, 1:-1], training=training)
        context = self.bilstm(hidden, mask=mask, training=training)
        return self.dense(self.dropout(context, training=training)), lengths

    def crf_potentials(self, emissions, lengths):
        """Emissions with tfner's start/end scores folded into the first / last real position."""
        start = self.constrained(self.start_transitions, self._allowed_start)
        end = self.constrained(self.end_transitions, self._allowed_end)
        width = tf.shape(emissions)[1]
        first = tf.one_hot(tf.zeros_like(lengths), width)[:, :, None]
        last = tf.one_hot(lengths - 1, width)[:, :, None]
        return emissions + first * start[None, None, :] + last * end[None, None, :]

    def loss(self, ids, mask, tags, training=True):
        emissions, lengths = self(ids, mask, training=training)
        potentials = self.crf_potentials(emissions, lengths)
        ll, _ = tfa.text.crf_log_likelihood(potentials, tags, lengths,
                                            self.constrained(self.transitions, self._allowed))
        return -tf.reduce_mean(ll)

    def decode(self, ids, mask):
        emissions, lengths = self(ids, mask, training=False)
        potentials = self.crf_potentials(emissions, lengths)
        tags, _ = tfa.text.crf_decode(potentials, self.constrained(self.transitions, self._allowed), lengths)
        return emissions, tags


def load_model(weights):
    """Builds the legacy tagger and loads the canonical (PyTorch-named) weights."""
    from safetensors.numpy import load_file, save_file
    from transformers import TFBertModel

    meta = benchlib.read_json(str(weights) + ".json")
    tensors = load_file(str(weights))
    bert_dir = pathlib.Path(tempfile.mkdtemp(prefix="legacy-bert-"))
    (bert_dir / "config.json").write_text(json.dumps(dict(meta["hf_config"], architectures=["BertModel"],
                                                          model_type="bert")))
    save_file({k[len("bert."):]: v for k, v in tensors.items() if k.startswith("bert.")},
              str(bert_dir / "model.safetensors"), metadata={"format": "pt"})
    bert = TFBertModel.from_pretrained(str(bert_dir), add_pooling_layer=False)
    model = LegacyTagger(bert, meta)
    ids = tf.constant([[meta["special_ids"]["cls"] + 1]])
    model(ids, tf.constant([[True]]))  # build
    fw, bw = model.bilstm.forward_layer, model.bilstm.backward_layer
    for layer, suffix in ((fw, "l0"), (bw, "l0_reverse")):
        layer.set_weights([tensors[f"lstm.weight_ih_{suffix}"].T, tensors[f"lstm.weight_hh_{suffix}"].T,
                           tensors[f"lstm.bias_ih_{suffix}"] + tensors[f"lstm.bias_hh_{suffix}"]])
    model.dense.set_weights([tensors["emissions.weight"].T, tensors["emissions.bias"]])
    model.transitions.assign(tensors["crf.transitions"])
    model.start_transitions.assign(tensors["crf.start_transitions"])
    model.end_transitions.assign(tensors["crf.end_transitions"])
    return model, meta


def cmd_parity(args):
    work = pathlib.Path(args.work)
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors")
    batch = np.load(work / "weights" / f"{args.model}-parity.npz")
    emissions, tags = model.decode(tf.constant(batch["token_ids"]), tf.constant(batch["padding_mask"]))
    real = batch["padding_mask"]
    diff = np.abs(emissions.numpy() - batch["emissions"])[real]
    same = bool(np.all(np.where(real, tags.numpy(), 0) == np.where(real, batch["tags"], 0)))
    benchlib.write_json(args.out, dict(**versions(), framework="legacy-tf215", model=args.model,
                                       emissions_max_abs_diff=float(diff.max()),
                                       emissions_scale=float(np.abs(batch["emissions"][real]).max()),
                                       decoded_tags_identical=same))


def cmd_train(args):
    work = pathlib.Path(args.work)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    steps = args.warmup + args.window * args.windows
    pad_id = data["meta"]["pad_id"]
    build_start = time.perf_counter()
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors")
    build_s = time.perf_counter() - build_start
    lr = 2e-3
    optimizer = tf.keras.optimizers.AdamW(learning_rate=lr, weight_decay=0.01, epsilon=1e-7, clipnorm=5.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool),
                                  tf.TensorSpec([None, None], tf.int32)])
    def train_step(ids, mask, tags):
        with tf.GradientTape() as tape:
            loss = model.loss(ids, mask, tags, training=True)
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    def batches():
        for indices in data["plan"][:steps]:
            yield benchlib.pad_batch(data["token_ids"], data["tag_ids"], indices, pad_id)

    dataset = tf.data.Dataset.from_generator(
        batches, output_signature=(tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool),
                                   tf.TensorSpec([None, None], tf.int32))).prefetch(4)
    timer = benchlib.StepTimer()
    with benchlib.LoadRecorder() as load:
        start = time.perf_counter()
        timer.mark()
        for ids, mask, tags in dataset:
            train_step(ids, mask, tags).numpy()
            timer.mark()
        total_s = time.perf_counter() - start
    times = timer.times
    lengths = data["lengths"]
    timed = data["plan"][args.warmup : steps]
    stamps = times[args.warmup :]
    config = meta["hf_config"]
    flops = [benchlib.tagger_train_flops(lengths[b].tolist(), hidden=config["hidden_size"],
                                         layers=config["num_hidden_layers"],
                                         intermediate=config["intermediate_size"],
                                         lstm_units=meta["context_units"], num_tags=len(meta["labels"]))
             for b in timed]
    result = {
        "warmup_steps": args.warmup, "window": args.window, "windows": args.windows,
        "sequences_per_s": benchlib.window_rates(stamps, [len(b) for b in timed], args.window),
        "chars_per_s": benchlib.window_rates(stamps, [int(lengths[b].sum()) for b in timed], args.window),
        "model_flops_per_s": benchlib.window_rates(stamps, flops, args.window),
        "warmup_s": stamps[0] - times[0],
    }
    result.update(**versions(), framework="legacy-tf215", model=args.model, build_s=build_s, total_s=total_s,
                  load=load.record(), peak_rss_mb=benchlib.peak_rss_mb(), first_step_s=times[1] - times[0],
                  notes="tf.function train step (dynamic input signature) with GradientTape, tf.keras AdamW "
                        "(one learning rate), tfa.text.crf_log_likelihood.")
    benchlib.write_json(args.out, result)


def cmd_profile(args):
    """Forward+backward time of each part on the same batch as tfner_side's profile (tf.function)."""
    work = pathlib.Path(args.work)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    widths = [int(data["lengths"][b].max()) for b in data["plan"]]
    index = min(range(len(widths)), key=lambda i: (abs(widths[i] - int(np.median(widths))), i))
    ids, mask, tags = (tf.constant(x) for x in benchlib.pad_batch(
        data["token_ids"], data["tag_ids"], data["plan"][index], data["meta"]["pad_id"]))
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors")
    rng = np.random.default_rng(0)
    hidden = meta["hf_config"]["hidden_size"]
    context_in = tf.constant(rng.normal(size=(*ids.shape, hidden)).astype("float32"))
    emissions = tf.constant(rng.normal(size=(*ids.shape, len(meta["labels"]))).astype("float32"))
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    transitions = model.constrained(model.transitions, model._allowed)

    def fwd_bwd(loss_fn, variables, watch=None):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                if watch is not None:
                    tape.watch(watch)
                loss = loss_fn()
            sources = list(variables) + ([watch] if watch is not None else [])
            return tape.gradient(loss, sources)
        return step

    def encoder_loss():
        batch = tf.shape(ids)[0]
        special = model.special
        extended = tf.concat([tf.fill([batch, 1], special["cls"]), tf.where(mask, ids, special["pad"]),
                              tf.fill([batch, 1], special["pad"])], axis=1)
        positions = tf.range(tf.shape(extended)[1])[None, :]
        extended = tf.where(positions == (lengths + 1)[:, None], special["sep"], extended)
        attention = tf.cast(positions <= (lengths + 1)[:, None], tf.int32)
        out = model.bert(input_ids=extended, attention_mask=attention, training=True).last_hidden_state
        return tf.reduce_sum(out[:, 1:-1] ** 2)

    def crf_loss():
        potentials = model.crf_potentials(emissions, lengths)
        ll, _ = tfa.text.crf_log_likelihood(potentials, tags, lengths, transitions)
        return -tf.reduce_mean(ll)

    optimizer = tf.keras.optimizers.AdamW(learning_rate=2e-3, weight_decay=0.01, epsilon=1e-7, clipnorm=5.0)

    @tf.function
    def fit_step():
        with tf.GradientTape() as tape:
            loss = model.loss(ids, mask, tags, training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    parts = {
        "encoder_fwd_bwd": fwd_bwd(encoder_loss, model.bert.trainable_variables),
        "bilstm_fwd_bwd": fwd_bwd(lambda: tf.reduce_sum(model.bilstm(context_in, mask=mask, training=True) ** 2),
                                  model.bilstm.trainable_variables, context_in),
        "crf_loss_fwd_bwd": fwd_bwd(crf_loss, [model.transitions], emissions),
        "crf_decode": tf.function(lambda: tfa.text.crf_decode(model.crf_potentials(emissions, lengths),
                                                              transitions, lengths)),
        "model_fwd_bwd": fwd_bwd(lambda: model.loss(ids, mask, tags, training=True), model.trainable_variables),
        "fit_step": fit_step,
    }
    results = {}
    with benchlib.LoadRecorder() as load:
        for name, fn in parts.items():
            results[name] = benchlib.summarize(time_calls(fn, (), args.rounds, args.calls))
    benchlib.write_json(args.out, dict(**versions(), framework="legacy-tf215", model=args.model,
                                       batch_shape=list(ids.shape), ms=results, load=load.record()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(benchlib.WORK_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("crf")
    p.add_argument("--tags", default="7,41")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--out", required=True)
    p = sub.add_parser("parity")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("train")
    p.add_argument("--model", required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--out", required=True)
    p = sub.add_parser("profile")
    p.add_argument("--model", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    globals()["cmd_" + args.command](args)


if __name__ == "__main__":
    main()
