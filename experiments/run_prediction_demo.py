"""Paper B's prediction workflow (report section 3.4), end to end with the real `tfner` CLI.

    python experiments/run_prediction_demo.py                       # train, export, predict, check
    python experiments/run_prediction_demo.py --epochs 1 --max-steps 200   # a short run, same code
    python experiments/run_prediction_demo.py --model path/to/run_or_savedmodel   # skip training

Runs, as subprocesses, exactly the commands a user types:

    tfner train --preset bert-crf --train msra:train --dev-fraction 0.04 ... --out OUT/model
    tfner export --model OUT/model --out OUT/saved_model
    tfner predict --model OUT/saved_model --input INPUT --output OUT/tags.txt
    tfner check --text INPUT --tags OUT/tags.txt

The default input (docs/examples/paper_b_prediction_input.txt) holds the report's own example
paragraph (the 淮南 paragraph), a short sentence, and a 618-character line (the paragraph six
times), longer than the encoder's 512 positions, so it is split at 。！？；， into windows and the tags
stitched back: one tag per input character. OUT/demo.md records the commands, their output, the
tagged paragraph and its entities, and is copied into the README by summarize_crf_vs_softmax.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_INPUT = REPO / "docs" / "examples" / "paper_b_prediction_input.txt"


def _tfner():
    exe = pathlib.Path(sys.executable).with_name("tfner")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tfner.cli"]


def run(cmd, log):
    """Runs one CLI command; records it with its output and wall time; stops on failure."""
    shown = "tfner " + " ".join(shlex.quote(str(c)) for c in cmd)
    print(f"$ {shown}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(_tfner() + [str(c) for c in cmd], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    # TensorFlow's C++ notices (e.g. "E0000 ... util.cc:131] oneDNN supports ...") are not the command's output
    output = "\n".join(x for x in (proc.stdout + proc.stderr).strip().splitlines()
                       if not re.match(r"[EWIF]\d{4} ", x))
    print(output, flush=True)
    log.append({"command": shown, "output": output, "returncode": proc.returncode, "seconds": seconds})
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and cmd[0] != "check"):
        raise SystemExit(f"command failed (exit {proc.returncode}): {shown}")
    return proc


def entities(text, tags):
    from tfner.data import spans_from_tags

    return [(text[s:e], label) for label, s, e in spans_from_tags(tags, "BIO")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT), help="text file, one sentence per line")
    parser.add_argument("--out", default="results/crf_vs_softmax/prediction_demo", help="output directory")
    parser.add_argument("--model", default="", help="a trained run dir / .keras / SavedModel: skip training")
    parser.add_argument("--train", default="msra:train", help="training corpus (any `tfner train --train`)")
    parser.add_argument("--preset", default="bert-crf", help="the report's model: BERT + CRF")
    parser.add_argument("--encoder", default="", help="encoder for --preset (default: tfner train's, the offline one)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoder-lr", type=float, default=1e-3,
                        help="1e-3 suits the small offline encoder; the report's bert-base used 5e-5")
    parser.add_argument("--crf-lr-multiplier", type=float, default=10.0, help="CRF lr = this x encoder lr")
    parser.add_argument("--test", default="msra:test", help="corpus scored with tfner evaluate ('' to skip)")
    args = parser.parse_args(argv)

    out = (REPO / args.out) if not os.path.isabs(args.out) else pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text_path = pathlib.Path(args.input)
    rel = lambda p: os.path.relpath(p, REPO)  # noqa: E731
    log = []
    (out / "test_scores.json").unlink(missing_ok=True)
    model = args.model
    if not model:
        model = out / "model"
        cmd = ["train", "--preset", args.preset, "--train", args.train, "--dev-fraction", "0.04",
               "--epochs", args.epochs, "--batch-size", args.batch_size, "--encoder-lr", args.encoder_lr,
               "--head-lr", 2 * args.encoder_lr, "--crf-lr", args.crf_lr_multiplier * args.encoder_lr,
               "--out", rel(model), "--overwrite"]
        if args.max_steps:
            cmd[cmd.index("--out"):cmd.index("--out")] = ["--max-steps", args.max_steps]
        if args.encoder:
            cmd[cmd.index("--out"):cmd.index("--out")] = ["--encoder", args.encoder]
        run(cmd, log)
    if args.test:
        run(["evaluate", "--model", rel(model), "--data", args.test, "--json", rel(out / "test_scores.json")], log)
    saved = out / "saved_model"
    if pathlib.Path(model).is_dir() and (pathlib.Path(model) / "saved_model.pb").exists():
        saved = pathlib.Path(model)
    else:
        shutil.rmtree(saved, ignore_errors=True)   # a rerun exports version 1 again, not version 2
        run(["export", "--model", rel(model), "--out", rel(saved)], log)
    tags_path = out / "tags.txt"
    run(["predict", "--model", rel(saved), "--input", rel(text_path), "--output", rel(tags_path), "--quiet"], log)
    check = run(["check", "--text", rel(text_path), "--tags", rel(tags_path)], log)

    texts = text_path.read_text(encoding="utf-8-sig").splitlines()
    tag_lines = [line.split(" ") if line else [] for line in tags_path.read_text(encoding="utf-8").splitlines()]
    report = {"input": rel(text_path), "test_data": args.test, "train_data": args.train if not args.model else "", "lines": [], "check_passed": check.returncode == 0, "commands": log}
    for text, tags in zip(texts, tag_lines):
        report["lines"].append({"characters": len(text), "tags": len(tags), "entities": entities(text, tags)})
    # the long line is the first line six times: do the stitched windows tag each copy the same way?
    first, long_line = texts[0], max(texts, key=len)
    copies = len(long_line) // len(first) if first and long_line.replace(first, "") == "" else 0
    if copies > 1:
        long_tags = tag_lines[texts.index(long_line)]
        same = [long_tags[i * len(first):(i + 1) * len(first)] == tag_lines[0] for i in range(copies)]
        report["long_line"] = {"copies": copies, "copies_tagged_like_line_1": sum(same)}
    (out / "demo.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "demo.md").write_text(render(report, texts, tag_lines, out), encoding="utf-8")
    print(f"wrote {rel(out / 'demo.md')}")


def render(report, texts, tag_lines, out):
    lines = ["### The report's prediction workflow (section 3.4), run by `experiments/run_prediction_demo.py`", ""]
    scores = out / "test_scores.json"
    if scores.exists():
        s = json.loads(scores.read_text(encoding="utf-8"))
        f1 = s.get("f1", s.get("scores", {}).get("f1"))
        if f1 is not None:
            note = (" MSRA has no TIME type, so unlike the report's model this one does not tag dates."
                    if "msra" in report["train_data"] else "")
            lines += [f"The model below scores test F1 {100 * f1:.2f} on `{report['test_data']}` "
                      f"(`tfner evaluate`).{note}", ""]
    lines += ["```console"]
    for c in report["commands"]:
        lines.append(f"$ {c['command']}")
        tail = [x for x in c["output"].splitlines() if x.strip()][-4:]
        lines += tail
    lines += ["```", ""]
    lines += [f"Input `{report['input']}` (line lengths: "
              + ", ".join(str(x["characters"]) for x in report["lines"]) + " characters); its first line:", "",
              f"> {texts[0]}", "", "Its tag line in the output file:", "", "```", " ".join(tag_lines[0]), "```", "",
              "Entities: " + (", ".join(f"{t} ({label})" for t, label in report["lines"][0]["entities"]) or "none")
              + ".", ""]
    if "long_line" in report:
        ll = report["long_line"]
        lines += [f"The {max(x['characters'] for x in report['lines'])}-character line (the paragraph {ll['copies']} "
                  f"times, beyond the encoder's 512 positions) was split at 。！？；， into windows and stitched: "
                  f"{max(x['tags'] for x in report['lines'])} tags, and {ll['copies_tagged_like_line_1']} of "
                  f"{ll['copies']} copies got exactly the tags of line 1.", ""]
    lines.append("`tfner check`: " + ("every tag line has one tag per character." if report["check_passed"]
                                      else "**problems found** (see demo.json)."))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
