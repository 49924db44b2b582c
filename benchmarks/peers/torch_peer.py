"""The Hugging Face transformers + PyTorch (+ pytorch-crf) peer.

Runs inside ``benchmarks/.envs/torch`` (created by ``benchmarks/envs.py``), never in tfner's own
environment. The model is what a PyTorch user writes for BERT-BiLSTM-CRF (e.g. the code of
paper B): ``transformers.BertModel`` (no pooler) -> dropout -> ``nn.LSTM(bidirectional=True)`` over
a packed sequence -> dropout -> ``nn.Linear`` -> ``torchcrf.CRF``. It loads the very weights
tfner starts from (or was trained to), written by ``benchmarks/tfner_side.py`` in PyTorch naming,
and applies the same tag-scheme constraints to the CRF (``torch.nn.utils.parametrize``), so
both sides compute the same function.

Subcommands: ``parity``, ``train``, ``accuracy``, ``infer``, ``matmul``; results are JSON files.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402
from torchcrf import CRF  # noqa: E402

import benchlib  # noqa: E402


class _Constrain(nn.Module):
    """Parametrization: forbidden transitions get a large negative score (as tfner's CRF)."""

    def __init__(self, allowed, forbidden):
        super().__init__()
        self.register_buffer("allowed", torch.as_tensor(np.asarray(allowed, dtype=bool)))
        self.forbidden = float(forbidden)

    def forward(self, x):
        return torch.where(self.allowed, x, torch.full_like(x, self.forbidden))


class BertBiLSTMCRF(nn.Module):
    """BertModel -> BiLSTM -> Linear -> CRF over one id per character.

    ``[CLS]``/``[SEP]`` are added around each row's characters and stripped again, as tfner's
    ``PretrainedCharEncoder`` does, so labels align one-to-one with characters.
    """

    def __init__(self, meta, lstm_mode="packed"):
        super().__init__()
        from transformers import BertConfig, BertModel

        if lstm_mode not in ("packed", "reversed"):
            raise ValueError(f"lstm_mode must be 'packed' or 'reversed', got {lstm_mode!r}")
        self.lstm_mode = lstm_mode

        self.special = meta["special_ids"]
        self.bert = BertModel(BertConfig(**meta["hf_config"]), add_pooling_layer=False)
        hidden = int(meta["hf_config"]["hidden_size"])
        units = int(meta["context_units"])
        num_tags = len(meta["labels"])
        self.dropout = nn.Dropout(meta["dropout"])
        self.lstm = nn.LSTM(hidden, units, batch_first=True, bidirectional=True)
        self.emissions = nn.Linear(2 * units, num_tags)
        self.crf = CRF(num_tags, batch_first=True)
        self.meta = meta

    def load_canonical(self, path):
        tensors = {k: torch.from_numpy(v) for k, v in load_file(str(path)).items()}
        missing, unexpected = self.load_state_dict(tensors, strict=False)
        missing = [m for m in missing if "position_ids" not in m]
        if missing or unexpected:
            raise ValueError(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        # tfner's LSTM has one bias per gate: keep bias_hh at zero and frozen.
        for name, parameter in self.lstm.named_parameters():
            if name.startswith("bias_hh"):
                parameter.requires_grad_(False)
        forbidden = self.meta["forbidden_score"]
        parametrize.register_parametrization(self.crf, "transitions", _Constrain(self.meta["allowed"], forbidden))
        parametrize.register_parametrization(
            self.crf, "start_transitions", _Constrain(self.meta["allowed_start"], forbidden))
        parametrize.register_parametrization(
            self.crf, "end_transitions", _Constrain(self.meta["allowed_end"], forbidden))

    def forward(self, ids, mask):
        batch, width = ids.shape
        lengths = mask.sum(dim=1)
        pad, cls, sep = self.special["pad"], self.special["cls"], self.special["sep"]
        extended = torch.full((batch, width + 2), pad, dtype=torch.long)
        extended[:, 0] = cls
        extended[:, 1 : width + 1] = torch.where(mask, ids, torch.full_like(ids, pad))
        extended[torch.arange(batch), lengths + 1] = sep
        attention = (torch.arange(width + 2)[None, :] <= (lengths + 1)[:, None]).long()
        hidden = self.bert(input_ids=extended, attention_mask=attention).last_hidden_state[:, 1:-1]
        hidden = self.dropout(hidden)
        if self.lstm_mode == "packed":
            packed = pack_padded_sequence(hidden, lengths.cpu(), batch_first=True, enforce_sorted=False)
            context, _ = self.lstm(packed)
            context, _ = pad_packed_sequence(context, batch_first=True, total_length=width)
        else:
            context = self._reversed_bilstm(hidden, lengths)
        return self.emissions(self.dropout(context))

    def _reversed_bilstm(self, x, lengths):
        """The same BiLSTM without PackedSequence: the forward direction runs over the padded batch
        (padding comes after the real positions, so it cannot reach them) and the backward direction
        over each row reversed within its length; both take PyTorch's fused (oneDNN) LSTM path."""
        batch, width, _ = x.shape
        units = self.lstm.hidden_size
        positions = torch.arange(width)[None, :]
        index = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
        index = index[:, :, None].expand(-1, -1, x.shape[2])
        zeros = x.new_zeros(1, batch, units)
        outputs = []
        for suffix, inputs in (("", x), ("_reverse", torch.gather(x, 1, index))):
            weights = [getattr(self.lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out = torch._VF.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)[0]
            outputs.append(out)
        backward = torch.gather(outputs[1], 1, index[:, :, :1].expand(-1, -1, units))
        return torch.cat([outputs[0], backward], dim=2)

    def loss(self, ids, mask, tags):
        return -self.crf(self(ids, mask), tags, mask=mask, reduction="mean")

    def decode(self, ids, mask):
        return self.crf.decode(self(ids, mask), mask=mask)


def canonical_name(parameter_name):
    """``crf.parametrizations.transitions.original`` -> ``crf.transitions``."""
    return re.sub(r"parametrizations\.(\w+)\.original", r"\1", parameter_name)


def load_model(weights, lstm_mode="packed"):
    meta = benchlib.read_json(str(weights) + ".json")
    model = BertBiLSTMCRF(meta, lstm_mode)
    model.load_canonical(weights)
    return model, meta


def setup_threads():
    default = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count())
    return {"default_threads": default, "threads": torch.get_num_threads()}


def to_torch(ids, mask, tags=None):
    out = (torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask))
    return out + ((torch.from_numpy(tags.astype(np.int64)),) if tags is not None else ())


def make_optimizer(model, meta, total_steps, lr):
    """AdamW with the same groups (learning-rate multiplier, weight decay) as tfner's GroupedAdamW,
    linear warm-up + linear decay, eps as Keras (1e-7)."""
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        spec = meta["groups"].get(canonical_name(name))
        if spec is None:
            raise ValueError(f"no optimizer group for parameter {name}")
        key = (spec.get("lr_multiplier", 1.0), spec.get("weight_decay", True))
        groups.setdefault(key, []).append(parameter)
    param_groups = [{"params": ps, "lr": lr["head_lr"] * mult, "weight_decay": lr["weight_decay"] if wd else 0.0}
                    for (mult, wd), ps in groups.items()]
    optimizer = torch.optim.AdamW(param_groups, lr=lr["head_lr"], eps=1e-7)
    warmup = int(round(lr["warmup_fraction"] * max(total_steps, 1)))

    def factor(step):
        if warmup > 0 and step < warmup:
            return step / warmup
        return max(0.0, 1.0 - (step - warmup) / max(total_steps - warmup, 1))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_steps(model, data, optimizer, scheduler, pad_id, clipnorm, steps):
    model.train()
    timer = benchlib.StepTimer()
    timer.mark()
    losses = []
    parameters = [p for p in model.parameters() if p.requires_grad]
    for indices in data["plan"][:steps]:
        ids, mask, tags = to_torch(*benchlib.pad_batch(data["token_ids"], data["tag_ids"], indices, pad_id))
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(ids, mask, tags)
        loss.backward()
        if clipnorm:
            for p in parameters:  # Keras `clipnorm`: each gradient clipped by its own norm
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_([p], clipnorm)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        timer.mark()
    return timer.times, losses


# Same as tfner_side.PARITY_LR (kept in sync by the orchestrator passing nothing else).
PARITY_LR = {"encoder_lr": 5e-4, "head_lr": 2e-3, "crf_lr": 1e-2, "weight_decay": 0.01,
             "warmup_fraction": 0.1, "clipnorm": 5.0}


def versions():
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def cmd_parity(args):
    work = pathlib.Path(args.work)
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors", args.lstm)
    model.eval()
    batch = np.load(work / "weights" / f"{args.model}-parity.npz")
    ids, mask = to_torch(batch["token_ids"], batch["padding_mask"])
    with torch.inference_mode():
        emissions = model(ids, mask).numpy()
        tags = model.crf.decode(torch.from_numpy(emissions), mask=mask)
    real = batch["padding_mask"]
    diff = np.abs(emissions - batch["emissions"])[real]
    same = all(list(batch["tags"][r, : int(real[r].sum())]) == t for r, t in enumerate(tags))
    benchlib.write_json(args.out, dict(**versions(), framework="torch", model=args.model,
                                       emissions_max_abs_diff=float(diff.max()),
                                       emissions_scale=float(np.abs(batch["emissions"][real]).max()),
                                       decoded_tags_identical=bool(same),
                                       attention=str(model.bert.config._attn_implementation)))


def cmd_train(args):
    work = pathlib.Path(args.work)
    threads = setup_threads()
    torch.manual_seed(0)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    steps = args.warmup + args.window * args.windows
    build_start = time.perf_counter()
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors", args.lstm)
    build_s = time.perf_counter() - build_start
    optimizer, scheduler = make_optimizer(model, meta, steps, PARITY_LR)
    with benchlib.LoadRecorder() as load:
        start = time.perf_counter()
        times, _ = train_steps(model, data, optimizer, scheduler, data["meta"]["pad_id"],
                               PARITY_LR["clipnorm"], steps)
        total_s = time.perf_counter() - start
    result = throughput_result(data, times, args, meta)
    result.update(**versions(), **threads, framework="torch", model=args.model, build_s=build_s,
                  total_s=total_s, load=load.record(), peak_rss_mb=benchlib.peak_rss_mb(),
                  first_step_s=times[1] - times[0],
                  attention=str(model.bert.config._attn_implementation),
                  notes="eager PyTorch loop: pad batch, forward, CRF NLL, backward, per-tensor clip, AdamW.")
    benchlib.write_json(args.out, result)


def throughput_result(data, times, args, meta):
    plan = data["plan"]
    lengths = data["lengths"]
    steps = len(times) - 1
    timed = plan[args.warmup : steps]
    stamps = times[args.warmup :]
    config = meta["hf_config"]
    flops = [benchlib.tagger_train_flops(lengths[b].tolist(), hidden=config["hidden_size"],
                                         layers=config["num_hidden_layers"],
                                         intermediate=config["intermediate_size"],
                                         lstm_units=meta["context_units"], num_tags=len(meta["labels"]))
             for b in timed]
    return {
        "warmup_steps": args.warmup, "window": args.window, "windows": args.windows,
        "sequences_per_s": benchlib.window_rates(stamps, [len(b) for b in timed], args.window),
        "chars_per_s": benchlib.window_rates(stamps, [int(lengths[b].sum()) for b in timed], args.window),
        "model_flops_per_s": benchlib.window_rates(stamps, flops, args.window),
        "warmup_s": stamps[0] - times[0],
    }


def cmd_accuracy(args):
    work = pathlib.Path(args.work)
    threads = setup_threads()
    torch.manual_seed(0)
    train = benchlib.load_batches(work / "data" / "accuracy_train.npz")
    test = benchlib.load_batches(work / "data" / "accuracy_test.npz")
    steps = len(train["plan"])
    model, meta = load_model(work / "weights" / "tiny-init.safetensors")
    optimizer, scheduler = make_optimizer(model, meta, steps, PARITY_LR)
    pad_id = train["meta"]["pad_id"]
    with benchlib.LoadRecorder() as load:
        start = time.perf_counter()
        _, losses = train_steps(model, train, optimizer, scheduler, pad_id, PARITY_LR["clipnorm"], steps)
        train_s = time.perf_counter() - start
    model.eval()
    predicted = [None] * len(test["token_ids"])
    with torch.inference_mode():
        for indices in test["plan"]:
            ids, mask, _ = benchlib.pad_batch(test["token_ids"], None, indices, pad_id)
            for i, tags in zip(indices, model.decode(*to_torch(ids, mask))):
                predicted[i] = tags
    benchlib.write_json(args.preds, {"tags": predicted})
    benchlib.write_json(args.out, dict(**versions(), **threads, framework="torch", steps=steps, train_s=train_s,
                                       losses=losses, load=load.record(),
                                       peak_rss_mb=benchlib.peak_rss_mb()))


def cmd_infer(args):
    work = pathlib.Path(args.work)
    threads = setup_threads()
    texts = benchlib.read_json(work / "data" / "inference.json")
    load_start = time.perf_counter()
    model, meta = load_model(work / "weights" / "tiny-trained.safetensors")
    model.eval()
    load_s = time.perf_counter() - load_start
    vocab = {token: i for i, token in enumerate(texts["vocab"])}
    unk, pad = meta["special_ids"]["unk"], meta["special_ids"]["pad"]

    def encode(batch_texts):
        rows = [[vocab.get(c, unk) for c in text] for text in batch_texts]
        return batch_from_ids(rows)

    def batch_from_ids(rows):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        return ids, mask

    def tag_texts(batch_texts):
        return model.decode(*encode(batch_texts))

    single_ids = batch_from_ids([texts["single_ids"]])
    batch_ids = batch_from_ids(texts["batch_ids"])
    result = dict(**versions(), **threads, framework="torch", load_s=load_s, paths={})
    with torch.inference_mode(), benchlib.LoadRecorder() as load:
        cases = {
            "text": (lambda: tag_texts([texts["single"]]), lambda: tag_texts(texts["batch"])),
            "token_ids": (lambda: model.decode(*single_ids), lambda: model.decode(*batch_ids)),
        }
        for name, (one, many) in cases.items():
            result["paths"][name] = benchlib.latency_and_throughput(one, many, len(texts["batch"]), args)
        labels = meta["labels"]
        result["batch_tags"] = [[labels[t] for t in row] for row in tag_texts(texts["batch"])]
    result.update(load=load.record(), peak_rss_mb=benchlib.peak_rss_mb(),
                  notes="eager PyTorch, torch.inference_mode(); text path = Python vocabulary lookup + "
                        "model + pytorch-crf Viterbi (returns Python lists).")
    benchlib.write_json(args.out, result)


def cmd_profile(args):
    """Forward+backward time of each part of the model on the same batch as tfner_side's profile."""
    work = pathlib.Path(args.work)
    threads = setup_threads()
    torch.manual_seed(0)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    widths = [int(data["lengths"][b].max()) for b in data["plan"]]
    target = int(np.median(widths)) if args.width is None else args.width
    index = min(range(len(widths)), key=lambda i: (abs(widths[i] - target), i))
    pad_id = data["meta"]["pad_id"]
    ids, mask, tags = to_torch(*benchlib.pad_batch(data["token_ids"], data["tag_ids"], data["plan"][index], pad_id))
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors", args.lstm)
    model.train()
    rng = np.random.default_rng(0)
    hidden = meta["hf_config"]["hidden_size"]
    context_in = torch.tensor(rng.normal(size=(*ids.shape, hidden)).astype("float32"), requires_grad=True)
    emissions = torch.tensor(rng.normal(size=(*ids.shape, len(meta["labels"]))).astype("float32"),
                             requires_grad=True)
    lengths = mask.sum(1)
    pad, cls, sep = model.special["pad"], model.special["cls"], model.special["sep"]

    def encoder():
        batch, width = ids.shape
        extended = torch.full((batch, width + 2), pad, dtype=torch.long)
        extended[:, 0] = cls
        extended[:, 1 : width + 1] = ids
        extended[torch.arange(batch), lengths + 1] = sep
        attention = (torch.arange(width + 2)[None, :] <= (lengths + 1)[:, None]).long()
        out = model.bert(input_ids=extended, attention_mask=attention).last_hidden_state[:, 1:-1]
        (out ** 2).sum().backward()

    def bilstm():
        if model.lstm_mode == "reversed":
            out = model._reversed_bilstm(context_in, lengths)
        else:
            packed = pack_padded_sequence(context_in, lengths, batch_first=True, enforce_sorted=False)
            out, _ = model.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        (out ** 2).sum().backward()

    def crf_loss():
        (-model.crf(emissions, tags, mask=mask, reduction="mean")).backward()

    def crf_decode():
        with torch.no_grad():
            model.crf.decode(emissions, mask=mask)

    def model_fwd_bwd():
        model.loss(ids, mask, tags).backward()

    optimizer, scheduler = make_optimizer(model, meta, 1000, PARITY_LR)
    parameters = [p for p in model.parameters() if p.requires_grad]

    def fit_step():
        optimizer.zero_grad(set_to_none=True)
        model.loss(ids, mask, tags).backward()
        for p in parameters:
            if p.grad is not None:
                torch.nn.utils.clip_grad_norm_([p], PARITY_LR["clipnorm"])
        optimizer.step()
        scheduler.step()

    parts = {"encoder_fwd_bwd": encoder, "bilstm_fwd_bwd": bilstm, "crf_loss_fwd_bwd": crf_loss,
             "crf_decode": crf_decode, "model_fwd_bwd": model_fwd_bwd, "fit_step": fit_step}
    results = {}
    with benchlib.LoadRecorder() as load:
        for name, fn in parts.items():
            results[name] = benchlib.summarize(benchlib.time_rounds(fn, args.rounds, args.calls))
    benchlib.write_json(args.out, dict(**versions(), **threads, framework="torch", model=args.model,
                                       batch_shape=list(ids.shape), ms=results, load=load.record()))


def cmd_trace(args):
    """torch.profiler over training steps: CPU self-time per op (the counterpart of tfner_side trace)."""
    from torch.profiler import ProfilerActivity, profile

    work = pathlib.Path(args.work)
    threads = setup_threads()
    torch.manual_seed(0)
    data = benchlib.load_batches(work / "data" / "throughput.npz")
    model, meta = load_model(work / "weights" / f"{args.model}-init.safetensors", args.lstm)
    optimizer, scheduler = make_optimizer(model, meta, 1000, PARITY_LR)
    pad_id = data["meta"]["pad_id"]
    train_steps(model, data, optimizer, scheduler, pad_id, PARITY_LR["clipnorm"], args.warmup)
    timed = dict(data, plan=data["plan"][args.warmup : args.warmup + args.steps])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        train_steps(model, timed, optimizer, scheduler, pad_id, PARITY_LR["clipnorm"], args.steps)
        wall_ms = (time.perf_counter() - start) * 1000.0
    steps = len(timed["plan"])
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    top = {e.key: e.self_cpu_time_total / 1000.0 / steps for e in events[:20]}
    benchlib.write_json(args.out, dict(**versions(), **threads, framework="torch", model=args.model, steps=steps,
                                       wall_ms_per_step=wall_ms / steps, self_ms_per_step_top_op_types=top,
                                       self_ms_per_step_total=sum(e.self_cpu_time_total for e in events)
                                       / 1000.0 / steps))


def cmd_matmul(args):
    threads = setup_threads()
    n = args.size
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    rates = []
    with benchlib.LoadRecorder() as load:
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                a @ b
            rates.append(2.0 * n**3 * args.calls / (time.perf_counter() - start) / 1e9)
    benchlib.write_json(args.out, dict(**versions(), **threads, framework="torch", size=n, gflops=rates,
                                       load=load.record()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(benchlib.WORK_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parity")
    p.add_argument("--model", required=True)
    p.add_argument("--lstm", choices=("packed", "reversed"), default="packed")
    p.add_argument("--out", required=True)
    p = sub.add_parser("train")
    p.add_argument("--model", required=True)
    p.add_argument("--lstm", choices=("packed", "reversed"), default="packed")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--out", required=True)
    p = sub.add_parser("accuracy")
    p.add_argument("--out", required=True)
    p.add_argument("--preds", required=True)
    p = sub.add_parser("infer")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--latency-calls", type=int, default=200)
    p.add_argument("--batch-calls", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", required=True)
    p = sub.add_parser("profile")
    p.add_argument("--model", required=True)
    p.add_argument("--lstm", choices=("packed", "reversed"), default="packed")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--out", required=True)
    p = sub.add_parser("trace")
    p.add_argument("--model", required=True)
    p.add_argument("--lstm", choices=("packed", "reversed"), default="packed")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--logdir", default=None)
    p.add_argument("--out", required=True)
    p = sub.add_parser("matmul")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    globals()["cmd_" + args.command](args)


if __name__ == "__main__":
    main()
