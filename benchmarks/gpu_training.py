"""GPU training throughput (issue 12, "GPU"): tfner on the JAX backend vs Hugging Face + PyTorch.

The same BERT -> BiLSTM(128) -> Linear -> CRF tagger, random initial weights (speed only), the
tiny (2 x 128) and the BERT-base-sized (12 x 768) encoder, trained on one GPU:

- ``jax``: tfner's ``NERTagger`` (keras-hub ``BertBackbone`` in tfner's ``PretrainedCharEncoder``,
  tfner's BiLSTM and CRF) on ``KERAS_BACKEND=jax``, Keras' ``jax.jit``-compiled train step
  (``train_on_batch``); batch widths padded to a multiple of ``--pad-to-multiple`` so that XLA
  compiles a bounded number of shapes, each compiled before the timed steps (compile time
  reported). Needs no TensorFlow: the lent GPU machines have JAX and PyTorch only.
- ``torch``: Hugging Face ``BertModel`` + ``nn.LSTM`` over a ``PackedSequence`` (cuDNN) +
  ``torchcrf.CRF`` (pytorch-crf), the usual eager loop, each batch at its own width.

Both: batches of ``--batch-size`` sentences whose lengths are MSRA train sentence lengths
(length-bucketed as tfner batches them; ``--write-lengths`` draws them from the corpus, the GPU
machine gets only the numbers), random character ids, random valid BIO tags, ``[CLS]``/``[SEP]``
around every row, AdamW (lr 2e-3, weight decay 0.01, global gradient-norm clip 5), float32, the
loss read back after every step. Reports sequences/s over the timed steps (median of windows),
peak GPU memory, versions and the GPU's name.

    # here (needs ../shared): the lengths and the two encoder configs, into .gpu/
    python benchmarks/gpu_training.py prepare --dir .gpu
    # on the GPU machine: every framework x model, each in its own process
    python benchmarks/gpu_training.py run --dir .gpu --out $OUT/gpu_training.json
    # back here: keep the result where report.py reads it
    cp .../gpu_training.json benchmarks/results/gpu_training.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

REPO_DIR = pathlib.Path(__file__).resolve().parent.parent
# benchlib (stdlib only) from benchmarks/; tfner from the checkout (the GPU machine has no install).
sys.path[:0] = [str(REPO_DIR / "benchmarks"), str(REPO_DIR)]
import benchlib  # noqa: E402

MODELS = {"tiny": "../shared/encoders/tiny-bert-zh-L2-H128/config.json",
          "base": "../shared/encoders/configs/bert-base-chinese/config.json"}
LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
SPECIAL = {"pad": 0, "unk": 100, "cls": 101, "sep": 102}  # BERT Chinese vocab.txt ids
MAX_CHARS = 126
LR, WEIGHT_DECAY, CLIPNORM = 2e-3, 0.01, 5.0


def write_lengths(path, batch_size, batches, seed=0):
    """MSRA train sentence lengths (at most ``MAX_CHARS``) for ``batches`` length-bucketed batches."""
    from tfner.data import read_msra

    corpus = read_msra("train")
    lengths = np.array([min(len(s.chars), MAX_CHARS) for s in corpus])
    rng = np.random.default_rng(seed)
    drawn = np.sort(rng.choice(lengths, size=batch_size * batches, replace=False))
    plan = drawn.reshape(batches, batch_size)  # bucketed: similar lengths share a batch
    plan = plan[rng.permutation(batches)]
    path.write_text(json.dumps({"source": "MSRA train_data sentence lengths (capped at 126), sorted into "
                                          f"batches of {batch_size}, batch order shuffled (seed {seed})",
                                "mean_length": float(plan.mean()), "batches": plan.tolist()}))


def batch_arrays(lengths, vocab_size, seed, multiple=1):
    """``(ids, mask, tags)`` for one batch: random ids, valid random BIO tags, width rounded up."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    width = -(-int(lengths.max()) // multiple) * multiple
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids = np.where(mask, rng.integers(1000, vocab_size, size=mask.shape), SPECIAL["pad"]).astype("int32")
    tags = np.zeros(mask.shape, dtype="int32")
    starts = rng.random(mask.shape) < 0.08
    kinds = rng.integers(0, 3, size=mask.shape)
    for r, c in zip(*np.nonzero(starts & mask)):
        span = int(rng.integers(1, 4))
        tags[r, c] = 1 + 2 * kinds[r, c]
        tags[r, c + 1: min(c + span, lengths[r])] = 2 + 2 * kinds[r, c]
    return ids, mask, tags


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def summarize(times_ms, batch_size, window):
    """Sequences/s per window of ``window`` steps (``benchlib.window_rates``), summarized
    (``benchlib.summarize``: median, min, max, n, spread)."""
    timestamps = [0.0] + list(np.cumsum(times_ms) / 1000.0)
    return benchlib.summarize(benchlib.window_rates(timestamps, [batch_size] * len(times_ms), window))


def run_jax(args, config, plan):
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    from tfner.encoders import PretrainedCharEncoder, load_encoder
    from tfner.models import NERTagger

    keras.utils.set_random_seed(0)
    bundle = load_encoder(str(config), random_init=True)
    vocabulary = [f"t{i}" for i in range(int(bundle.config.get("vocab_size", 21128)))]
    encoder = PretrainedCharEncoder(bundle.backbone, cls_id=SPECIAL["cls"], sep_id=SPECIAL["sep"],
                                    pad_id=SPECIAL["pad"], name="encoder")
    tagger = NERTagger(encoder, labels=LABELS, vocabulary=vocabulary, context="bilstm", context_units=128,
                       decoder="crf", name="gpu_bench")
    tagger.compile(optimizer=keras.optimizers.AdamW(LR, weight_decay=WEIGHT_DECAY, global_clipnorm=CLIPNORM),
                   jit_compile=True)
    batches = [batch_arrays(b, len(vocabulary), i, args.pad_to_multiple) for i, b in enumerate(plan)]

    def step(batch):
        ids, mask, tags = batch
        return tagger.train_on_batch({"token_ids": ids, "padding_mask": mask}, tags)

    start = time.perf_counter()
    shapes = {}
    for batch in batches:  # compile every shape of the plan once, before the timed steps
        shapes.setdefault(batch[0].shape, batch)
    for batch in shapes.values():
        step(batch)
    compile_s = time.perf_counter() - start
    times = timed_steps(step, batches, args)
    stats = jax.devices()[0].memory_stats() or {}
    return {"framework": "tfner (JAX backend)", "compile_s": compile_s, "shapes": len(shapes), "times_ms": times,
            "peak_gpu_mib": stats.get("peak_bytes_in_use", 0) / 2**20,
            "versions": {"jax": jax.__version__, "keras": keras.__version__},
            "device": str(jax.devices()[0]), "pad_to_multiple": args.pad_to_multiple}


def run_torch(args, config, plan):
    import torch
    import transformers
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    from torchcrf import CRF

    torch.manual_seed(0)
    device = torch.device(args.torch_device)
    hf = json.loads(pathlib.Path(config).read_text())

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = transformers.BertModel(transformers.BertConfig(**hf), add_pooling_layer=False)
            hidden = int(hf["hidden_size"])
            self.dropout = nn.Dropout(0.1)
            self.lstm = nn.LSTM(hidden, 128, batch_first=True, bidirectional=True)
            self.emissions = nn.Linear(256, len(LABELS))
            self.crf = CRF(len(LABELS), batch_first=True)

        def loss(self, ids, mask, tags):
            batch, width = ids.shape
            lengths = mask.sum(dim=1)
            extended = torch.full((batch, width + 2), SPECIAL["pad"], dtype=torch.long, device=ids.device)
            extended[:, 0] = SPECIAL["cls"]
            extended[:, 1:width + 1] = ids
            extended[torch.arange(batch, device=ids.device), lengths + 1] = SPECIAL["sep"]
            attention = (torch.arange(width + 2, device=ids.device)[None, :] <= (lengths + 1)[:, None]).long()
            hidden = self.dropout(self.bert(input_ids=extended, attention_mask=attention).last_hidden_state[:, 1:-1])
            packed = pack_padded_sequence(hidden, lengths.cpu(), batch_first=True, enforce_sorted=False)
            context, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=width)
            return -self.crf(self.emissions(self.dropout(context)), tags, mask=mask, reduction="mean")

    model = Tagger().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, eps=1e-7)
    batches = []
    for i, b in enumerate(plan):
        ids, mask, tags = batch_arrays(b, int(hf["vocab_size"]), i)
        batches.append((torch.from_numpy(ids.astype("int64")), torch.from_numpy(mask),
                        torch.from_numpy(tags.astype("int64"))))

    def step(batch):
        ids, mask, tags = (t.to(device, non_blocking=True) for t in batch)
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids, mask, tags)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIPNORM)
        optimizer.step()
        return float(loss.detach())

    times = timed_steps(step, batches, args)
    return {"framework": "Hugging Face BertModel + nn.LSTM (packed, cuDNN) + pytorch-crf (PyTorch eager)",
            "times_ms": times, "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else str(device),
            "attention": str(model.bert.config._attn_implementation)}


def timed_steps(step, batches, args):
    """Milliseconds of each of ``--steps`` steps after ``--warmup`` untimed ones (cycling the plan)."""
    for i in range(args.warmup):
        step(batches[i % len(batches)])
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(batches[(args.warmup + i) % len(batches)])
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def cmd_one(args):
    work = pathlib.Path(args.dir)
    lengths = json.loads((work / "lengths.json").read_text())
    plan = lengths["batches"]
    config = work / "configs" / args.model / "config.json"
    result = (run_jax if args.framework == "jax" else run_torch)(args, config, plan)
    result.update(model=args.model, batch_size=len(plan[0]), mean_length=lengths["mean_length"],
                  warmup_steps=args.warmup, timed_steps=args.steps,
                  sequences_per_s=summarize(result["times_ms"], len(plan[0]), args.window))
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))


def cmd_prepare(args):
    work = pathlib.Path(args.dir)
    for model, config in MODELS.items():
        target = work / "configs" / model / "config.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((REPO_DIR / config).read_text())
    write_lengths(work / "lengths.json", args.batch_size, args.batches)
    print(f"wrote {work}/lengths.json and {work}/configs/{{tiny,base}}/config.json")


def cmd_run(args):
    """Every model x framework in its own process (a failure or timeout is recorded, the rest go on)."""
    out = pathlib.Path(args.out)
    result = {"benchmark": "gpu_training", "gpu": gpu_name(), "host": platform.node(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "runs": [], "errors": []}
    for model in args.models.split(","):
        for framework in args.frameworks.split(","):
            part = out.with_name(f"{out.stem}_{framework}_{model}.json")
            cmd = [sys.executable, __file__, "one", "--dir", args.dir, "--framework", framework, "--model", model,
                   "--out", str(part), "--warmup", str(args.warmup), "--steps", str(args.steps),
                   "--window", str(args.window), "--pad-to-multiple", str(args.pad_to_multiple),
                   "--torch-device", args.torch_device]
            env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", TF_CPP_MIN_LOG_LEVEL="3")
            start = time.perf_counter()
            try:
                proc = subprocess.run(cmd, env=env, timeout=args.timeout, capture_output=True, text=True)
                code, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
            except subprocess.TimeoutExpired:
                code, tail = "timeout", ""
            seconds = time.perf_counter() - start
            if code == 0:
                run = json.loads(part.read_text())
                run["process_s"] = seconds
                if not args.keep_times:
                    run.pop("times_ms", None)
                result["runs"].append(run)
                print(f"{model} {framework}: {run['sequences_per_s']['median']:.1f} sequences/s "
                      f"({seconds:.0f} s)", flush=True)
            else:
                result["errors"].append({"model": model, "framework": framework, "exit": code, "tail": tail})
                print(f"{model} {framework}: FAILED ({code}) {tail[-600:]}", flush=True)
            result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            out.write_text(json.dumps(result, indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dir", default=".gpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=40)
    for name in ("run", "one"):
        p = sub.add_parser(name)
        p.add_argument("--dir", default=".gpu")
        p.add_argument("--out", required=True)
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--steps", type=int, default=60)
        p.add_argument("--window", type=int, default=10)
        p.add_argument("--pad-to-multiple", type=int, default=32)
        p.add_argument("--torch-device", default="cuda", help="cpu: check the script where there is no GPU")
        if name == "run":
            p.add_argument("--models", default="tiny,base")
            p.add_argument("--frameworks", default="jax,torch")
            p.add_argument("--timeout", type=int, default=240, help="seconds per framework x model")
            p.add_argument("--keep-times", action="store_true")
        else:
            p.add_argument("--framework", choices=("jax", "torch"), required=True)
            p.add_argument("--model", choices=sorted(MODELS), required=True)
    args = parser.parse_args(argv)
    {"prepare": cmd_prepare, "run": cmd_run, "one": cmd_one}[args.command](args)


if __name__ == "__main__":
    main()
