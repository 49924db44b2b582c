"""Training on several devices or machines with the engines users already run.

tfner has no cluster code of its own: `fit_tagger(..., strategy=...)` (and `tfner train
--strategy`, and the experiment scripts' `--strategy`) hands the work to

- `"mirrored"`: `tf.distribute.MirroredStrategy`, every GPU of one host (TensorFlow backend);
- `"multi-worker"`: `tf.distribute.MultiWorkerMirroredStrategy`, the cluster read from the
  `TF_CONFIG` environment variable that a cluster manager (Kubernetes TFJob, Vertex AI, a
  shell script) sets on every worker;
- `"tpu"`: `tf.distribute.TPUStrategy` on the TPU named by `$TPU_NAME` (documented, untested
  here);
- `"data-parallel"`: `keras.distribution.DataParallel` over every local device (JAX backend;
  several JAX processes: `keras.distribution.initialize()` reads the coordinator from the
  environment);
- `None` / `"none"`: one process, no strategy (the default; bit-identical to no `strategy`).

An instance of `tf.distribute.Strategy` or `keras.distribution.Distribution` is accepted too.

The other training loops take the same `strategy` argument (default `default_strategy()`) and
train a replica copy the same way (`training_run`): `tfner.training.fit_multitask`
(`MultiTaskTagger`), `tfner.memory.fit_memory_tagger` and `fit_category_classifier`, and
`tfner.studies.runner.fit_fixed_padding`. They have no resume after a kill.

What `fit_tagger` keeps under a strategy: `batch_size` stays the *global* batch (each replica gets
its share of every batch; the loss of each replica is scaled by 1 / replicas and gradients are
summed, so a step equals the single-process step on the same batch up to float rounding);
per-group learning rates, weight decay and gradient clipping (applied to the all-reduced
gradient, as in one process); the CRF; dev F1 every epoch, early stopping and the best model
(every worker evaluates the same weights, so all stop at the same epoch); the run fingerprint
and the epoch checkpoints. Files (`fingerprint.json`, `backup/`, `best.keras`, `history.csv`,
`tensorboard/`) are written by the chief only; the other workers read the chief's checkpoint to
resume, so `output_dir` must be on storage every worker sees (one host, NFS, a mounted bucket).
After a worker is killed, the surviving workers fail in their next collective operation; run
the same command on every worker again (what a cluster manager's restart policy does) and the
cluster resumes from the chief's last finished epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os

import keras

logger = logging.getLogger("tfner.training")

STRATEGIES = ("none", "mirrored", "multi-worker", "tpu", "data-parallel")
_ALIASES = {
    None: "none", "": "none", "none": "none", "default": "none", "off": "none",
    "mirrored": "mirrored", "mirror": "mirrored",
    "multi-worker": "multi-worker", "multi_worker": "multi-worker", "multiworker": "multi-worker",
    "multi-worker-mirrored": "multi-worker",
    "tpu": "tpu",
    "data-parallel": "data-parallel", "data_parallel": "data-parallel", "dataparallel": "data-parallel",
    "jax-data-parallel": "data-parallel",
}
STRATEGY_HELP = (
    "distribute training: none (one process, the default), mirrored (all GPUs of this host, "
    "tf.distribute.MirroredStrategy), multi-worker (tf.distribute.MultiWorkerMirroredStrategy, "
    "cluster from $TF_CONFIG; run the same command on every worker), tpu (TPUStrategy on "
    "$TPU_NAME), data-parallel (JAX backend: keras.distribution.DataParallel over all devices); "
    "--batch-size is the global batch")

_DEFAULT_STRATEGY = None
_CREATED = {}  # name -> Distributed: one strategy object per process


def canonical_strategy_name(spec) -> str:
    """`"none" | "mirrored" | "multi-worker" | "tpu" | "data-parallel"` for a name or alias.

    Raises:
        ValueError: an unknown name.
    """
    key = spec.strip().lower() if isinstance(spec, str) else spec
    if key not in _ALIASES:
        raise ValueError(f"unknown distribution strategy {spec!r}; choose one of {', '.join(STRATEGIES)}")
    return _ALIASES[key]


def set_default_strategy(spec) -> Distributed | None:
    """The strategy `fit_tagger` uses when it gets none (`strategy=None`): what `tfner train
    --strategy` and the experiment scripts' `--strategy` set. Creates it now (call it at program
    start: `multi-worker` must be created before TensorFlow runs its first operation)."""
    global _DEFAULT_STRATEGY
    _DEFAULT_STRATEGY = resolve_strategy(spec)
    return _DEFAULT_STRATEGY


def default_strategy():
    """What `set_default_strategy` set (None: one process)."""
    return _DEFAULT_STRATEGY


@dataclasses.dataclass
class Distributed:
    """A resolved strategy: what `fit_tagger` needs of it.

    Attributes:
        name: the canonical name (`"mirrored"`, ...; `"custom"` for an instance passed in).
        strategy: the `tf.distribute.Strategy` (TensorFlow backend) or None.
        distribution: the `keras.distribution.Distribution` (JAX backend) or None.
        num_replicas: replicas that share every global batch.
        num_workers / worker_index: processes of the cluster and this one's index.
        is_chief: this process writes the run's files.
    """

    name: str
    strategy: object = None
    distribution: object = None
    num_replicas: int = 1
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True

    @contextlib.contextmanager
    def scope(self):
        """Variables created inside live on every replica (model, optimizer)."""
        if self.strategy is not None:
            with self.strategy.scope():
                yield
        elif self.distribution is not None:
            with self.distribution.scope():
                yield
        else:
            yield

    def broadcast_from_chief(self, value: int) -> int:
        """The chief's `value` (an int) on every worker; also a barrier: no worker returns before
        every worker has called it. One process: `value`."""
        if self.strategy is None or self.num_workers <= 1:
            return int(value)
        import tensorflow as tf

        mine = int(value) if self.is_chief else 0

        def contribution():
            ctx = tf.distribute.get_replica_context()
            first = tf.equal(ctx.replica_id_in_sync_group, 0) if mine else tf.constant(False)
            return tf.where(first, tf.constant(mine, tf.int64), tf.constant(0, tf.int64))

        per_replica = self.strategy.run(contribution)
        return int(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))

    def describe(self) -> str:
        where = f", worker {self.worker_index} of {self.num_workers}" if self.num_workers > 1 else ""
        return f"{self.name} ({self.num_replicas} replica(s){where}{', chief' if self.is_chief and where else ''})"


def resolve_strategy(spec) -> Distributed | None:
    """A `Distributed` for a strategy name, a `tf.distribute.Strategy`, a
    `keras.distribution.Distribution` or an existing `Distributed`; None for no strategy.

    Creating a TensorFlow strategy initialises the devices (and, for `multi-worker`, starts the
    worker's gRPC server and waits for the other workers). Call it once per process.

    Raises:
        ValueError: an unknown name, or a strategy of the other Keras backend.
    """
    if isinstance(spec, Distributed):
        return spec
    if spec is None or isinstance(spec, str):
        name = canonical_strategy_name(spec)
        if name == "none":
            return None
        if name not in _CREATED:
            _CREATED[name] = _create(name)
        return _CREATED[name]
    try:
        from keras.distribution import Distribution
    except ImportError:  # pragma: no cover
        Distribution = ()
    if Distribution and isinstance(spec, Distribution):
        return _from_distribution(spec, "custom")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(spec, tf.distribute.Strategy):
            return _from_tf_strategy(spec, "custom")
    raise ValueError(f"strategy must be a name ({', '.join(STRATEGIES)}), a tf.distribute.Strategy or a "
                     f"keras.distribution.Distribution, got {type(spec).__name__}")


def _create(name):
    backend = keras.backend.backend()
    if name == "data-parallel":
        if backend != "jax":
            raise ValueError(f"strategy 'data-parallel' (keras.distribution.DataParallel) needs the JAX "
                             f"backend (KERAS_BACKEND=jax); this process runs {backend}: use 'mirrored' "
                             "or 'multi-worker' with TensorFlow")
        return _from_distribution(_data_parallel(), name)
    if backend != "tensorflow":
        raise ValueError(f"strategy {name!r} is a tf.distribute strategy and needs the TensorFlow "
                         f"backend; this process runs {backend} (on JAX use 'data-parallel')")
    try:
        strategy = _tf_strategy(name)
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            f"strategy {name!r} must be created before TensorFlow runs its first operation: call "
            f"tfner.training.distribute.set_default_strategy({name!r}) (or resolve_strategy) at the "
            "start of the program, before building the model") from error
    return _from_tf_strategy(strategy, name)


def _tf_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            logger.warning("strategy multi-worker without $TF_CONFIG: one worker (set TF_CONFIG on "
                           "every worker to describe the cluster)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":  # pragma: no cover - no TPU here
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(name)


def _data_parallel():
    from keras import distribution

    if int(os.environ.get("JAX_NUM_PROCESSES", os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) or 1) > 1:
        distribution.initialize()  # multi-process JAX: coordinator address etc. from the environment
    return distribution.DataParallel(devices=distribution.list_devices())


def _from_tf_strategy(strategy, name):
    task_type, task_id, num_workers = None, 0, 1
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = {}
    if resolver is not None and getattr(resolver, "task_type", None) is not None:
        task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
        cluster = resolver.cluster_spec().as_dict()
        num_workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) or 1
    chief = is_chief(task_type, task_id, cluster)
    worker_index = task_id + (1 if task_type == "worker" and "chief" in cluster else 0)
    return Distributed(name, strategy=strategy, num_replicas=int(strategy.num_replicas_in_sync),
                       num_workers=num_workers, worker_index=worker_index, is_chief=chief)


def _from_distribution(distribution, name):
    import jax

    devices = getattr(getattr(distribution, "device_mesh", None), "devices", None)
    count = int(devices.size) if devices is not None else jax.device_count()
    return Distributed(name, distribution=distribution, num_replicas=count,
                       num_workers=jax.process_count(), worker_index=jax.process_index(),
                       is_chief=jax.process_index() == 0)


def is_chief(task_type, task_id, cluster) -> bool:
    """TensorFlow's rule: the `chief` task, or worker 0 when the cluster has no `chief` task, or a
    process outside any cluster."""
    return (task_type is None or task_type == "chief"
            or (task_type == "worker" and int(task_id) == 0 and "chief" not in cluster))


def tf_config_for(workers, index) -> str:
    """`TF_CONFIG` for worker `index` of a cluster of `workers` ("host:port" strings): for tests
    and documentation (a cluster manager normally sets it)."""
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": int(index)}})


def replicate_model(model, dist: Distributed):
    """A copy of `model` whose variables live on the strategy's replicas, with the same weights
    and dropout seed state.

    Works for any Keras model that rebuilds from its config (`model.__class__.from_config(
    model.get_config())`): `NERTagger`, `MultiTaskTagger`, `MemoryTagger`,
    `EntityCategoryClassifier`. The fit functions train the copy and copy the trained weights
    back into `model`.

    Raises:
        ValueError: the model cannot be rebuilt from its config (a subclassed model without
            `get_config`, or a config that does not describe its weights); the message names the
            strategy and the reason.
    """
    what = type(model).__name__
    with dist.scope():
        try:
            copy = model.__class__.from_config(model.get_config())
        except (NotImplementedError, TypeError, ValueError, KeyError) as error:
            reason = " ".join(str(error).split())
            reason = reason if len(reason) <= 300 else reason[:297] + "..."
            raise ValueError(
                f"strategy {dist.name!r}: cannot replicate {what} on the strategy's replicas: "
                f"it does not rebuild from its config ({type(error).__name__}: {reason}); train it "
                "without a strategy, or give the class get_config/from_config") from error
        weights = model.get_weights()
        if len(copy.weights) != len(weights):
            raise ValueError(
                f"strategy {dist.name!r}: cannot replicate {what} on the strategy's replicas: the "
                f"copy rebuilt from its config has {len(copy.weights)} weights, the model "
                f"{len(weights)} (its config does not describe all of its layers)")
        copy.set_weights(weights)
    from tfner.training.resume import seed_state_variables

    for mine, theirs in zip(seed_state_variables(copy), seed_state_variables(model)):
        mine.assign(keras.ops.convert_to_numpy(theirs))
    if dist.strategy is not None:
        copy._maybe_symbolic_build = _symbolic_build_from_local_batch(copy, dist.strategy)
        if dist.num_workers > 1:
            copy.train_step = _logs_as_vectors(copy.train_step)
            copy.test_step = _logs_as_vectors(copy.test_step)
    return copy


def replicate_tagger(tagger, dist: Distributed):
    """`replicate_model` of a `NERTagger` (the name `fit_tagger` uses)."""
    return replicate_model(tagger, dist)


@dataclasses.dataclass
class TrainingRun:
    """What a fit function needs to honour its `strategy` argument (`training_run`).

    Attributes:
        dist: the resolved strategy, or None (one process).
        model: the model the caller passed.
        trained: what to compile and fit: `model` itself without a strategy, else its
            `replicate_model` copy.
        is_chief: this process writes the run's files.
    """

    dist: Distributed | None
    model: object
    trained: object
    is_chief: bool = True
    _scratch: object = dataclasses.field(default=None, repr=False)

    def scope(self):
        """The strategy's scope (compile and fit inside it); a null context without one."""
        return self.dist.scope() if self.dist is not None else contextlib.nullcontext()

    def dataset(self, dataset):
        """`distributed_dataset_options` of a training dataset."""
        return distributed_dataset_options(dataset, self.dist)

    def write_dir(self, output_dir):
        """Where this process writes the run's files: `output_dir` on the chief, a scratch
        directory on the other workers (they run the same saving code; removed by `finish`)."""
        if self.is_chief or output_dir is None:
            return output_dir
        if self._scratch is None:
            self._scratch = worker_scratch_dir(self.dist)
        return self._scratch

    def finish(self):
        """After `fit`: waits for the chief (its last files), removes a worker's scratch directory
        and copies the trained weights back into `model`."""
        if self.dist is not None:
            self.dist.broadcast_from_chief(1)
            if self._scratch is not None:
                import shutil

                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
        if self.trained is not self.model:
            self.model.set_weights(self.trained.get_weights())


def training_run(model, strategy=None) -> TrainingRun:
    """`model` made ready for training under `strategy` (None: `default_strategy()`), as
    `fit_tagger` does: resolves the strategy and, when there is one, replicates the model
    (`replicate_model`). Without a strategy `trained` is `model` itself and nothing changes.

    Use: `run = training_run(model, strategy)`; compile and fit `run.trained` inside
    `run.scope()` on `run.dataset(dataset)`, write files into `run.write_dir(output_dir)`, then
    `run.finish()`.
    """
    dist = resolve_strategy(strategy if strategy is not None else default_strategy())
    if dist is None:
        return TrainingRun(None, model, model)
    logger.info("training %s with strategy %s", type(model).__name__, dist.describe())
    return TrainingRun(dist, model, replicate_model(model, dist), is_chief=dist.is_chief)


def _logs_as_vectors(step):
    """Keras 3 `fit` under MultiWorkerMirroredStrategy reduces each replica's logs with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar loss ("Invalid reduction
    dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). Shape [1] per
    replica reduces to the mean over replicas, a scalar, as intended."""

    def wrapped(data):
        import tensorflow as tf

        logs = step(data)
        return tf.nest.map_structure(
            lambda v: tf.reshape(v, [1]) if isinstance(v, tf.Tensor) and v.shape.rank == 0 else v, logs)

    return wrapped


def _symbolic_build_from_local_batch(model, strategy):
    """Keras' TensorFlow `fit` builds a model under a strategy from the MEAN over replicas of the
    first batch, which fails on a boolean `padding_mask` (no AddN for bool) with two or more
    replicas. The same build from the first replica's share of the batch (only shapes and dtypes
    matter); the iterator is reset by `fit` afterwards, so no batch is lost."""
    import tensorflow as tf
    from keras import tree

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda v: (strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v), batch)
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    return build


def worker_scratch_dir(dist: Distributed):
    """A temporary directory for a non-chief worker's copy of the run files (never read; removed
    after training)."""
    import pathlib
    import tempfile

    return pathlib.Path(tempfile.mkdtemp(prefix=f"tfner-worker{dist.worker_index}-"))


def distributed_dataset_options(dataset, dist: Distributed | None):
    """Shards a generator dataset by data across workers (each worker keeps its replicas' share
    of every global batch; TensorFlow cannot shard a Python generator by file)."""
    if dist is None or dist.strategy is None or dist.num_workers <= 1:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
