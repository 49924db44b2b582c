"""Run as a script in a fresh Python process that imports nothing but TensorFlow.

    python fresh_process_check.py texts.json report.json SAVED_MODEL_DIR...

For each SavedModel: lists every op of the graph and of all library functions (and counts the
functions marked for XLA compilation), looks each up in
the op registry of plain ``tensorflow`` (nothing else has been imported, so tensorflow-text or
other custom op libraries cannot have registered theirs), then loads the model and tags the texts
with ``serving_default``. Writes the findings as JSON; the tests assert on them.
"""

import json
import sys

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry


def graph_ops(path):
    saved_model = saved_model_pb2.SavedModel()
    with open(f"{path}/saved_model.pb", "rb") as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    functions = xla_functions = 0
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions += 1
            xla_functions += function.attr["_XlaMustCompile"].b
            ops.update(node.op for node in function.node_def)
    return sorted(ops), functions, xla_functions


def tag(path, texts, batch_size=64):
    serve = tf.saved_model.load(path).signatures["serving_default"]
    tags, entities = [], []
    for start in range(0, len(texts), batch_size):
        out = serve(text=tf.constant(texts[start:start + batch_size]))
        out = {k: v.numpy() for k, v in out.items()}
        for i in range(len(out["length"])):
            n = int(out["length"][i])
            tags.append([t.decode() for t in out["tags"][i, :n]])
            entities.append([
                [int(out["entity_start"][i, j]), int(out["entity_end"][i, j]),
                 out["entity_type"][i, j].decode(), out["entity_text"][i, j].decode(),
                 float(out["entity_confidence"][i, j])]
                for j in range(int(out["num_entities"][i]))])
    return tags, entities


def main(texts_path, report_path, *paths):
    texts = json.load(open(texts_path, encoding="utf-8"))
    report = {"models": {}}
    for path in paths:
        ops, functions, xla_functions = graph_ops(path)
        tags, entities = tag(path, texts)
        report["models"][path] = {
            "ops": ops,
            "functions": functions,
            "xla_functions": xla_functions,
            "unregistered": [op for op in ops if op_def_registry.get(op) is None],
            "tags": tags,
            "entities": entities,
        }
    # A control: an op of tensorflow-text is unknown here (and known once tensorflow_text is
    # imported), so the "unregistered" lists above really detect custom-op libraries.
    report["text_op_registered"] = op_def_registry.get("WordpieceTokenizeWithOffsets") is not None
    report["modules"] = sorted(name for name in sys.modules
                               if name.split(".")[0] in ("keras", "keras_hub", "tensorflow_text", "tfner"))
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
