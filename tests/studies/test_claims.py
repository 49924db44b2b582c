"""Paper B's claims checked from hand-made study metrics: each check can come out either way."""

import pytest

from tfner.studies.claims import check_claims, claims_markdown


def _f1(**means):
    return {name: {"test_f1": {"mean": value}} for name, value in means.items()}


def test_decoder_claims_held_and_not_held():
    held = check_claims("decoder", {"summary": {
        "softmax (full)": {"test_f1": {"mean": 0.80}}, "crf (full)": {"test_f1": {"mean": 0.81}},
        "softmax (embeddings)": {"test_f1": {"mean": 0.50}}, "crf (embeddings)": {"test_f1": {"mean": 0.70}}}})
    assert [c["held"] for c in held] == [True, True]
    assert "+20.00" in held[0]["measured"]
    # gap with the full encoder larger than with embeddings only: the second claim fails
    not_held = check_claims("decoder", {"summary": {
        "softmax (full)": {"test_f1": {"mean": 0.40}}, "crf (full)": {"test_f1": {"mean": 0.70}},
        "softmax (embeddings)": {"test_f1": {"mean": 0.50}}, "crf (embeddings)": {"test_f1": {"mean": 0.51}}}})
    assert [c["held"] for c in not_held] == [False, False]


def test_decoder_claims_full_only_and_missing():
    only_full = check_claims("decoder", {"summary": {
        "softmax (full)": {"test_f1": {"mean": 0.80}}, "crf (full)": {"test_f1": {"mean": 0.85}}}})
    assert len(only_full) == 1 and not only_full[0]["held"]
    assert check_claims("decoder", {"summary": {"crf (full)": {"test_f1": {"mean": 0.8}}}}) == []


def _run(history, **kw):
    return {"history": history, "test": {"f1": kw.pop("f1", 0.5)}, **kw}


def test_depth_claim_uses_final_dev_accuracy():
    near = {"runs": {"1 layer": [_run([{"val_token_accuracy": 0.5}, {"val_token_accuracy": 0.950}])],
                     "2 layers": [_run([{"val_token_accuracy": 0.6}, {"val_token_accuracy": 0.955}])]}}
    assert check_claims("depth", near)[0]["held"]
    far = {"runs": {"1 layer": [_run([{"val_token_accuracy": 0.90}])],
                    "2 layers": [_run([{"val_token_accuracy": 0.95}])]}}
    claim = check_claims("depth", far)[0]
    assert not claim["held"] and "5.00" in claim["measured"]
    assert check_claims("depth", {"runs": {"1 layer": [_run([{"val_token_accuracy": 0.9}])]}}) == []


def test_pretraining_claims():
    names = ("pretrained encoder", "pretrained embeddings only", "random init")
    metrics = {
        "summary": {n: {"test_f1": {"mean": f}} for n, f in zip(names, (0.8, 0.6, 0.1))},
        "runs": {n: [_run([{"val_entity_f1": f}])] for n, f in zip(names, (0.5, 0.3, 0.0))},
    }
    assert [c["held"] for c in check_claims("pretraining", metrics)] == [True, True, True]
    metrics["summary"]["random init"]["test_f1"]["mean"] = 0.75   # random init nearly as good
    metrics["runs"]["random init"][0]["history"][0]["val_entity_f1"] = 0.6
    assert [c["held"] for c in check_claims("pretraining", metrics)] == [False, False, False]


def test_crf_lr_claims_compare_lowest_and_highest_multiplier():
    def run(mult, mass, f1):
        return [{"crf_lr_multiplier": mult, "illegal_mass": {"mean_row_mass": mass}, "test": {"f1": f1}}]

    metrics = {"runs": {"CRF lr 1x": run(1, 0.30, 0.70), "CRF lr 100x": run(100, 0.05, 0.72),
                        "CRF lr 1000x": run(1000, 0.01, 0.60)}}
    claims = check_claims("crf-lr", metrics)
    assert [c["held"] for c in claims] == [True, True]
    assert "1000x: 1.00%" in claims[0]["measured"]
    metrics["runs"]["CRF lr 1000x"] = run(1000, 0.40, 0.6)
    metrics["runs"]["CRF lr 100x"] = run(100, 0.05, 0.6)
    assert [c["held"] for c in check_claims("crf-lr", metrics)] == [False, False]


@pytest.mark.parametrize("share,bucket_speed,bucket_f1,expected", [
    (0.995, 200.0, 0.805, [True, True]),
    (0.95, 200.0, 0.805, [False, True]),
    (0.995, 90.0, 0.805, [True, False]),     # slower
    (0.995, 200.0, 0.75, [True, False]),     # faster but worse
])
def test_padding_claims(share, bucket_speed, bucket_f1, expected):
    metrics = {"share_within_pad": share, "pad_length": 70, "sigmas": 3.0, "summary": {
        "fixed padding 70": {"sequences_per_second": {"mean": 100.0}, "test_f1": {"mean": 0.80}},
        "length buckets (tfner)": {"sequences_per_second": {"mean": bucket_speed}, "test_f1": {"mean": bucket_f1}}}}
    assert [c["held"] for c in check_claims("padding", metrics)] == expected


def test_claims_markdown():
    assert claims_markdown([]) == ""
    text = claims_markdown([{"claim": "a", "measured": "1", "held": True},
                            {"claim": "b", "measured": "2", "held": False}])
    assert "| a | 1 | held |" in text and "| b | 2 | **not held** |" in text
    assert "| x \\| y | 1 | held |" in claims_markdown([{"claim": "x | y", "measured": "1", "held": True}])
