"""Tagging large corpora with Apache Beam: an exported SavedModel in `RunInference`.

    pip install "tfner[beam]"
    tfner predict --runner beam --model saved_models/msra --input 'corpus/*.txt.gz' --output tagged/
    python -m tfner.beam --model ... --input ... --output ... [--format jsonl] [Beam options]

The pipeline: match the input files (a path or a glob; `.gz`/`.bz2`... decompressed by
extension) -> read each file's lines with their numbers (`(file, line)` keys) -> reshuffle ->
`RunInference` with Beam's TensorFlow model handler (`TFModelHandlerTensor`, loading the
SavedModel's `serving_default` signature: raw text in) batched by text length -> the same tags or
JSONL entities `tfner predict` writes -> per input file, the results in line order, written to
one output file. Output:

- one input file and `--output` not ending in `/`: `--output` is that file, line for line what
  `tfner predict` writes;
- otherwise `--output` is a directory with one file per input file, named after it
  (`a.txt.gz` -> `a.tags` or `a.jsonl`);
- `keyed=True` (`--keyed`): instead, sharded JSONL files `OUTPUT-00000-of-000NN.jsonl`, one
  record per line `{"file", "line", "tags"}` or `{"file", "line", "text", "entities"}`, in no
  order: no per-file grouping, for corpora whose single files are too big for one worker.

Runner: the DirectRunner by default (`--direct_num_workers=4 --direct_running_mode=
multi_processing` for several processes); any other runner and its settings as Beam's own
pipeline options (`--runner=DataflowRunner --project=... --region=... --temp_location=gs://...`,
`--runner=FlinkRunner --flink_master=...`, `--runner=SparkRunner ...`), given after the tfner
options (or as `pipeline_options`). The SavedModel, inputs and outputs may be on any file system
Beam knows (gs://, s3://, hdfs://, local paths for the DirectRunner).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import shlex
import sys

logger = logging.getLogger("tfner.beam")

INSTALL_HINT = 'Apache Beam is not installed: pip install "tfner[beam]"'
# RunInference batches texts of similar length together (less padding), like `tfner predict`.
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)


def _beam():
    try:
        import apache_beam as beam
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from error
    return beam


def output_name(input_path, output_format) -> str:
    """`corpus/a.txt.gz` -> `a.tags` (`a.jsonl`): the output file of one input file."""
    name = pathlib.PurePosixPath(str(input_path).replace("\\", "/")).name
    for suffix in (".gz", ".bz2", ".zst", ".deflate", ".lzma", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".txt"):
        name = name[:-4]
    return f"{name}.{'tags' if output_format == 'tags' else 'jsonl'}"


def read_numbered_lines(readable_file):
    """`((path, line_number), text)` for every line of a matched file (numbers from 1), decoded
    as `tfner predict` does (UTF-8, a BOM skipped, line ends stripped, universal newlines)."""
    path = readable_file.metadata.path
    number = 0
    with readable_file.open() as raw:  # decompressed by extension
        for i, chunk in enumerate(iter(raw.readline, b"")):
            text = chunk.decode("utf-8")
            if i == 0 and text.startswith("\ufeff"):
                text = text[1:]
            pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if pieces[-1] == "":
                pieces.pop()
            for line in pieces:
                number += 1
                yield (path, number), line


def make_model_handler(model, *, max_batch_size=64, min_batch_size=1):
    """Beam's `TFModelHandlerTensor` for an exported tfner SavedModel: loads the `serving_default`
    signature (raw text in) and turns each batch's outputs into `tfner predict`'s per-text dicts
    (`{"tags", "entities"}`), with the same decoding code (`TextPredictor.__call__`)."""
    _beam()
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

    from tfner.export.saved_model import resolve_saved_model

    model_dir = str(resolve_saved_model(model)) if "://" not in str(model) else str(model)

    class TaggerModelHandler(TFModelHandlerTensor):
        def load_model(self):
            import tensorflow as tf

            return tf.saved_model.load(self._model_uri).signatures["serving_default"]

        def get_metrics_namespace(self):
            return "tfner"

    return TaggerModelHandler(
        model_dir, inference_fn=_tagger_inference, min_batch_size=min_batch_size,
        max_batch_size=max_batch_size, batch_length_fn=_text_length,
        batch_bucket_boundaries=list(LENGTH_BUCKETS))


def _text_length(element):
    """UTF-8 bytes of a text tensor: the bucket key for batching."""
    return len(element.numpy()) if hasattr(element, "numpy") else len(element)


class _Outputs:
    """Stands in for a `TextPredictor` whose `raw` outputs are already computed."""

    def __init__(self, outputs):
        self.outputs = outputs

    def raw(self, texts):
        return self.outputs


def _tagger_inference(model, batch, inference_args=None, model_id=None):
    import tensorflow as tf
    from apache_beam.ml.inference.base import PredictionResult

    from tfner.export.predictor import TextPredictor

    texts = tf.stack(batch, axis=0)
    outputs = {k: v.numpy() for k, v in model(text=texts, **(inference_args or {})).items()}
    decoded = [t.decode("utf-8") for t in texts.numpy()]
    results = TextPredictor.__call__(_Outputs(outputs), decoded)
    # the example as text (plain Python downstream: no tensors between pipeline steps)
    return [PredictionResult(x, y, model_id) for x, y in zip(decoded, results)]


def _to_tensor(keyed):
    import tensorflow as tf

    from tfner.export.predictor import replace_lone_surrogates

    key, text = keyed
    return key, tf.constant(replace_lone_surrogates(text).encode("utf-8"), dtype=tf.string)


def format_line(text, result, output_format) -> str:
    """One output line, exactly as `tfner predict` writes it (without the newline)."""
    if len(result["tags"]) != len(text):
        raise ValueError(f"{len(result['tags'])} tags for {len(text)} characters")
    if output_format == "tags":
        return " ".join(result["tags"])
    return json.dumps({"text": text, "entities": result["entities"]}, ensure_ascii=False)


def _keyed_record(keyed, output_format):
    (path, number), prediction = keyed
    text, result = prediction.example, prediction.inference
    record = {"file": path, "line": number}
    if output_format == "tags":
        record["tags"] = format_line(text, result, "tags")
    else:
        record.update({"text": text, "entities": result["entities"]})
    return json.dumps(record, ensure_ascii=False)


def _write_file(grouped, output_format, destination):
    from apache_beam.io.filesystems import FileSystems

    path, numbered = grouped
    target = destination(path)
    rows = sorted(numbered)
    with FileSystems.create(target) as out:
        for number, text, result in rows:
            out.write((format_line(text, result, output_format) + "\n").encode("utf-8"))
    return target, len(rows)


def build_pipeline(pipeline, model, input_pattern, output, *, output_format="tags", keyed=False,
                   max_batch_size=64, single_output_file=None):
    """Adds the tagging steps to `pipeline` (a `beam.Pipeline`); returns the PCollection of
    `(output file, lines)` (or, `keyed`, of the written shard names).

    Args:
        model: SavedModel directory (a version or the base directory with numbered versions).
        input_pattern: a file, a glob, or several separated by commas.
        output: the output file (`single_output_file=True`), directory, or (keyed) file prefix.
        output_format: `"tags"` or `"jsonl"`.
        keyed: unordered sharded JSONL records keyed by file and line.
        max_batch_size: most texts per model call.
        single_output_file: write everything to `output` (exactly one input file must match).
    """
    beam = _beam()
    from apache_beam.io import fileio
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    if output_format not in ("tags", "jsonl"):
        raise ValueError(f"output format must be 'tags' or 'jsonl', got {output_format!r}")
    patterns = [p for p in str(input_pattern).split(",") if p]
    handler = KeyedModelHandler(make_model_handler(model, max_batch_size=max_batch_size))
    files = (pipeline
             | "Patterns" >> beam.Create(patterns)
             | "Match" >> fileio.MatchAll()
             | "Open" >> fileio.ReadMatches())
    lines = (files
             | "Lines" >> beam.FlatMap(read_numbered_lines)
             | "Spread" >> beam.Reshuffle())
    predictions = (lines
                   | "ToTensor" >> beam.Map(_to_tensor)
                   | "Tag" >> RunInference(handler))
    if keyed:
        return (predictions
                | "Record" >> beam.Map(_keyed_record, output_format)
                | "WriteKeyed" >> beam.io.WriteToText(str(output), file_name_suffix=".jsonl"))

    if single_output_file:
        def destination(path):
            return str(output)
    else:
        base = str(output).rstrip("/")

        def destination(path):
            return f"{base}/{output_name(path, output_format)}"

    return (predictions
            | "ByFile" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1].example, kv[1].inference)))
            | "GroupByFile" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write_file, output_format, destination))


def run(model, input_pattern, output, *, output_format="tags", keyed=False, max_batch_size=64,
        pipeline_options=None):
    """Runs the tagging pipeline and waits for it. Returns `{"files": {output: lines}, ...}`
    (`{"shards": [...]}` for `keyed`).

    Args:
        pipeline_options: Beam options: a list of arguments (`["--runner=DataflowRunner",
            ...]`), one string (split like a shell), or a `PipelineOptions`; default: the
            DirectRunner in this process.
    """
    beam = _beam()
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if isinstance(pipeline_options, str):
        pipeline_options = shlex.split(pipeline_options)
    options = pipeline_options if isinstance(pipeline_options, PipelineOptions) else \
        PipelineOptions(list(pipeline_options or []))
    patterns = [p for p in str(input_pattern).split(",") if p]
    matched = [m.path for p in patterns for r in FileSystems.match([p]) for m in r.metadata_list]
    if not matched:
        raise ValueError(f"{input_pattern}: no input file matches")
    single = (not keyed and len(matched) == 1 and not str(output).endswith("/")
              and not pathlib.Path(str(output)).is_dir())
    if not keyed and not single:
        names = [output_name(p, output_format) for p in matched]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"several input files would write {', '.join(duplicates)} in {output}: "
                             "give inputs distinct names, or use keyed output")
        if "://" not in str(output):
            pathlib.Path(str(output)).mkdir(parents=True, exist_ok=True)
    collected = {}
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, model, ",".join(patterns), output, output_format=output_format,
                       keyed=keyed, max_batch_size=max_batch_size, single_output_file=single)
    if keyed:
        shards = [m.path for r in FileSystems.match([f"{output}-*.jsonl"]) for m in r.metadata_list]
        return {"shards": sorted(shards), "inputs": len(matched)}
    for path in matched:
        target = str(output) if single else f"{str(output).rstrip('/')}/{output_name(path, output_format)}"
        collected[target] = None
    return {"files": sorted(collected), "inputs": len(matched)}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfner.beam",
        description="Tag text files with an exported tfner SavedModel in an Apache Beam pipeline "
                    "(RunInference). Options tfner does not know are Beam pipeline options.")
    parser.add_argument("--model", required=True, help="exported SavedModel (version or base directory)")
    parser.add_argument("--input", required=True, help="text file(s): a path, a glob, comma-separated; .gz ok")
    parser.add_argument("--output", required=True,
                        help="output file (one input), directory (several; one file each), or prefix (--keyed)")
    parser.add_argument("--format", choices=("tags", "jsonl"), default="tags")
    parser.add_argument("--keyed", action="store_true",
                        help="unordered sharded JSONL records {file, line, ...} instead of one file per input")
    parser.add_argument("--batch-size", type=int, default=64, help="most lines per model call")
    args, beam_args = parser.parse_known_args(argv)
    info = run(args.model, args.input, args.output, output_format=args.format, keyed=args.keyed,
               max_batch_size=args.batch_size, pipeline_options=beam_args)
    print(json.dumps(info, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
