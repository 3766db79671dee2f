"""The "multi-label-classification" pipeline, and the stock "text-classification" one on a saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import mlclf_hub
from mlclf_hub.inference import predict_proba
from mlclf_hub.pipeline import TASK, MultiLabelClassificationPipeline
from mlclf_hub.saving import save_model
from tests.tiny_models import keyword_model, tiny_model, tiny_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ("sports", "politics", "tech")
TEXTS = ["the team won the game", "vote on the new law", "new code for the old phone chip", "a"]
LONG = " ".join(["the team won", "vote party law", "code chip phone"] * 8)  # ~70 tokens


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny random model saved with its tokenizer; thresholds put one label each side of its scores."""
    torch.manual_seed(0)
    model, tokenizer = tiny_model(labels=LABELS), tiny_tokenizer()
    probs = predict_proba(model, tokenizer, TEXTS)
    model.config.thresholds = [0.0, float(np.median(probs[:, 1])), 1.0]
    directory = tmp_path_factory.mktemp("pipe") / "model"
    save_model(model, directory, tokenizer)
    return model, tokenizer, directory


def expected(probs_row: np.ndarray, thresholds, all_labels: bool = False) -> list[tuple[str, float]]:
    order = np.argsort(-probs_row, kind="stable")
    return [(LABELS[j], probs_row[j]) for j in order if all_labels or probs_row[j] >= thresholds[j]]


def assert_same(result, wanted) -> None:
    assert [r["label"] for r in result] == [name for name, _ in wanted]
    np.testing.assert_allclose([r["score"] for r in result], [s for _, s in wanted], rtol=0, atol=1e-6)


def test_registered_at_import_and_thresholds_applied(saved):
    model, tokenizer, directory = saved
    assert TASK in mlclf_hub.pipeline.PIPELINE_REGISTRY.supported_tasks
    classify = pipeline(TASK, model=str(directory))
    assert isinstance(classify, MultiLabelClassificationPipeline)
    probs = predict_proba(model, tokenizer, TEXTS)
    outputs = classify(TEXTS)
    assert len(outputs) == len(TEXTS)
    for row, result in zip(probs, outputs):
        assert_same(result, expected(row, model.config.thresholds))
        assert "sports" in [r["label"] for r in result]  # threshold 0: always in
        assert "tech" not in [r["label"] for r in result]  # threshold 1: never (scores < 1)
    assert_same(classify(TEXTS[0]), expected(probs[0], model.config.thresholds))  # a str gives one list


def test_all_labels_top_k_and_threshold_override(saved):
    model, tokenizer, directory = saved
    classify = pipeline(TASK, model=str(directory))
    probs = predict_proba(model, tokenizer, TEXTS)
    for row, result in zip(probs, classify(TEXTS, return_all_scores=True)):
        assert_same(result, expected(row, None, all_labels=True))
    assert all(len(r) == 1 for r in classify(TEXTS, return_all_scores=True, top_k=1))
    for row, result in zip(probs, classify(TEXTS, threshold=0.5)):
        assert_same(result, expected(row, [0.5] * 3))
    with pytest.raises(ValueError, match=r"`top_k` must be an int >= 1"):
        classify(TEXTS, top_k=0)
    with pytest.raises(TypeError, match=r"unexpected parameters \['bogus'\]"):
        classify(TEXTS, bogus=1)


def test_batching_gives_the_same_scores(saved):
    _, _, directory = saved
    classify = pipeline(TASK, model=str(directory))
    one = classify(TEXTS, return_all_scores=True, batch_size=1)
    batched = classify(TEXTS, return_all_scores=True, batch_size=3)
    for a, b in zip(one, batched):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)


@pytest.mark.parametrize("aggregate", ["max", "mean"])
def test_sliding_window_matches_predict_proba(saved, aggregate, tmp_path):
    model, tokenizer, directory = saved
    classify = pipeline(TASK, model=str(directory))
    texts = [LONG, TEXTS[0]]
    options = {"max_length": 16, "sliding_window": True, "stride": 4, "aggregate": aggregate}
    probs = predict_proba(model, tokenizer, texts, **options)
    results = classify(texts, return_all_scores=True, batch_size=4, **options)
    for row, result in zip(probs, results):
        assert_same(result, expected(row, None, all_labels=True))

    # the windows read past the first 16 tokens, whatever the weights: a model that scores keywords (+2 / -2),
    # and "chip" only as word 40 of 41, in the last of 4 windows (14 words each, starting at 0, 10, 20, 30)
    save_model(keyword_model(labels=LABELS), tmp_path / "keywords", tokenizer)
    classify = pipeline(TASK, model=str(tmp_path / "keywords"))
    low, high = 1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-2.0))
    tech = {"max": high, "mean": (high + 3 * low) / 4}[aggregate]
    result = classify(" ".join(["the"] * 40 + ["chip"]), return_all_scores=True, **options)
    assert_same(result, [("tech", tech), ("sports", low), ("politics", low)])
    truncated = classify(" ".join(["the"] * 40 + ["chip"]), return_all_scores=True, max_length=16)
    assert_same(truncated, [("sports", low), ("politics", low), ("tech", low)])


def test_stock_text_classification_after_import_gives_sigmoid_for_every_label(saved):
    model, tokenizer, directory = saved
    scores = pipeline("text-classification", model=str(directory), top_k=None)(TEXTS)
    probs = predict_proba(model, tokenizer, TEXTS)
    for row, result in zip(probs, scores):
        by_name = {r["label"]: r["score"] for r in result}
        assert set(by_name) == set(LABELS)
        np.testing.assert_allclose([by_name[name] for name in LABELS], row, atol=1e-6)


def test_stock_text_classification_with_remote_code_without_mlclf_hub(saved, tmp_path):
    model, tokenizer, directory = saved
    code = textwrap.dedent(
        """
        import json, sys
        sys.modules["mlclf_hub"] = None  # not importable: the saved remote code must suffice
        from transformers import pipeline
        scores = pipeline("text-classification", model=sys.argv[1], top_k=None, trust_remote_code=True)
        print(json.dumps(scores(json.loads(sys.argv[2]))))
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(directory), json.dumps(TEXTS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    probs = predict_proba(model, tokenizer, TEXTS)
    for row, result in zip(probs, scores):
        by_name = {r["label"]: r["score"] for r in result}
        np.testing.assert_allclose([by_name[name] for name in LABELS], row, atol=1e-6)
