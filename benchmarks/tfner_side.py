"""The tfner side of the benchmarks: data preparation, weight export and every tfner measurement.

Runs in tfner's own environment (``.venv``), one subcommand per process so that peak memory and
start-up are measured per task, exactly like the peers (``benchmarks/peers/*.py``). The
orchestrator is ``benchmarks/run_all.py``; results come back as JSON files.

Subcommands:
    prepare   MSRA slices, the length-bucketed batch plans every framework follows, the models'
              initial weights in PyTorch/Hugging Face naming (safetensors) and a parity batch.
    crf       CRF log-likelihood (forward + backward) and Viterbi decode on random inputs.
    train     training throughput of a tagger over the prepared batch plan.
    accuracy  train for a fixed number of steps, test entity F1, save the trained weights.
    export    export the trained tagger as a SavedModel (``tfner.export.export_saved_model``).
    infer     latency / throughput of the exported SavedModel.
    score     entity F1 of a peer's predicted tag ids.
    matmul    the machine's float32 matrix-multiply GFLOP/s with TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import benchlib  # noqa: E402

TYPES = ["LOC", "ORG", "PER"]
MAX_CHARS = 126  # 128 encoder positions minus [CLS] and [SEP] (paper A's max length 128)
CONTEXT_UNITS = 128
# Learning rates of the accuracy-parity run (the CPU settings of experiments/configs).
PARITY_LR = {"encoder_lr": 5e-4, "head_lr": 2e-3, "crf_lr": 1e-2, "weight_decay": 0.01,
             "warmup_fraction": 0.1, "clipnorm": 5.0}
MODELS = {
    "tiny": {"encoder": "default", "description": "tiny-bert-zh-L2-H128 (pretrained) + BiLSTM(128) + CRF"},
    "base": {"encoder": "../shared/encoders/configs/bert-base-chinese/config.json",
             "description": "BERT-base (random init, 12x768) + BiLSTM(128) + CRF"},
}


# --------------------------------------------------------------------------------------------
# Models and weights
# --------------------------------------------------------------------------------------------


def labels():
    from tfner.data import LabelVocabulary

    return LabelVocabulary.from_types(TYPES, "BIO")


def tiny_vocab_file():
    from tfner.encoders import default_encoder_path

    return pathlib.Path(default_encoder_path()) / "vocab.txt"


def build_model(name, seed=0):
    """``(tagger, tokenizer, hf_config)`` for ``"tiny"`` or ``"base"``; weights seeded."""
    import keras

    from tfner.encoders import default_encoder_path, load_encoder
    from tfner.models import build_tagger
    from tfner.preprocessing import CharTokenizer

    keras.utils.set_random_seed(seed)
    spec = MODELS[name]["encoder"]
    source = default_encoder_path() if spec == "default" else benchlib.REPO_DIR / spec
    bundle = load_encoder(str(source))
    vocabulary = CharTokenizer.from_vocab_file(tiny_vocab_file()).vocabulary
    tagger, tokenizer = build_tagger(
        "bert-bilstm-crf", labels=labels().labels, encoder=bundle, vocabulary=vocabulary,
        context_units=CONTEXT_UNITS, name=f"bench_{name}")
    return tagger, tokenizer, dict(bundle.config)


def export_canonical(tagger):
    """The tagger's weights in PyTorch naming: ``{name: (array, tfner variable path)}``.

    ``bert.*`` follows Hugging Face ``BertModel`` (Linear weights ``[out, in]``), ``lstm.*``
    ``torch.nn.LSTM(bidirectional=True)`` (same gate order i, f, g, o as Keras; Keras' single bias
    goes to ``bias_ih``, ``bias_hh`` is zero), ``emissions.*`` a Linear and ``crf.*`` the raw
    (unconstrained) transition parameters, ``[from, to]`` as in pytorch-crf.
    """
    out = {}

    def put(name, variable, fn=lambda a: a):
        out[name] = (np.ascontiguousarray(fn(np.asarray(variable.numpy(), np.float32))), variable.path)

    backbone = tagger.representation.backbone
    hidden = int(backbone.hidden_dim)
    put("bert.embeddings.word_embeddings.weight", backbone.token_embedding.embeddings)
    put("bert.embeddings.position_embeddings.weight", backbone.position_embedding.position_embeddings)
    put("bert.embeddings.token_type_embeddings.weight", backbone.segment_embedding.embeddings)
    put("bert.embeddings.LayerNorm.weight", backbone.embeddings_layer_norm.gamma)
    put("bert.embeddings.LayerNorm.bias", backbone.embeddings_layer_norm.beta)
    for i, block in enumerate(backbone.transformer_layers):
        prefix = f"bert.encoder.layer.{i}"
        attention = block._self_attention_layer
        for dense, hf in ((attention.query_dense, "attention.self.query"),
                          (attention.key_dense, "attention.self.key"),
                          (attention.value_dense, "attention.self.value")):
            put(f"{prefix}.{hf}.weight", dense.kernel, lambda a: a.reshape(hidden, hidden).T)
            put(f"{prefix}.{hf}.bias", dense.bias, lambda a: a.reshape(hidden))
        put(f"{prefix}.attention.output.dense.weight", attention.output_dense.kernel,
            lambda a: a.reshape(hidden, hidden).T)
        put(f"{prefix}.attention.output.dense.bias", attention.output_dense.bias)
        put(f"{prefix}.attention.output.LayerNorm.weight", block._self_attention_layer_norm.gamma)
        put(f"{prefix}.attention.output.LayerNorm.bias", block._self_attention_layer_norm.beta)
        put(f"{prefix}.intermediate.dense.weight", block._feedforward_intermediate_dense.kernel, np.transpose)
        put(f"{prefix}.intermediate.dense.bias", block._feedforward_intermediate_dense.bias)
        put(f"{prefix}.output.dense.weight", block._feedforward_output_dense.kernel, np.transpose)
        put(f"{prefix}.output.dense.bias", block._feedforward_output_dense.bias)
        put(f"{prefix}.output.LayerNorm.weight", block._feedforward_layer_norm.gamma)
        put(f"{prefix}.output.LayerNorm.bias", block._feedforward_layer_norm.beta)
    context = tagger.get_layer("context")
    if len(context.rnns) != 1:
        raise ValueError("the benchmark models have one BiLSTM layer")
    bidirectional = context.rnns[0]
    for suffix, layer in (("l0", bidirectional.forward_layer), ("l0_reverse", bidirectional.backward_layer)):
        cell = layer.cell
        put(f"lstm.weight_ih_{suffix}", cell.kernel, np.transpose)
        put(f"lstm.weight_hh_{suffix}", cell.recurrent_kernel, np.transpose)
        put(f"lstm.bias_ih_{suffix}", cell.bias)
        out[f"lstm.bias_hh_{suffix}"] = (np.zeros_like(out[f"lstm.bias_ih_{suffix}"][0]), None)
    emissions = tagger.get_layer("emissions")
    put("emissions.weight", emissions.kernel, np.transpose)
    put("emissions.bias", emissions.bias)
    crf = tagger.decoder_layer
    put("crf.transitions", crf.transitions)
    put("crf.start_transitions", crf.start_transitions)
    put("crf.end_transitions", crf.end_transitions)
    return out


def save_canonical(tagger, hf_config, path, optimizer=None):
    """Writes ``path`` (safetensors, PyTorch naming) and ``path.json`` (config, groups, masks)."""
    from safetensors.numpy import save_file

    canonical = export_canonical(tagger)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v for k, (v, _) in canonical.items()}, str(path), metadata={"format": "pt"})
    variables = {v.path: v for v in tagger.trainable_variables}
    groups = {}
    for name, (_, var_path) in canonical.items():
        if var_path is None or var_path not in variables:
            groups[name] = {"trainable": False}
            continue
        group = {"trainable": True}
        if optimizer is not None:
            group["lr_multiplier"] = optimizer.multiplier_for_path(var_path)
            group["weight_decay"] = bool(optimizer._use_weight_decay(variables[var_path]))
        groups[name] = group
    crf = tagger.decoder_layer
    tokenizer = tagger.tokenizer()
    meta = {
        "hf_config": hf_config,
        "labels": tagger.labels,
        "allowed": crf.allowed.tolist(),
        "allowed_start": crf.allowed_start.tolist(),
        "allowed_end": crf.allowed_end.tolist(),
        "forbidden_score": -1e4,
        "context_units": CONTEXT_UNITS,
        "dropout": float(tagger.dropout),
        "special_ids": {"pad": tokenizer.pad_id, "cls": tokenizer.cls_id, "sep": tokenizer.sep_id,
                        "unk": tokenizer.unk_id},
        "groups": groups,
        "num_parameters": int(sum(int(np.prod(v.shape)) for v in tagger.trainable_variables)),
    }
    benchlib.write_json(str(path) + ".json", meta)
    return path


def parity_optimizer(tagger, total_steps):
    from tfner.training import TrainConfig
    from tfner.training.trainer import make_optimizer

    config = TrainConfig(batch_size=64, encoder_lr=PARITY_LR["encoder_lr"], head_lr=PARITY_LR["head_lr"],
                         crf_lr=PARITY_LR["crf_lr"], weight_decay=PARITY_LR["weight_decay"],
                         warmup_fraction=PARITY_LR["warmup_fraction"], clipnorm=PARITY_LR["clipnorm"])
    return make_optimizer(tagger, config, total_steps)


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------


def _pieces(split, limit=None):
    from tfner.data import read_msra
    from tfner.preprocessing import split_long_sentences

    sentences = [s for s in read_msra(split) if len(s.chars)]
    pieces, _ = split_long_sentences(sentences, MAX_CHARS)
    pieces = [p for p in pieces if 0 < len(p.chars) <= MAX_CHARS]
    return pieces if limit is None else pieces[:limit]


def _save_data(path, pieces, tokenizer, label_vocab, plan, extra_meta):
    token_ids = [np.asarray(tokenizer.encode(p.chars), np.int64) for p in pieces]
    tag_ids = [np.asarray(label_vocab.encode(p.tags), np.int64) for p in pieces]
    token_flat, token_offsets = benchlib.pack_ragged(token_ids)
    tag_flat, tag_offsets = benchlib.pack_ragged(tag_ids)
    plan_flat, plan_offsets = benchlib.pack_ragged(plan)
    meta = dict(extra_meta, labels=label_vocab.labels, pad_id=tokenizer.pad_id,
                sentences=len(pieces), batches=len(plan))
    np.savez(path, token_flat=token_flat, token_offsets=token_offsets, tag_flat=tag_flat,
             tag_offsets=tag_offsets, plan_flat=plan_flat, plan_offsets=plan_offsets,
             meta=np.asarray(json.dumps(meta, ensure_ascii=False)))


def _subset(pieces, plan):
    """Keeps only the sentences a plan uses and renumbers the plan."""
    used = sorted({int(i) for batch in plan for i in batch})
    index = {old: new for new, old in enumerate(used)}
    return [pieces[i] for i in used], [np.asarray([index[int(i)] for i in b], np.int64) for b in plan]


def cmd_prepare(args):
    from tfner.preprocessing import CharTokenizer, plan_batches

    work = pathlib.Path(args.work)
    (work / "data").mkdir(parents=True, exist_ok=True)
    tokenizer = CharTokenizer.from_vocab_file(tiny_vocab_file())
    label_vocab = labels()
    batch_size = args.batch_size
    info = {"batch_size": batch_size, "max_chars": MAX_CHARS}

    train = _pieces("train")
    info["msra_train_pieces"] = len(train)
    # Throughput: the first batches of tfner's own epoch-0 plan over all of MSRA train.
    plan = plan_batches([len(p.chars) for p in train], batch_size, shuffle=True, seed=args.seed, epoch=0)
    plan = plan[: args.throughput_batches]
    sub, sub_plan = _subset(train, plan)
    _save_data(work / "data" / "throughput.npz", sub, tokenizer, label_vocab, sub_plan,
               {"purpose": "throughput", "seed": args.seed})
    info["throughput_batches"] = len(sub_plan)
    from tfner.preprocessing import padding_fraction

    info["throughput_padding_fraction"] = padding_fraction([len(p.chars) for p in sub], sub_plan)
    info["unbucketed_padding_fraction"] = padding_fraction(
        [len(p.chars) for p in train],
        plan_batches([len(p.chars) for p in train], batch_size, seed=args.seed, bucket=False))
    info["throughput_mean_length"] = float(np.mean([len(p.chars) for p in sub]))

    # Accuracy parity: a slice of MSRA train, epochs of tfner's plan until `steps` batches.
    acc_train = train[: args.accuracy_train]
    lengths = [len(p.chars) for p in acc_train]
    acc_plan, epoch = [], 0
    while len(acc_plan) < args.accuracy_steps:
        acc_plan.extend(plan_batches(lengths, batch_size, shuffle=True, seed=args.seed, epoch=epoch))
        epoch += 1
    acc_plan = acc_plan[: args.accuracy_steps]
    _save_data(work / "data" / "accuracy_train.npz", acc_train, tokenizer, label_vocab, acc_plan,
               {"purpose": "accuracy-train", "seed": args.seed, "epochs_started": epoch})
    test = _pieces("test", args.accuracy_test)
    order = sorted(range(len(test)), key=lambda i: len(test[i].chars))
    test_plan = [np.asarray(order[i : i + 128], np.int64) for i in range(0, len(order), 128)]
    _save_data(work / "data" / "accuracy_test.npz", test, tokenizer, label_vocab, test_plan,
               {"purpose": "accuracy-test"})
    info.update(accuracy_train_sentences=len(acc_train), accuracy_steps=len(acc_plan),
                accuracy_test_sentences=len(test))

    # Inference inputs: one ~50-character test sentence, and 32 test sentences.
    all_test = _pieces("test")
    single = min(all_test, key=lambda p: (abs(len(p.chars) - 50), p.source or ""))
    batch_texts = ["".join(p.chars) for p in all_test[:32]]
    vocab = tokenizer.vocabulary
    benchlib.write_json(work / "data" / "inference.json", {
        "single": "".join(single.chars),
        "batch": batch_texts,
        "single_ids": tokenizer.encode(single.chars).tolist(),
        "batch_ids": [tokenizer.encode(list(t)).tolist() for t in batch_texts],
        "vocab": vocab,
    })
    info["inference_single_length"] = len(single.chars)
    info["inference_batch_mean_length"] = float(np.mean([len(t) for t in batch_texts]))

    # Models: initial weights in PyTorch naming, and tfner's own weights file.
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    ids, mask, _ = benchlib.pad_batch(data["token_ids"], data["tag_ids"], data["plan"][0], tokenizer.pad_id)
    models = {}
    for name in args.models.split(","):
        tagger, _, hf_config = build_model(name, seed=args.seed)
        optimizer = parity_optimizer(tagger, 100)
        save_canonical(tagger, hf_config, work / "weights" / f"{name}-init.safetensors", optimizer)
        tagger.save_weights(str(work / "weights" / f"{name}-init.weights.h5"))
        out = tagger({"token_ids": ids, "padding_mask": mask}, training=False)
        np.savez(work / "weights" / f"{name}-parity.npz", token_ids=ids, padding_mask=mask,
                 emissions=np.asarray(out["emissions"]), tags=np.asarray(out["tags"]))
        models[name] = {"parameters": int(sum(int(np.prod(v.shape)) for v in tagger.trainable_variables)),
                        "hf_config": {k: hf_config.get(k) for k in (
                            "hidden_size", "num_hidden_layers", "intermediate_size",
                            "num_attention_heads", "vocab_size")},
                        "description": MODELS[name]["description"]}
        del tagger
    info["models"] = models
    benchlib.write_json(work / "prepare.json", info)


# --------------------------------------------------------------------------------------------
# crf
# --------------------------------------------------------------------------------------------


def crf_inputs(num_tags, batch=64, max_len=128, seed=0):
    """Random emissions, tags, lengths (1..T) and transitions, the same for every framework."""
    rng = np.random.default_rng([seed, num_tags])
    return {
        "inputs": rng.normal(size=(batch, max_len, num_tags)).astype(np.float32),
        "tags": rng.integers(0, num_tags, size=(batch, max_len)).astype(np.int32),
        "lengths": rng.integers(1, max_len + 1, size=batch).astype(np.int32),
        "transitions": (0.5 * rng.normal(size=(num_tags, num_tags))).astype(np.float32),
    }


def cmd_crf(args):
    import tensorflow as tf

    from tfner.layers import crf_ops

    work = pathlib.Path(args.work)
    results = {"framework": "tfner", "tensorflow": tf.__version__, "cases": {}}
    for num_tags in (int(k) for k in args.tags.split(",")):
        data = crf_inputs(num_tags)
        np.savez(work / f"crf_inputs_K{num_tags}.npz", **data)
        results["cases"][f"K{num_tags}"] = benchlib.measure_tf_crf(
            tf, crf_ops.crf_log_likelihood, crf_ops.crf_decode, data,
            work / f"crf_out_tfner_K{num_tags}.npz", args.rounds, args.calls)
    results["peak_rss_mb"] = benchlib.peak_rss_mb()
    benchlib.write_json(args.out, results)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def padded_batch(data, indices, pad_id, multiple=1):
    """``benchlib.pad_batch`` with the width rounded up to a multiple of ``multiple`` (as
    ``fit_tagger`` pads under ``jit_compile``)."""
    from tfner.training.trainer import padded_width

    ids, mask, tags = benchlib.pad_batch(data["token_ids"], data["tag_ids"], indices, pad_id)
    extra = padded_width(ids.shape[1], multiple) - ids.shape[1]
    if extra:
        ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id)
        mask = np.pad(mask, ((0, 0), (0, extra)))
        tags = np.pad(tags, ((0, 0), (0, extra)))
    return ids, mask, tags


def plan_dataset(data, pad_id, multiple=1, plan=None):
    """A tf.data stream of the prepared batches, in plan order (as ``fit_tagger`` feeds fit)."""
    import tensorflow as tf

    def generate():
        for indices in data["plan"] if plan is None else plan:
            ids, mask, tags = padded_batch(data, indices, pad_id, multiple)
            yield {"token_ids": ids, "padding_mask": mask}, tags

    signature = ({"token_ids": tf.TensorSpec([None, None], tf.int32),
                  "padding_mask": tf.TensorSpec([None, None], tf.bool)},
                 tf.TensorSpec([None, None], tf.int32))
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)


def distinct_shape_plan(data, multiple):
    """The first batch of each distinct padded ``(batch, width)`` shape of the plan, in plan order."""
    from tfner.training.trainer import padded_width

    seen, plan = set(), []
    for indices in data["plan"]:
        shape = (len(indices), padded_width(max(len(data["token_ids"][i]) for i in indices), multiple))
        if shape not in seen:
            seen.add(shape)
            plan.append(indices)
    return plan


class CompileCounter:
    """Counts XLA compilations on JAX (``jax.monitoring`` backend-compile events) and their seconds."""

    def __init__(self):
        self.count, self.seconds = 0, 0.0
        import keras

        if keras.backend.backend() == "jax":
            import jax

            jax.monitoring.register_event_duration_secs_listener(self._on_event)
            self.active = True
        else:
            self.active = False

    def _on_event(self, event, duration, **_):
        if event.endswith("backend_compile_duration"):
            self.count += 1
            self.seconds += float(duration)

    def snapshot(self):
        return (self.count, self.seconds) if self.active else (None, None)


def precompile(tagger, data, optimizer, pad_id, multiple):
    """Runs the compiled train step once on each distinct batch shape of the plan, then restores
    the weights and the optimizer state: the timed steps then compile nothing. Returns
    ``{"shapes", "seconds"}``."""
    plan = distinct_shape_plan(data, multiple)
    optimizer.build(tagger.trainable_variables)
    weights = tagger.get_weights()
    state = [np.array(v.numpy()) for v in optimizer.variables]
    start = time.perf_counter()
    tagger.fit(plan_dataset(data, pad_id, multiple, plan), epochs=1, steps_per_epoch=len(plan),
               verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    tagger.set_weights(weights)
    for variable, value in zip(optimizer.variables, state):
        variable.assign(value)
    return {"shapes": len(plan), "seconds": seconds}


def _timing_callback(timer, losses):
    import keras

    class Timing(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                timer.mark()

        def on_train_batch_end(self, batch, logs=None):
            timer.mark()
            # Keras logs the running mean of the epoch; recover this step's own loss.
            if logs and "loss" in logs:
                mean, count = float(logs["loss"]), batch + 1
                losses.append(mean * count - self._previous * (count - 1))
                self._previous = mean

        _previous = 0.0

    return Timing()


def _train(tagger, data, steps, optimizer, pad_id, profile_dir=None, jit_compile=False, multiple=1):
    """Runs ``steps`` fit steps over the plan; returns ``(timestamps, losses, compile info)``.

    With ``jit_compile`` the whole step is XLA-compiled (TensorFlow) or ``jax.jit``-compiled (JAX),
    batch widths are padded to multiples of ``multiple`` and every distinct shape is compiled
    before the timed steps (``precompile``); compile info is then ``{"shapes", "seconds",
    "counted", "counted_s", "timed"}`` (``counted*``/``timed``: JAX compile events during the
    warm-up and during the timed steps), else None.
    """
    import tensorflow as tf

    if jit_compile:
        from tfner.training.xla import use_philox_dropout_under_xla

        use_philox_dropout_under_xla()  # as fit_tagger does under jit_compile (TF; no-op on JAX)
    tagger.compile(optimizer=optimizer, jit_compile=jit_compile)
    if bool(tagger.jit_compile) != bool(jit_compile):
        raise RuntimeError(f"jit_compile={jit_compile} requested but Keras set {tagger.jit_compile}")
    compiled = None
    if jit_compile:
        counter = CompileCounter()
        compiled = precompile(tagger, data, optimizer, pad_id, multiple)
        compiled["counted"], compiled["counted_s"] = counter.snapshot()
    timer = benchlib.StepTimer()
    losses = []
    callbacks = [_timing_callback(timer, losses)]
    if profile_dir:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(str(profile_dir), profile_batch=(4, 6), write_graph=False))
    dataset = plan_dataset(data, pad_id, multiple).take(steps)
    tagger.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0, shuffle=False)
    if compiled is not None and compiled["counted"] is not None:
        compiled["timed"] = counter.snapshot()[0] - compiled["counted"]
    del tf
    return timer.times, losses, compiled


def tracing_count(tagger):
    """How often Keras traced its train function (1 = no retracing on new sequence lengths)."""
    function = getattr(tagger, "train_function", None)
    # Keras 3 returns a plain closure around its tf.functions (multi_step_on_iterator, ...).
    counts = {}
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        counter = getattr(value, "experimental_get_tracing_count", None)
        if counter is not None:
            counts[getattr(value, "__name__", "function")] = int(counter())
    return counts or None


def cmd_train(args):
    import tensorflow as tf

    work = pathlib.Path(args.work)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    steps = args.warmup + args.window * args.windows
    if steps > len(data["plan"]):
        raise ValueError(f"{steps} steps requested but the plan has {len(data['plan'])} batches")
    data["plan"] = data["plan"][:steps]
    build_start = time.perf_counter()
    tagger, tokenizer, hf_config = build_model(args.model)
    tagger.load_weights(str(work / "weights" / f"{args.model}-init.weights.h5"))
    build_s = time.perf_counter() - build_start
    optimizer = parity_optimizer(tagger, steps)
    import keras

    backend = keras.backend.backend()
    from tfner.training.trainer import DEFAULT_JIT_PAD_MULTIPLE

    multiple = args.pad_to_multiple or (DEFAULT_JIT_PAD_MULTIPLE if args.jit_compile else 1)
    with benchlib.LoadRecorder() as load:
        start = time.perf_counter()
        times, _, compiled = _train(tagger, data, steps, optimizer, tokenizer.pad_id, args.profile_dir,
                                    jit_compile=args.jit_compile, multiple=multiple)
        total_s = time.perf_counter() - start
    result = _throughput_result(data, times, args, hf_config, len(tagger.labels))
    if compiled is not None:
        # The precompile pass is the warm-up: the timed steps start from the initial weights.
        result["warmup_s"] = compiled["seconds"] + result["warmup_s"]
    if backend == "jax":
        how = "Keras fit on the JAX backend (jax.jit-compiled train step)"
    elif args.jit_compile:
        how = "Keras fit (TF, jit_compile=True: the whole train step XLA-compiled)"
    else:
        how = "Keras fit (TF graph mode, jit_compile=False)"
    padding = (f", batch widths padded to multiples of {multiple} and every distinct shape compiled before "
               "the timed steps (warm-up s includes it)") if multiple > 1 or compiled else ""
    versions = {"tensorflow": tf.__version__}
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    result.update(framework="tfner", model=args.model, backend=backend, jit_compile=bool(args.jit_compile),
                  pad_to_multiple=multiple, compile=compiled, build_s=build_s,
                  train_function_traces=tracing_count(tagger) if backend == "tensorflow" else None,
                  total_s=total_s, load=load.record(), peak_rss_mb=benchlib.peak_rss_mb(),
                  first_step_s=times[1] - times[0] if len(times) > 1 else None,
                  notes=f"{how} over a tf.data stream of the plan's padded batches{padding}; optimizer = "
                        "tfner.training.make_optimizer (GroupedAdamW).", **versions)
    benchlib.write_json(args.out, result)


def _throughput_result(data, times, args, hf_config, num_tags):
    """Throughput windows after the warm-up steps (shared shape with the peers' results)."""
    plan = data["plan"]
    lengths = data["lengths"]
    timed = plan[args.warmup:]
    stamps = times[args.warmup:]
    sequences = [len(b) for b in timed]
    chars = [int(lengths[b].sum()) for b in timed]
    flops = [benchlib.tagger_train_flops(lengths[b].tolist(), hidden=hf_config["hidden_size"],
                                         layers=hf_config["num_hidden_layers"],
                                         intermediate=hf_config["intermediate_size"],
                                         lstm_units=CONTEXT_UNITS, num_tags=num_tags) for b in timed]
    return {
        "warmup_steps": args.warmup, "window": args.window, "windows": args.windows,
        "sequences_per_s": benchlib.window_rates(stamps, sequences, args.window),
        "chars_per_s": benchlib.window_rates(stamps, chars, args.window),
        "model_flops_per_s": benchlib.window_rates(stamps, flops, args.window),
        "warmup_s": stamps[0] - times[0],
    }


# --------------------------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------------------------


def cmd_accuracy(args):
    import tensorflow as tf

    from tfner.evaluation import entity_scores

    work = pathlib.Path(args.work)
    train = benchlib.load_batches(work / "data" / "accuracy_train.npz")
    test = benchlib.load_batches(work / "data" / "accuracy_test.npz")
    steps = len(train["plan"])
    tagger, tokenizer, hf_config = build_model("tiny")
    tagger.load_weights(str(work / "weights" / "tiny-init.weights.h5"))
    optimizer = parity_optimizer(tagger, steps)
    with benchlib.LoadRecorder() as load:
        start = time.perf_counter()
        times, losses, _ = _train(tagger, train, steps, optimizer, tokenizer.pad_id)
        train_s = time.perf_counter() - start
    predicted = predict_ids(tagger, test, tokenizer.pad_id)
    label_list = tagger.labels
    gold = [[label_list[t] for t in tags] for tags in test["tag_ids"]]
    pred = [[label_list[t] for t in tags] for tags in predicted]
    scores = entity_scores(gold, pred, scheme="BIO")
    tagger.save_weights(str(work / "weights" / "tiny-trained.weights.h5"))
    save_canonical(tagger, hf_config, work / "weights" / "tiny-trained.safetensors", optimizer)
    benchlib.write_json(args.out, {
        "framework": "tfner", "tensorflow": tf.__version__, "steps": steps, "train_s": train_s,
        "losses": losses,
        "f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
        "per_type": scores["per_type"], "test_sentences": len(test["token_ids"]),
        "load": load.record(), "peak_rss_mb": benchlib.peak_rss_mb(),
    })


def predict_ids(tagger, data, pad_id):
    """Decoded tag ids per test sentence, batches from the data's plan (sorted by length)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def tag(ids, mask):
        return tagger({"token_ids": ids, "padding_mask": mask}, training=False)["tags"]

    out = [None] * len(data["token_ids"])
    for indices in data["plan"]:
        ids, mask, _ = benchlib.pad_batch(data["token_ids"], None, indices, pad_id)
        tags = tag(tf.constant(ids), tf.constant(mask)).numpy()
        for row, i in enumerate(indices):
            out[i] = tags[row, : len(data["token_ids"][i])].tolist()
    return out


def cmd_score(args):
    from tfner.evaluation import entity_scores

    test = benchlib.load_batches(pathlib.Path(args.work) / "data" / "accuracy_test.npz")
    label_list = test["meta"]["labels"]
    predicted = benchlib.read_json(args.preds)["tags"]
    gold = [[label_list[t] for t in tags] for tags in test["tag_ids"]]
    pred = [[label_list[t] for t in tags] for tags in predicted]
    scores = entity_scores(gold, pred, scheme="BIO")
    benchlib.write_json(args.out, {k: scores[k] for k in ("f1", "precision", "recall", "per_type")})


# --------------------------------------------------------------------------------------------
# export / infer
# --------------------------------------------------------------------------------------------


def cmd_export(args):
    import shutil

    work = pathlib.Path(args.work)
    trained = work / "weights" / "tiny-trained.weights.h5"
    info = {"weights": "trained in the accuracy run"}
    tagger, _, hf_config = build_model("tiny")
    if trained.exists():
        tagger.load_weights(str(trained))
    else:
        tagger.load_weights(str(work / "weights" / "tiny-init.weights.h5"))
        save_canonical(tagger, hf_config, work / "weights" / "tiny-trained.safetensors")
        info["weights"] = "initial (no accuracy run in this work folder)"
    try:
        from tfner.export import export_saved_model
    except ImportError as error:  # the export issue may not be merged yet
        info["export"] = f"unavailable: {error}"
        benchlib.write_json(args.out, info)
        return
    info.update(export="tfner.export.export_saved_model", exports={})
    # The default export (runs on stock TF Serving) and the XLA one (jit_compile=True).
    for name, jit in (("saved_model", False), ("saved_model_xla", True)):
        target = work / name
        if target.exists():
            shutil.rmtree(target)
        start = time.perf_counter()
        path = export_saved_model(tagger, target, version=1, jit_compile=jit)
        info["exports"][name] = {"path": str(path), "jit_compile": jit,
                                 "export_s": time.perf_counter() - start}
    info["path"] = info["exports"]["saved_model"]["path"]
    benchlib.write_json(args.out, info)


def cmd_infer(args):
    import tensorflow as tf

    work = pathlib.Path(args.work)
    texts = benchlib.read_json(work / "data" / "inference.json")
    single_text = tf.constant([texts["single"]])
    batch_text = tf.constant(texts["batch"])

    def ids_inputs(rows):
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), np.int32)
        mask = np.zeros((len(rows), width), np.int32)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return tf.constant(ids), tf.constant(mask)

    single_ids = ids_inputs([texts["single_ids"]])
    batch_ids = ids_inputs(texts["batch_ids"])
    result = {"framework": "tfner", "tensorflow": tf.__version__, "load_s": {}, "first_call_ms": {},
              "paths": {}}
    with benchlib.LoadRecorder() as load:
        for export, suffix in (("saved_model", ""), ("saved_model_xla", "_xla")):
            if not (work / export / "1").exists():
                continue
            load_start = time.perf_counter()
            model = tf.saved_model.load(str(work / export / "1"))
            result["load_s"][export] = time.perf_counter() - load_start
            serve, tokens = model.signatures["serving_default"], model.signatures["tokens"]
            cases = {
                "text": (lambda: serve(text=single_text), lambda: serve(text=batch_text)),
                "token_ids": (lambda: tokens(token_ids=single_ids[0], padding_mask=single_ids[1]),
                              lambda: tokens(token_ids=batch_ids[0], padding_mask=batch_ids[1])),
            }
            for name, (one, many) in cases.items():
                # The first calls of each shape: graph set-up, and for XLA the compilation.
                for call, label in ((one, "single"), (many, "batch")):
                    start = time.perf_counter()
                    call()
                    result["first_call_ms"][f"{name}{suffix}/{label}"] = (time.perf_counter() - start) * 1000
                result["paths"][name + suffix] = benchlib.latency_and_throughput(
                    one, many, len(texts["batch"]), args)
            out = serve(text=batch_text)
            result["batch_tags" + suffix] = [[t.decode() for t in row[:n]] for row, n in
                                             zip(out["tags"].numpy(), out["length"].numpy())]
    result["load"] = load.record()
    result["peak_rss_mb"] = benchlib.peak_rss_mb()
    result["notes"] = ("text: serving_default, raw text in (tokenization, windows, CRF decode, entity spans "
                       "and confidences in the graph); token_ids: the tokens signature, token ids in, tag ids "
                       "out; *_xla: the same signatures of the export with jit_compile=True.")
    benchlib.write_json(args.out, result)


# --------------------------------------------------------------------------------------------
# profile: where the time of a training step goes
# --------------------------------------------------------------------------------------------


def profile_batch(data, pad_id, width=None, multiple=1):
    """The plan's batch whose padded width is the median one (or closest to ``width``), its width
    rounded up to a multiple of ``multiple`` (``padded_batch``)."""
    widths = [int(data["lengths"][b].max()) for b in data["plan"]]
    target = int(np.median(widths)) if width is None else width
    index = min(range(len(widths)), key=lambda i: (abs(widths[i] - target), i))
    return padded_batch(data, data["plan"][index], pad_id, multiple)


def cmd_profile(args):
    """Forward+backward time of each part of the tagger on one typical batch.

    Default: TF graph mode (``tf.function``). ``--jit-compile``: every part XLA-compiled
    (``tf.function(jit_compile=True)``; on ``KERAS_BACKEND=jax``: ``jax.jit`` of ``jax.value_and_grad``),
    the batch padded to a multiple of ``--pad-to-multiple`` as the compiled training pads it, and
    the training step compiled like ``fit``'s: the breakdown of the ``tfner-xla`` / ``tfner-jax``
    training rows.
    """
    import keras
    from keras import ops

    from tfner.training.trainer import DEFAULT_JIT_PAD_MULTIPLE

    backend = keras.backend.backend()
    jit = bool(args.jit_compile)
    work = pathlib.Path(args.work)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    tagger, tokenizer, _ = build_model(args.model)
    tagger.load_weights(str(work / "weights" / f"{args.model}-init.weights.h5"))
    multiple = (args.pad_to_multiple or DEFAULT_JIT_PAD_MULTIPLE) if jit else 1
    ids, mask, tags = profile_batch(data, tokenizer.pad_id, args.width, multiple)
    if jit:
        from tfner.training.xla import use_philox_dropout_under_xla

        use_philox_dropout_under_xla()  # as fit_tagger does under jit_compile (TF; no-op on JAX)
    rng = np.random.default_rng(0)
    hidden = tagger.representation.hidden_dim
    context_in = rng.normal(size=(*ids.shape, hidden)).astype("float32")
    emissions = rng.normal(size=(*ids.shape, len(tagger.labels))).astype("float32")
    ids, mask, tags, context_in, emissions = (ops.convert_to_tensor(a) for a in (ids, mask, tags, context_in,
                                                                                 emissions))
    encoder, context, crf = tagger.representation, tagger.get_layer("context"), tagger.decoder_layer

    if backend == "jax":
        import jax

        def fwd_bwd(fn, variables, watch=None):
            variables = list(variables)

            def loss(values, w):
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    return fn(w)

            grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1) if watch is not None else 0))
            values = [v.value for v in variables]
            return lambda: grad(values, watch)

        def forward(fn):
            return jax.jit(fn)

        def sync(out):
            return jax.block_until_ready(out)
    else:
        import tensorflow as tf

        def fwd_bwd(fn, variables, watch=None):
            @tf.function(reduce_retracing=True, jit_compile=jit)
            def step():
                with tf.GradientTape() as tape:
                    if watch is not None:
                        tape.watch(watch)
                    loss = fn(watch)
                targets = list(variables) + ([watch] if watch is not None else [])
                grads = tape.gradient(loss, targets)
                return loss, [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
            return step

        def forward(fn):
            return tf.function(fn, jit_compile=jit)

        def sync(out):
            return tf.nest.map_structure(lambda t: t.numpy(), out)

    x = {"token_ids": ids, "padding_mask": mask}
    parts = {
        "encoder_fwd_bwd": fwd_bwd(lambda w: ops.sum(encoder(ids, mask, training=True) ** 2),
                                   encoder.trainable_variables),
        "bilstm_fwd_bwd": fwd_bwd(lambda w: ops.sum(context(w, mask=mask, training=True) ** 2),
                                  context.trainable_variables, context_in),
        "crf_loss_fwd_bwd": fwd_bwd(lambda w: crf.loss(w, tags, mask), crf.trainable_variables, emissions),
        "crf_decode": forward(lambda: crf(emissions, mask=mask)),
        "model_fwd_bwd": fwd_bwd(lambda w: tagger.compute_loss(x, tags, tagger(x, training=True)),
                                 tagger.trainable_variables),
    }
    # The same network without the Viterbi output: shows whether training pays for decoding.
    to_emissions = keras.Model(tagger.inputs, tagger.get_layer("emissions").output)
    parts["model_fwd_bwd_no_viterbi"] = fwd_bwd(lambda w: crf.loss(to_emissions(x, training=True), tags, mask),
                                                tagger.trainable_variables)
    tagger.compile(optimizer=parity_optimizer(tagger, 1000), jit_compile=jit)
    results = {}
    with benchlib.LoadRecorder() as load:
        for name, fn in parts.items():
            results[name] = benchlib.time_rounds(fn, args.rounds, args.calls, sync=sync)
        results["fit_step"] = benchlib.time_rounds(lambda: tagger.train_on_batch(x, tags), args.rounds, args.calls)
    benchlib.write_json(args.out, {"framework": "tfner", "model": args.model, "batch_shape": list(ids.shape),
                                   "backend": backend, "jit_compile": jit,
                                   "ms": {k: benchlib.summarize(v) for k, v in results.items()},
                                   "load": load.record()})


SCOPES = (("optimizer", ("adam", "optimizer", "clip", "weight_decay", "assign")),
          ("crf", ("crf",)), ("bilstm", ("context", "lstm")), ("encoder", ("encoder", "backbone", "transformer",
                                                                             "embedding")),
          ("emissions", ("emissions",)))


def scope_of(name):
    """Which part of the tagger a TF op name belongs to (from its Keras name scopes)."""
    lowered = name.lower()
    for part, keys in SCOPES:
        if any(k in lowered for k in keys):
            return part
    return "other"


def op_stats(xplane_paths):
    """``(by_type, by_part)`` self-time totals in ms from the profiler's framework op stats."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data, ok = plugin.xspace_to_tools_data([str(p) for p in xplane_paths], "framework_op_stats")
    if not ok:
        raise RuntimeError(f"profiler conversion failed: {data[:200]!r}")
    tables = json.loads(data)
    table = tables[0] if isinstance(tables, list) else tables
    columns = [c["id"] for c in table["cols"]]
    by_type, by_part = {}, {}
    for row in table["rows"]:
        values = dict(zip(columns, [c.get("v") if isinstance(c, dict) else c for c in row["c"]]))
        if str(values.get("host_or_device", "Host")).lower() not in ("host", "cpu"):
            continue
        self_ms = float(values.get("total_self_time") or 0.0) / 1000.0
        op_type = values.get("type") or "?"
        if op_type in ("IDLE", "_Recv", "_Send"):
            continue
        by_type[op_type] = by_type.get(op_type, 0.0) + self_ms
        part = scope_of(values.get("operation") or "")
        by_part[part] = by_part.get(part, 0.0) + self_ms
    return by_type, by_part


def cmd_trace(args):
    """TF profiler trace of training steps (open ``--logdir`` in TensorBoard's profile plugin / trace
    viewer); writes the op self-time per op type and per tagger part."""
    import glob

    import tensorflow as tf

    work = pathlib.Path(args.work)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    data["plan"] = data["plan"][: args.warmup + args.steps]
    tagger, tokenizer, _ = build_model(args.model)
    tagger.load_weights(str(work / "weights" / f"{args.model}-init.weights.h5"))
    tagger.compile(optimizer=parity_optimizer(tagger, 1000), jit_compile=False)
    batches = [benchlib.pad_batch(data["token_ids"], data["tag_ids"], b, tokenizer.pad_id) for b in data["plan"]]
    for ids, mask, tags in batches[: args.warmup]:
        tagger.train_on_batch({"token_ids": ids, "padding_mask": mask}, tags)
    logdir = pathlib.Path(args.logdir)
    tf.profiler.experimental.start(str(logdir))
    start = time.perf_counter()
    for ids, mask, tags in batches[args.warmup :]:
        tagger.train_on_batch({"token_ids": ids, "padding_mask": mask}, tags)
    wall_ms = (time.perf_counter() - start) * 1000.0
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(str(logdir / "**" / "*.xplane.pb"), recursive=True))[-1:]
    by_type, by_part = op_stats(paths)
    steps = len(batches) - args.warmup
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:20]
    benchlib.write_json(args.out, {
        "framework": "tfner", "model": args.model, "steps": steps, "wall_ms_per_step": wall_ms / steps,
        "self_ms_per_step_by_part": {k: v / steps for k, v in sorted(by_part.items(), key=lambda kv: -kv[1])},
        "self_ms_per_step_top_op_types": {k: v / steps for k, v in top},
        "xplane": [str(p) for p in paths]})


# --------------------------------------------------------------------------------------------
# matmul
# --------------------------------------------------------------------------------------------


def cmd_matmul(args):
    import tensorflow as tf

    n = args.size
    a = tf.random.normal([n, n], dtype=tf.float32)
    b = tf.random.normal([n, n], dtype=tf.float32)

    @tf.function
    def mm(a, b):
        return tf.matmul(a, b)

    for _ in range(3):
        mm(a, b).numpy()
    rates = []
    with benchlib.LoadRecorder() as load:
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                out = mm(a, b)
            out.numpy()
            rates.append(2.0 * n**3 * args.calls / (time.perf_counter() - start) / 1e9)
    benchlib.write_json(args.out, {"framework": "tensorflow", "tensorflow": tf.__version__, "size": n,
                                   "gflops": rates, "load": load.record(),
                                   "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()})


# --------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(benchlib.WORK_DIR))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--throughput-batches", type=int, default=40)
    p.add_argument("--accuracy-train", type=int, default=20000)
    p.add_argument("--accuracy-steps", type=int, default=300)
    p.add_argument("--accuracy-test", type=int, default=2000)
    p.add_argument("--models", default="tiny,base")

    p = sub.add_parser("crf")
    p.add_argument("--tags", default="7,41")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--out", required=True)

    p = sub.add_parser("train")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--profile-dir", default=None)
    p.add_argument("--jit-compile", action="store_true",
                   help="XLA-compile the whole train step (on KERAS_BACKEND=jax: jax.jit)")
    p.add_argument("--pad-to-multiple", type=int, default=None,
                   help="pad batch widths to a multiple of this (default 16 with --jit-compile, else 1)")
    p.add_argument("--out", required=True)

    p = sub.add_parser("accuracy")
    p.add_argument("--out", required=True)

    p = sub.add_parser("score")
    p.add_argument("--preds", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("export")
    p.add_argument("--out", required=True)

    p = sub.add_parser("infer")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--latency-calls", type=int, default=200)
    p.add_argument("--batch-calls", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", required=True)

    p = sub.add_parser("profile")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--jit-compile", action="store_true",
                   help="every part XLA-compiled (on KERAS_BACKEND=jax: jax.jit), the batch padded as the "
                        "compiled training pads it")
    p.add_argument("--pad-to-multiple", type=int, default=None,
                   help="with --jit-compile: pad the batch width to a multiple of this (default 16)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--out", required=True)

    p = sub.add_parser("trace")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--logdir", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("matmul")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--out", required=True)

    args = parser.parse_args(argv)
    handler = globals()["cmd_" + args.command]
    handler(args)


if __name__ == "__main__":
    main()
