"""benchmarks/gpu_training.py's batches and summary (the GPU run itself needs a lent GPU machine)."""

import importlib.util

import numpy as np

from .conftest import BENCH

_spec = importlib.util.spec_from_file_location("bench_gpu_training", BENCH / "gpu_training.py")
gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu)


def test_batches_have_valid_bio_tags_masks_and_rounded_widths():
    lengths = [3, 17, 40, 1, 33]
    ids, mask, tags = gpu.batch_arrays(lengths, 21128, seed=1, multiple=32)
    assert ids.shape == mask.shape == tags.shape == (5, 64)
    assert mask.sum(axis=1).tolist() == lengths
    assert (ids[~mask] == gpu.SPECIAL["pad"]).all() and (ids[mask] >= 1000).all() and (ids < 21128).all()
    assert (tags[~mask] == 0).all() and tags.max() < len(gpu.LABELS)
    for row in tags:  # BIO: an I-X only after B-X or I-X of the same type
        for prev, tag in zip([0] + row[:-1].tolist(), row.tolist()):
            if gpu.LABELS[tag].startswith("I-"):
                assert gpu.LABELS[prev][2:] == gpu.LABELS[tag][2:]
    assert (tags > 0).any()
    assert gpu.batch_arrays(lengths, 21128, seed=1)[0].shape == (5, 40)  # no rounding by default
    np.testing.assert_array_equal(gpu.batch_arrays(lengths, 21128, seed=1, multiple=32)[2], tags)


def test_summary_is_sequences_per_second_per_window():
    result = gpu.summarize([100.0] * 10 + [50.0] * 10, batch_size=32, window=10)
    assert result == {"median": 480.0, "min": 320.0, "max": 640.0, "n": 2, "spread": 320.0 / 480.0}
