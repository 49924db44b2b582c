"""Paper C's multi-task tagger: NER + word segmentation (CWS) + POS, label-consistency loss.

The frame of survey S with several heads: one shared character representation (character
embeddings or a pretrained encoder) -> BiGRU -> per task an emission layer and a CRF. How much
of the stack the tasks share is one argument, `sharing`, which names the highest shared layer and
so covers the paper's variants (section 5.3.1, Table 6):

| `sharing` | shared | per task | paper |
| --- | --- | --- | --- |
| `"encoder"` | encoder | BiGRU, emissions, CRF | Multi-task (Joint loss): only the loss is joint |
| `"context"` | encoder, BiGRU | emissions, CRF | Figure 1 / section 3.2 (the default) |
| `"projection"` | encoder, BiGRU, a linear layer | emissions, CRF | Multi-task (Param. sharing) |

"Parameter sharing" adds, over joint loss, "the three tasks share the BiGRU layer and one linear
layer"; the linear layer is read here as a shared linear map `H -> projection_units` under the
per-task emission layers (the CRFs have different tag sets, so the last map cannot be shared).
Being linear (no activation), it composes with each emission layer into one linear map: at
export (`ner_tagger`) it is folded into the NER emission layer, exactly.

The other variants are data and loss settings of the same class: single-task = `tasks` holding
only `"ner"`; "No POS" = `"ner"` and `"cws"`; "No label consistency" = `consistency_weight=0`;
"Label consistency" (the full method) = pre-annotated sentences carrying all three tag layers
plus consistency targets, with the consistency term on.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

import tfner.encoders  # noqa: F401  (registers the encoder layers a saved model may contain)
from tfner.layers import crf_ops
from tfner.layers.context import build_context_layer
from tfner.layers.crf import CRFDecoder
from tfner.layers.gradient_scale import GradientScale

MAIN_TASK = "ner"
SHARING_LEVELS = ("encoder", "context", "projection")
CONSISTENCY_TERM = "consistency"
CONSISTENCY_SUFFIX = "_consistency"
# Floor of a CRF marginal inside the consistency log-loss: a target the CRF's constraints forbid
# has marginal 0, which would give log(0) = -inf.
_MIN_PROBABILITY = 1e-10


def task_crf(labels, scheme=None, constrained=True, name=None):
    """A `CRFDecoder` for one task's labels, constrained to `scheme` (None: unconstrained).

    Labels may be typed (`"B-PER"`, `"S-nr"`, `"O"`) or bare segmentation tags (`"B"`, `"M"`,
    `"E"`, `"S"`): bare tags get their constraints as one type (`B -> M -> E`, `E/S -> B/S`).
    Schemes: those of `tfner.layers.crf_ops.allowed_transitions` (BIO, BIOES, BMES, ...) and
    `"BIE"` (word segmentation without S: a one-character word is `B`, so `B` may follow `B` and
    end a sentence; `I`/`E` only after `B`/`I` of the same type).

    Example:
    >>> crf = task_crf(["B", "M", "E", "S"], "BMES", name="cws_crf")
    >>> crf.allowed[0].tolist(), crf.allowed_start.tolist()  # after B: M or E; start: B or S
    ([False, True, True, False], [True, False, False, True])
    >>> task_crf(["B", "I", "E"], "BIE").allowed[0].tolist()  # B may end a one-character word
    [True, True, True]
    """
    labels = [str(label) for label in labels]
    if not constrained or scheme is None:
        return CRFDecoder(len(labels), name=name)
    bare = all(label == "O" or "-" not in label for label in labels)
    typed = [label if label == "O" or not bare else f"{label}-w" for label in labels]
    try:
        if str(scheme).upper() == "BIE":
            allowed, allowed_start, allowed_end = _bie_transitions(typed)
        else:
            allowed, allowed_start, allowed_end = crf_ops.allowed_transitions(typed, scheme)
    except ValueError as error:
        raise ValueError(f"{name or 'task'}: {error}; give the task's scheme in `schemes`, or "
                         "constrained=False") from None
    return CRFDecoder(len(labels), allowed=allowed, allowed_start=allowed_start,
                      allowed_end=allowed_end, name=name)


def _bie_transitions(labels):
    """`(allowed, allowed_start, allowed_end)` of the BIE segmentation scheme (`task_crf`)."""
    parsed = []
    for label in labels:
        prefix, _, type_ = label.partition("-")
        if label != "O" and (prefix not in ("B", "I", "E") or not type_):
            raise ValueError(f"label {label!r} does not follow the BIE scheme (B, I, E, O)")
        parsed.append(("O", None) if label == "O" else (prefix, type_))
    size = len(parsed)
    allowed = np.zeros((size, size), dtype=bool)
    for i, (role_from, type_from) in enumerate(parsed):
        for j, (role_to, type_to) in enumerate(parsed):
            if role_to in ("I", "E"):
                allowed[i, j] = role_from in ("B", "I") and type_from == type_to
            else:
                allowed[i, j] = role_from in ("B", "E", "O")
    allowed_start = np.array([role in ("B", "O") for role, _ in parsed], dtype=bool)
    allowed_end = np.array([role in ("B", "E", "O") for role, _ in parsed], dtype=bool)
    return allowed, allowed_start, allowed_end


def _infer_scheme(labels):
    """The CRF scheme of a task's labels: `tfner.data.schemes.infer_scheme`, and `"BIE"` for
    B/I/E tags without S and O (a segmentation where a one-character word is B)."""
    from tfner.data.schemes import infer_scheme

    prefixes = {label.partition("-")[0] for label in labels if label != "O"}
    if "O" not in labels and "E" in prefixes and prefixes <= {"B", "I", "E"}:
        return "BIE"
    return infer_scheme([label if label == "O" or "-" in label else f"{label}-w"
                         for label in labels])


@keras.saving.register_keras_serializable(package="tfner")
class MultiTaskTagger(keras.Model):
    """A character-level multi-task tagger (paper C), as a plain Keras functional model.

    Inputs are those of `NERTagger`: `{"token_ids": int32 [B, T], "padding_mask": bool [B, T]}`.
    Outputs are a dict with, for every task `t`, `"<t>_emissions"` (float [B, T, K_t]) and
    `"<t>_tags"` (int32 [B, T], Viterbi, 0 at padding).

    `compile()` needs only an optimizer: the model computes its loss from `y`, a dict of int
    arrays [B, T] (see `compute_loss`):

    - `y["<task>"]`: gold tag ids of a task. A row that is -1 everywhere means "this sentence has
      no gold for this task" and contributes nothing to that task's loss; a batch drawn from one
      task's corpus (the joint-loss variant with separate data per task) has the other tasks' rows
      all -1. A task key may also be left out of `y`.
    - `y["<aux>_consistency"]` for an auxiliary task (`"cws"`, `"pos"`): the tag ids the gold NER
      tags convert to in that task (entity start -> B, end -> E, ...), -1 wherever there is no
      target (O positions, padding, sentences without NER gold). -1 is the mask.

    Loss: `L = sum_i w_i * L_i + w_c * L_consistency`, where `L_i` is task `i`'s CRF negative
    log-likelihood (summed over a sentence's characters, averaged over the sentences that have
    gold for task `i`) and `L_consistency` is paper C's eq. (11):
    `-sum_{positions with a target} (log p_cws(y^_t | x) + log p_pos(y^_t | x))` per sentence,
    averaged over the sentences with NER gold (all rows when `y` has no `"ner"`). The weights are
    the non-trainable variable `loss_weight_variable`, one entry per `loss_terms` name, set by
    `set_loss_weights` or each epoch by `tfner.training.DynamicWeightAveraging`. Each term's
    unweighted value is tracked as a metric `"<term>_loss"` (a per-sentence average over the
    epoch, over the batches that hold the term), which dynamic weight averaging reads.

    Why CRF marginals in the consistency term: `p_cws(k | x)` must be the probability the CWS head
    itself assigns to tag `k` at a character, and for a CRF head that is the marginal
    `p(y_t = k | x)` of the whole-sequence distribution the head is trained and decoded with
    (forward-backward, `CRFDecoder.marginals`). A softmax of the emissions would be the per-
    character distribution of a different model (one without transitions): pushing it towards
    the targets can leave the CRF's decoding unchanged (transitions outweigh it), and it gives the
    transitions no gradient. With zero transitions the two coincide.

    Per-task learning rates and shared layers: see `tfner.training.make_multitask_optimizer`.
    `gradient_scales` multiplies the gradient each task sends into the shared layers (a
    `GradientScale` at the foot of the task's head); it does not change the forward pass.

    Args:
        representation: `"char"` for a trainable character embedding table, or a Keras layer
            called as `layer(token_ids, padding_mask) -> [B, T, H]` (e.g. `PretrainedCharEncoder`,
            as `tfner.models.build_tagger` makes it).
        tasks: ordered mapping task name -> its tag strings (index = tag id); must hold `"ner"`
            (the main task, `"O"` first). E.g. `{"ner": [...], "cws": ["B", "M", "E", "S"],
            "pos": ["B-n", "M-n", ...]}`.
        vocabulary: the character vocabulary (list of tokens, index = id).
        schemes: optional mapping task -> tag scheme for its CRF constraints (`"BIO"`, `"BMES"`,
            `"BIOES"`, ... or None for no constraints); default: inferred from the task's labels.
        sharing: `"encoder"`, `"context"` or `"projection"` (module docstring).
        context: `"bigru"` (paper C), `"bilstm"` or None.
        context_units: units per direction of the context RNN (paper C: 100).
        context_layers: stacked context RNN layers.
        projection_units: output size of the shared linear layer of `sharing="projection"`;
            default: the size of its input (`2 * context_units`, or the encoder's).
        embedding_dim: size of the character embedding when `representation="char"`.
        dropout: dropout after the representation and after the context layer (paper C: 0.1).
        constrained: constrain each CRF to its scheme's legal transitions.
        consistency_weight: initial weight `w_c` of the label-consistency term; 0 leaves the term
            out (the "No label consistency" ablation; targets in `y` are then ignored).
        gradient_scales: optional mapping task -> factor on the gradient that task sends into the
            shared layers (default 1 for every task).

    Example:
    >>> import numpy as np
    >>> model = MultiTaskTagger(
    ...     "char", tasks={"ner": ["O", "B-PER", "I-PER"], "cws": ["B", "M", "E", "S"]},
    ...     vocabulary=["[PAD]", "[UNK]", "王", "明", "好"], context_units=4, embedding_dim=4)
    >>> x = {"token_ids": np.array([[2, 3, 4]]), "padding_mask": np.ones((1, 3), bool)}
    >>> out = model(x)
    >>> sorted(out)
    ['cws_emissions', 'cws_tags', 'ner_emissions', 'ner_tags']
    >>> y = {"ner": np.array([[1, 2, 0]]), "cws": np.array([[0, 2, 3]]),
    ...      "cws_consistency": np.array([[0, 2, -1]])}
    >>> loss = model.compute_loss(x, y, model(x))
    >>> model.loss_terms
    ['ner', 'cws', 'consistency']
    """

    def __init__(
        self,
        representation="char",
        tasks=None,
        vocabulary=None,
        schemes=None,
        sharing="context",
        context="bigru",
        context_units=100,
        context_layers=1,
        projection_units=None,
        embedding_dim=128,
        dropout=0.1,
        constrained=True,
        consistency_weight=1.0,
        gradient_scales=None,
        **kwargs,
    ):
        tasks = _checked_tasks(tasks)
        if sharing not in SHARING_LEVELS:
            raise ValueError(f"sharing must be one of {SHARING_LEVELS}, got {sharing!r}")
        if consistency_weight < 0:
            raise ValueError(f"consistency_weight must be >= 0, got {consistency_weight}")
        schemes = dict(schemes or {})
        unknown = sorted(set(schemes) - set(tasks))
        if unknown:
            raise ValueError(f"schemes given for unknown tasks {unknown}; tasks are {list(tasks)}")
        schemes = {task: schemes[task] if task in schemes else _infer_scheme(labels)
                   for task, labels in tasks.items()}
        gradient_scales = {task: float(s) for task, s in dict(gradient_scales or {}).items()}
        unknown = sorted(set(gradient_scales) - set(tasks))
        if unknown:
            raise ValueError(f"gradient_scales given for unknown tasks {unknown}; tasks are "
                             f"{list(tasks)}")
        if any(not s > 0 for s in gradient_scales.values()):
            raise ValueError(f"gradient_scales must be > 0, got {gradient_scales}")
        auxiliary = [task for task in tasks if task != MAIN_TASK]
        loss_terms = list(tasks) + ([CONSISTENCY_TERM] if consistency_weight > 0 and auxiliary
                                    else [])

        # === Layers ===
        if isinstance(representation, str):
            if representation != "char":
                raise ValueError(
                    f"representation must be 'char' or a layer, got {representation!r}")
            if not vocabulary:
                raise ValueError("representation='char' needs `vocabulary` (its size sets the "
                                 "table).")
            representation_layer = keras.layers.Embedding(
                len(vocabulary), embedding_dim, name="char_embedding")
        else:
            representation_layer = representation
        dropout_in = keras.layers.Dropout(dropout, name="dropout_in")
        shared_context = per_task_context = None
        if context and sharing == "encoder":
            per_task_context = {
                task: (build_context_layer(context, context_units, context_layers, dropout=0.0,
                                           name=f"{task}_context"),
                       keras.layers.Dropout(dropout, name=f"{task}_dropout_out"))
                for task in tasks
            }
        elif context:
            shared_context = (
                build_context_layer(context, context_units, context_layers, dropout=0.0,
                                    name="context"),
                keras.layers.Dropout(dropout, name="dropout_out"))
        projection_layer = None
        if sharing == "projection":
            projection_layer = keras.layers.Dense(projection_units, name="projection") \
                if projection_units else None  # units known once the input is (below)
        gradient_scale_layers = {
            task: GradientScale(gradient_scales[task], name=f"{task}_gradient_scale")
            for task in tasks if gradient_scales.get(task, 1.0) != 1.0
        }
        emission_layers = {task: keras.layers.Dense(len(labels), name=f"{task}_emissions")
                           for task, labels in tasks.items()}
        crf_layers = {task: task_crf(labels, schemes[task], constrained, name=f"{task}_crf")
                      for task, labels in tasks.items()}

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        if isinstance(representation_layer, keras.layers.Embedding):
            x = representation_layer(token_ids)
        else:
            x = representation_layer(token_ids, padding_mask)
        shared = dropout_in(x)
        if shared_context is not None:
            context_layer, dropout_out = shared_context
            shared = dropout_out(context_layer(shared, mask=padding_mask))
        if sharing == "projection":
            if projection_layer is None:
                projection_units = int(shared.shape[-1])
                projection_layer = keras.layers.Dense(projection_units, name="projection")
            shared = projection_layer(shared)
        outputs = {}
        for task in tasks:
            h = shared
            if task in gradient_scale_layers:
                h = gradient_scale_layers[task](h)
            if per_task_context is not None:
                context_layer, dropout_out = per_task_context[task]
                h = dropout_out(context_layer(h, mask=padding_mask))
            emissions = emission_layers[task](h)
            outputs[f"{task}_emissions"] = emissions
            outputs[f"{task}_tags"] = crf_layers[task](emissions, mask=padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=outputs,
            **kwargs,
        )

        # === Config ===
        self.representation = representation_layer
        self.representation_spec = "char" if isinstance(representation, str) else None
        self.task_labels = {task: list(labels) for task, labels in tasks.items()}
        self.task_names = list(tasks)
        self.auxiliary_tasks = auxiliary
        self.schemes = schemes
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.sharing = sharing
        self.context = context
        self.context_units = context_units
        self.context_layers = context_layers
        self.projection_units = projection_units if sharing == "projection" else None
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.constrained = constrained
        self.consistency_weight = float(consistency_weight)
        self.gradient_scales = gradient_scales
        self.loss_terms = loss_terms
        self.crf_layers = crf_layers
        self.emission_layers = emission_layers
        self.shared_context_layer = shared_context[0] if shared_context else None
        self.task_context_layers = ({task: pair[0] for task, pair in per_task_context.items()}
                                    if per_task_context else {})
        self.projection_layer = projection_layer
        initial = [1.0] * len(tasks) + [self.consistency_weight] * (len(loss_terms) - len(tasks))
        self.loss_weight_variable = self.add_weight(
            name="loss_weights", shape=(len(loss_terms),),
            initializer=keras.initializers.Constant(initial), trainable=False, dtype="float32")
        self.term_loss_trackers = [keras.metrics.Mean(name=f"{term}_loss") for term in loss_terms]

    # --- loss ------------------------------------------------------------------------------
    @property
    def target_keys(self):
        """The keys `y` may hold: the task names and `"<aux>_consistency"` per auxiliary task."""
        return self.task_names + [f"{task}{CONSISTENCY_SUFFIX}" for task in self.auxiliary_tasks]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The weighted sum of the task NLLs and the consistency term (class docstring).

        `sample_weight` is not supported (a task's rows are switched off with -1 in `y`).
        """
        if sample_weight is not None:
            raise ValueError("MultiTaskTagger does not take sample_weight: mark the rows without "
                             "gold for a task with -1 in y[task]")
        if not isinstance(y, dict):
            raise ValueError(f"MultiTaskTagger needs y as a dict with keys among "
                             f"{self.target_keys}, got {type(y).__name__}")
        unknown = sorted(set(y) - set(self.target_keys))
        if unknown:
            raise ValueError(f"y has unknown keys {unknown}; this model takes {self.target_keys}")
        mask = x["padding_mask"]
        weights = ops.cast(self.loss_weight_variable, "float32")
        total = ops.zeros((), "float32")
        main_rows = None
        for index, task in enumerate(self.task_names):
            if y.get(task) is None:
                continue
            task_loss, rows = self.task_loss(task, y[task], y_pred[f"{task}_emissions"], mask)
            count = ops.sum(rows)
            self.term_loss_trackers[index].update_state(task_loss, sample_weight=count)
            total = total + weights[index] * task_loss
            if task == MAIN_TASK:
                main_rows = rows
        if CONSISTENCY_TERM in self.loss_terms:
            targets = {task: y[f"{task}{CONSISTENCY_SUFFIX}"] for task in self.auxiliary_tasks
                       if y.get(f"{task}{CONSISTENCY_SUFFIX}") is not None}
            if targets:
                per_row = self.consistency_per_sentence(targets, y_pred, mask)
                if main_rows is None:
                    main_rows = ops.ones_like(per_row)
                count = ops.sum(main_rows)
                consistency = ops.sum(per_row * main_rows) / ops.maximum(count, 1.0)
                index = self.loss_terms.index(CONSISTENCY_TERM)
                self.term_loss_trackers[index].update_state(consistency, sample_weight=count)
                total = total + weights[index] * consistency
        return self._aggregate_additional_loss(total)

    def task_loss(self, task, gold, emissions, mask):
        """`(mean NLL over the rows with gold, rows [B] float 0/1)` of one task.

        Args:
            task: the task name.
            gold: int [B, T] gold tag ids; a row that is -1 everywhere has no gold.
            emissions: float [B, T, K] of that task.
            mask: bool [B, T] padding mask.
        """
        gold = ops.cast(gold, "int32")
        rows = ops.max(gold, axis=1) >= 0
        log_likelihood = self.crf_layers[task].log_likelihood(
            emissions, ops.maximum(gold, 0), mask)
        nll = ops.where(rows, -log_likelihood, ops.zeros_like(log_likelihood))
        rows = ops.cast(rows, "float32")
        return ops.sum(nll) / ops.maximum(ops.sum(rows), 1.0), rows

    def consistency_per_sentence(self, targets, y_pred, mask):
        """`[B]` label-consistency loss of each sentence (paper C, eq. 11).

        `-sum_t sum_aux log p_aux(target_aux[t] | x)` over the positions where the target is
        >= 0 (and not padding), with `p_aux` the CRF marginals of the auxiliary head.

        Args:
            targets: mapping auxiliary task -> int [B, T] target tag ids (-1: no target).
            y_pred: the model's outputs (`"<aux>_emissions"` is read).
            mask: bool [B, T] padding mask.
        """
        mask = ops.cast(mask, "bool")
        total = None
        for task, target in targets.items():
            if task not in self.auxiliary_tasks:
                raise ValueError(f"consistency targets for {task!r}, which is not an auxiliary "
                                 f"task of this model ({self.auxiliary_tasks})")
            target = ops.cast(target, "int32")
            valid = ops.logical_and(target >= 0, mask)
            marginals = self.crf_layers[task].marginals(y_pred[f"{task}_emissions"], mask)
            chosen = ops.take_along_axis(
                marginals, ops.expand_dims(ops.maximum(target, 0), -1), axis=-1)[..., 0]
            nll = -ops.log(ops.maximum(chosen, _MIN_PROBABILITY))
            per_row = ops.sum(ops.where(valid, nll, ops.zeros_like(nll)), axis=1)
            total = per_row if total is None else total + per_row
        return total

    # --- loss weights ----------------------------------------------------------------------
    def loss_weights_dict(self):
        """`{term: weight}`: the current loss weights."""
        values = ops.convert_to_numpy(self.loss_weight_variable)
        return {term: float(v) for term, v in zip(self.loss_terms, values)}

    def set_loss_weights(self, weights):
        """Sets loss weights from a mapping `{term: weight}` (terms left out keep theirs)."""
        unknown = sorted(set(weights) - set(self.loss_terms))
        if unknown:
            raise ValueError(f"unknown loss terms {unknown}; this model has {self.loss_terms}")
        current = self.loss_weights_dict()
        current.update({term: float(w) for term, w in weights.items()})
        self.loss_weight_variable.assign(
            np.asarray([current[t] for t in self.loss_terms], dtype="float32"))

    # --- structure -------------------------------------------------------------------------
    def variable_groups(self):
        """Trainable variables by role, for per-group learning rates.

        Returns:
            dict: `"encoder"` (the representation), `"shared"` (shared context and projection
            layers), and one entry per task (its own context, emission layer and CRF).
        """
        groups = {"encoder": list(self.representation.trainable_variables), "shared": []}
        if self.shared_context_layer is not None:
            groups["shared"] += self.shared_context_layer.trainable_variables
        if self.projection_layer is not None:
            groups["shared"] += self.projection_layer.trainable_variables
        for task in self.task_names:
            own = []
            if task in self.task_context_layers:
                own += self.task_context_layers[task].trainable_variables
            own += self.emission_layers[task].trainable_variables
            own += self.crf_layers[task].trainable_variables
            groups[task] = own
        return groups

    # --- NER export ------------------------------------------------------------------------
    def ner_tagger(self, name=None):
        """A standalone `NERTagger` equal to this model's NER head (weights copied).

        It tags exactly like `self(x)["ner_tags"]` and goes through `tfner.export` (SavedModel,
        serving signature) and `tfner.models.predict_tags` unchanged. With `sharing="projection"`
        the shared linear layer is folded into the NER emission layer
        (`W = W_projection @ W_emissions`, `b = b_projection @ W_emissions + b_emissions`).
        """
        from tfner.models.tagger import NERTagger

        if self.representation_spec == "char":
            representation = "char"
        else:
            representation = keras.layers.deserialize(keras.layers.serialize(self.representation))
        tagger = NERTagger(
            representation, labels=self.task_labels[MAIN_TASK], vocabulary=self.vocabulary,
            context=self.context, context_units=self.context_units,
            context_layers=self.context_layers, decoder="crf", embedding_dim=self.embedding_dim,
            dropout=self.dropout, scheme=self.schemes[MAIN_TASK] or "BIO",
            constrained=self.constrained and self.schemes[MAIN_TASK] is not None,
            name=name or f"{self.name}_ner")
        self.copy_ner_weights(tagger)
        return tagger

    def copy_ner_weights(self, tagger):
        """Copies the NER head's current weights into a tagger made by `ner_tagger`."""
        tagger.representation.set_weights(self.representation.get_weights())
        context = self.task_context_layers.get(MAIN_TASK, self.shared_context_layer)
        if context is not None:
            tagger.get_layer("context").set_weights(context.get_weights())
        kernel, bias = (np.asarray(w) for w in self.emission_layers[MAIN_TASK].get_weights())
        if self.projection_layer is not None:
            projection_kernel, projection_bias = (
                np.asarray(w, dtype=np.float64) for w in self.projection_layer.get_weights())
            kernel, bias = (
                (projection_kernel @ kernel).astype(kernel.dtype),
                (projection_bias @ kernel + bias).astype(bias.dtype))
        tagger.get_layer("emissions").set_weights([kernel, bias])
        tagger.decoder_layer.set_weights(self.crf_layers[MAIN_TASK].get_weights())
        return tagger

    # --- convenience -----------------------------------------------------------------------
    def tokenizer(self):
        """A `CharTokenizer` over the stored vocabulary."""
        from tfner.preprocessing import CharTokenizer

        if self.vocabulary is None:
            raise ValueError("this model was built without a vocabulary")
        return CharTokenizer(self.vocabulary)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "representation": (
                "char" if self.representation_spec == "char"
                else keras.layers.serialize(self.representation)
            ),
            "tasks": {task: list(labels) for task, labels in self.task_labels.items()},
            "vocabulary": self.vocabulary,
            "schemes": dict(self.schemes),
            "sharing": self.sharing,
            "context": self.context,
            "context_units": self.context_units,
            "context_layers": self.context_layers,
            "projection_units": self.projection_units,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "constrained": self.constrained,
            "consistency_weight": self.consistency_weight,
            "gradient_scales": dict(self.gradient_scales),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        rep = config.get("representation", "char")
        if isinstance(rep, dict):
            config["representation"] = keras.layers.deserialize(rep)
        return cls(**config)


def build_multitask_tagger(tasks, *, encoder=None, vocabulary=None, num_layers=None,
                           random_init=False, name="multitask_tagger", **kwargs):
    """A `MultiTaskTagger` on a pretrained encoder (paper C: BERT) or on character embeddings.

    Args:
        tasks: `{task: labels}` (see `MultiTaskTagger`).
        encoder: anything `tfner.encoders.load_encoder` accepts (a Hugging Face directory, a TF1
            checkpoint, a hub id, a `config.json`) or an `EncoderBundle`; None for character
            embeddings (then `vocabulary` is required).
        vocabulary: the character vocabulary; default: the encoder's vocab.txt.
        num_layers, random_init: passed to `load_encoder`.
        name: the model name.
        **kwargs: other `MultiTaskTagger` arguments (`sharing`, `context_units`, ...).

    Returns:
        `(model, tokenizer)`.

    Example:
    >>> # model, tokenizer = build_multitask_tagger(
    >>> #     labels, encoder="../shared/encoders/tiny-bert-zh-L2-H128", sharing="projection")
    """
    from tfner.preprocessing import CharTokenizer

    if encoder is None:
        if vocabulary is None:
            raise ValueError("without an encoder, give `vocabulary` (the character tokens)")
        tokenizer = CharTokenizer(vocabulary)
        representation = "char"
    else:
        from tfner.models.presets import pretrained_representation

        representation, tokenizer = pretrained_representation(
            encoder, vocabulary, num_layers=num_layers, random_init=random_init)
    model = MultiTaskTagger(representation, tasks=tasks, vocabulary=tokenizer.vocabulary,
                            name=name, **kwargs)
    return model, tokenizer


def _checked_tasks(tasks):
    if not tasks:
        raise ValueError("MultiTaskTagger needs `tasks`: a mapping task name -> tag strings, "
                         "with 'ner' among them")
    tasks = {str(task): [str(label) for label in labels] for task, labels in dict(tasks).items()}
    if MAIN_TASK not in tasks:
        raise ValueError(f"tasks must include the main task {MAIN_TASK!r}, got {list(tasks)}")
    for task, labels in tasks.items():
        if not task.isidentifier():
            raise ValueError(f"task name {task!r} must be an identifier (it names layers)")
        if not labels:
            raise ValueError(f"task {task!r} has no labels")
        if len(set(labels)) != len(labels):
            raise ValueError(f"task {task!r} has duplicate labels: {labels}")
    if tasks[MAIN_TASK][0] != "O":
        raise ValueError(f"the NER labels must start with 'O', got {tasks[MAIN_TASK][:1]}")
    return tasks
