"""mlclf_hub.metrics against scikit-learn, on random and edge-case multi-hot arrays."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from sklearn import metrics as skm
from transformers import EvalPrediction

from mlclf_hub.metrics import (
    EVALUATE_SCRIPT_PATH,
    binarize,
    confusion_counts,
    f1_from_counts,
    label_ranking_average_precision,
    load_metric,
    make_compute_metrics,
    multilabel_metrics,
    roc_auc_per_label,
    sigmoid,
    validate_multilabel_inputs,
)

AVERAGES = ("micro", "macro", "weighted", "samples")
SKLEARN_PRF = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}


def _random_case(
    seed: int, n: int = 60, n_labels: int = 7, rate: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < rate).astype(np.int64)
    scores = np.clip(0.35 * y + 0.65 * rng.random((n, n_labels)), 0.0, 1.0)
    return y, scores


def _edge_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(123)
    y, s = _random_case(7, n=40, n_labels=6)
    empty_rows = y.copy()
    empty_rows[::3] = 0  # rows with no true label
    never = y.copy()
    never[:, [1, 4]] = 0  # labels that never occur
    ties = np.round(s * 4) / 4  # few distinct scores, many ties (also exactly 0.5)
    return {
        "empty_rows": (empty_rows, s),
        "labels_never_occur": (never, s),
        "all_zero_predictions": (y, s * 0.49),
        "ties_in_scores": (y, ties),
        "ties_and_empty_rows": (empty_rows, ties),
        "all_scores_equal": (y, np.full_like(s, 0.5)),
        "no_true_labels_at_all": (np.zeros_like(y), s),
        "every_label_true": (np.ones_like(y), s),
        "perfect": (y, y.astype(float)),
        "single_row": (y[:1], s[:1]),
        "sparse_wide": ((rng.random((30, 40)) < 0.03).astype(int), rng.random((30, 40))),
    }


CASES = {f"random_seed{seed}": _random_case(seed) for seed in range(4)}
CASES["random_low_rate"] = _random_case(11, n=80, n_labels=12, rate=0.05)
CASES.update(_edge_cases())


def _sklearn_reference(y: np.ndarray, scores: np.ndarray, thresholds: float | np.ndarray) -> dict[str, float]:
    y_pred = (scores >= thresholds).astype(int)
    ref = {
        f"{name}_{avg}": fn(y, y_pred, average=avg, zero_division=0)
        for name, fn in SKLEARN_PRF.items()
        for avg in AVERAGES
    }
    ref["subset_accuracy"] = skm.accuracy_score(y, y_pred)
    ref["hamming_loss"] = skm.hamming_loss(y, y_pred)
    ref["lrap"] = skm.label_ranking_average_precision_score(y, scores)
    aucs = [
        skm.roc_auc_score(y[:, j], scores[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < y.shape[0]
    ]
    if aucs:
        ref["roc_auc_macro"] = float(np.mean(aucs))
    return ref


@pytest.mark.parametrize("case", sorted(CASES))
def test_metrics_match_sklearn(case: str) -> None:
    y, scores = CASES[case]
    result = multilabel_metrics(y, scores)
    expected = _sklearn_reference(y, scores, 0.5)
    assert result["num_samples"] == y.shape[0]
    assert set(result) - {"num_samples"} == set(expected)
    for key, value in expected.items():
        assert isinstance(result[key], float), key
        assert result[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed", range(3))
def test_metrics_match_sklearn_with_per_label_thresholds(seed: int) -> None:
    y, scores = _random_case(seed + 20)
    thresholds = np.random.default_rng(seed).uniform(0.1, 0.9, y.shape[1])
    result = multilabel_metrics(y, scores, thresholds=thresholds)
    for key, value in _sklearn_reference(y, scores, thresholds).items():
        assert result[key] == pytest.approx(value, abs=1e-12), key


def test_float_targets_are_accepted_like_ints() -> None:
    y, scores = CASES["random_seed0"]
    assert multilabel_metrics(y.astype(np.float32), scores) == multilabel_metrics(y, scores)


def test_per_label_entries_match_sklearn_and_use_names() -> None:
    y, scores = CASES["labels_never_occur"]
    names = [f"label_{j}" for j in range(y.shape[1])]
    result = multilabel_metrics(y, scores, thresholds=0.4, label_names=names, per_label=True)
    y_pred = (scores >= 0.4).astype(int)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, y_pred, average=None, zero_division=0
    )
    assert list(result["per_label"]) == names
    for j, name in enumerate(names):
        entry = result["per_label"][name]
        assert entry["precision"] == pytest.approx(precision[j])
        assert entry["recall"] == pytest.approx(recall[j])
        assert entry["f1"] == pytest.approx(f1[j])
        assert entry["support"] == support[j]
    default_names = multilabel_metrics(y, scores, per_label=True)["per_label"]
    assert list(default_names) == [str(j) for j in range(y.shape[1])]
    assert "per_label" not in multilabel_metrics(y, scores)


def test_roc_auc_macro_is_left_out_when_no_label_has_both_classes() -> None:
    y, scores = CASES["no_true_labels_at_all"]
    result = multilabel_metrics(y, scores)
    assert "roc_auc_macro" not in result
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in result.values())


@pytest.mark.parametrize("case", ["random_seed1", "ties_in_scores", "all_scores_equal", "labels_never_occur"])
def test_roc_auc_per_label_matches_sklearn(case: str) -> None:
    y, scores = CASES[case]
    aucs = roc_auc_per_label(y, scores)
    assert aucs.shape == (y.shape[1],)
    for j in range(y.shape[1]):
        if 0 < y[:, j].sum() < y.shape[0]:
            assert aucs[j] == pytest.approx(skm.roc_auc_score(y[:, j], scores[:, j]), abs=1e-12)
        else:
            assert math.isnan(aucs[j])


@pytest.mark.parametrize("seed", range(5))
def test_lrap_matches_sklearn_with_heavy_ties_and_raw_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((50, 9)) < 0.3).astype(int)
    y[0] = 0
    y[1] = 1
    logits = rng.integers(-3, 4, size=y.shape).astype(float)  # scores need not be probabilities
    assert label_ranking_average_precision(y, logits) == pytest.approx(
        skm.label_ranking_average_precision_score(y, logits), abs=1e-12
    )


def test_lrap_handles_more_rows_than_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlclf_hub.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "_RANKING_CHUNK_ELEMENTS", 50)
    y, scores = _random_case(3, n=37, n_labels=5)
    assert label_ranking_average_precision(y, scores) == pytest.approx(
        skm.label_ranking_average_precision_score(y, scores), abs=1e-12
    )


def test_sigmoid_is_stable_and_keeps_float32() -> None:
    x = np.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = sigmoid(x)
        out32 = sigmoid(x.astype(np.float32))
    np.testing.assert_allclose(out[1:-1], 1.0 / (1.0 + np.exp(-x[1:-1])), rtol=1e-15)
    assert out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5
    assert out.dtype == np.float64 and out32.dtype == np.float32
    assert sigmoid(np.zeros((2, 3), dtype=np.int64)).shape == (2, 3)
    assert np.all(np.diff(out) >= 0)


def test_binarize_uses_greater_or_equal() -> None:
    probs = np.array([[0.0, 0.5, 0.999999, 1.0]])
    assert binarize(probs, 0.5).tolist() == [[0, 1, 1, 1]]
    assert binarize(probs, 0.0).tolist() == [[1, 1, 1, 1]]
    assert binarize(probs, 1.0).tolist() == [[0, 0, 0, 1]]
    assert binarize(probs, 0.5).dtype == np.int64


def test_binarize_per_label_thresholds() -> None:
    probs = np.array([[0.3, 0.3, 0.3], [0.7, 0.7, 0.7]])
    assert binarize(probs, [0.2, 0.5, 0.8]).tolist() == [[1, 0, 0], [1, 1, 0]]
    assert binarize(probs, np.array([0.3, 1.0, 0.0])).tolist() == [[1, 0, 1], [1, 0, 1]]


def test_binarize_compares_float32_probabilities_exactly_like_float64() -> None:
    # float32(0.7) is slightly below 0.7: a scalar and a per-label threshold must agree on that.
    probs32 = np.array([[0.3, 0.7]], dtype=np.float32)
    for t in (0.3, 0.7):
        expected = (probs32.astype(np.float64) >= t).astype(int).tolist()
        assert binarize(probs32, t).tolist() == expected
        assert binarize(probs32, [t, t]).tolist() == expected
    assert binarize(probs32, 0.7).tolist() == [[0, 0]]


@pytest.mark.parametrize(
    ("thresholds", "error", "match"),
    [
        (1.5, ValueError, r"must be in \[0, 1\], got 1.5"),
        (-0.1, ValueError, r"must be in \[0, 1\], got -0.1"),
        (float("nan"), ValueError, r"must be in \[0, 1\], got nan"),
        ([0.5, 0.5], ValueError, r"has 2 values but there are 3 labels"),
        ([0.5, 2.0, 0.5], ValueError, r"label 1: 2.0"),
        ([[0.5, 0.5, 0.5]], ValueError, r"1-D sequence of 3 floats"),
        ("0.5", TypeError, r"got '0.5'"),
        (True, TypeError, r"got the bool True"),
    ],
)
def test_binarize_rejects_bad_thresholds(thresholds: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        binarize(np.full((2, 3), 0.5), thresholds)


@pytest.mark.parametrize(
    ("y_true", "y_score", "match"),
    [
        (np.zeros(3), np.zeros(3), r"Expected a 2-D array .* for `y_true`, got an array of shape \(3,\)"),
        (np.zeros((2, 3)), np.zeros((2, 4)), r"same shape .* got \(2, 3\) and \(2, 4\)"),
        (
            np.zeros((0, 3)),
            np.zeros((0, 3)),
            r"at least one sample and one label, got arrays of shape \(0, 3\)",
        ),
        (
            np.array([[0, 2], [0.5, 1]]),
            np.zeros((2, 2)),
            r"only 0 and 1\), found \[0.5, 2.0\]; the first is at row 0",
        ),
        (
            np.zeros((2, 2)),
            np.array([[0.1, np.nan], [0.2, 0.3]]),
            r"must be finite, found nan at row 0, label 1",
        ),
        (
            np.zeros((2, 2)),
            np.array([[0.1, 0.2], [3.0, 0.3]]),
            r"probabilities in \[0, 1\], found 3.0 at row 1",
        ),
    ],
)
def test_invalid_inputs_are_rejected(y_true: np.ndarray, y_score: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(y_true, y_score)


def test_validate_returns_int_targets_and_float_scores() -> None:
    t, s = validate_multilabel_inputs([[True, False]], np.array([[0.5, 0.25]], dtype=np.float32))
    assert t.dtype == np.int64 and t.tolist() == [[1, 0]]
    assert s.dtype == np.float64


def test_bad_label_names_are_rejected() -> None:
    y, scores = CASES["random_seed0"]
    with pytest.raises(ValueError, match=r"has 2 names but the arrays have 7 label columns"):
        multilabel_metrics(y, scores, label_names=["a", "b"])
    with pytest.raises(ValueError, match=r"must be unique; these appear more than once: \['a'\]"):
        multilabel_metrics(y, scores, label_names=["a", "a", "b", "c", "d", "e", "f"])


def _logits_case(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((64, 6)) < 0.3).astype(np.float32)
    logits = (rng.normal(size=labels.shape) + 2.0 * labels - 1.0).astype(np.float32)
    return logits, labels


def test_compute_metrics_on_eval_prediction_of_logits() -> None:
    logits, labels = _logits_case()
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.5, 0.5]
    compute_metrics = make_compute_metrics(thresholds=thresholds)
    result = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    expected = multilabel_metrics(labels, sigmoid(logits), thresholds=thresholds)
    assert result == expected
    assert not any(key.startswith("eval_") for key in result)
    assert "per_label" not in result
    y_pred = (1.0 / (1.0 + np.exp(-logits.astype(np.float64))) >= np.array(thresholds)).astype(int)
    assert result["f1_micro"] == pytest.approx(skm.f1_score(labels, y_pred, average="micro", zero_division=0))
    # Models that return extra outputs give Trainer a tuple whose first item is the logits.
    hidden = np.zeros((64, 3, 2), dtype=np.float32)
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == result


def test_make_compute_metrics_checks_thresholds() -> None:
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got 1.2"):
        make_compute_metrics(thresholds=1.2)
    compute_metrics = make_compute_metrics(thresholds=[0.5, 0.5])
    logits, labels = _logits_case()
    with pytest.raises(ValueError, match=r"has 2 values but there are 6 labels"):
        compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))


@pytest.fixture(scope="module")
def offline_metric(tmp_path_factory: pytest.TempPathFactory):
    """The evaluate module, loaded offline with a fresh module cache.

    `evaluate` reads HF_MODULES_CACHE into `evaluate.config` when first imported, and its dynamic-module package
    can be imported from one cache directory per process, so one directory serves the whole module.
    """
    cache = tmp_path_factory.mktemp("hf_modules")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_MODULES_CACHE", str(cache))
        import evaluate

        mp.setattr(evaluate.config, "HF_MODULES_CACHE", cache)
        metric = load_metric(keep_in_memory=True)
        yield metric, cache


def test_evaluate_module_loads_offline_as_metric(offline_metric) -> None:
    import evaluate

    metric, cache = offline_metric
    assert isinstance(metric, evaluate.Metric)
    assert type(metric).__module__.startswith("evaluate_modules.")
    assert set(metric.features) == {"predictions", "references"}
    copies = [p for p in cache.rglob("multilabel_metrics.py")]
    assert copies, f"evaluate did not copy the script into {cache}"
    assert os.path.isfile(EVALUATE_SCRIPT_PATH)


def test_evaluate_module_gives_the_same_numbers(offline_metric) -> None:
    metric, _ = offline_metric
    logits, labels = _logits_case(9)
    thresholds = [0.5, 0.3, 0.7, 0.5, 0.45, 0.55]
    names = [f"l{j}" for j in range(6)]
    from_trainer = make_compute_metrics(thresholds=thresholds)(
        EvalPrediction(predictions=logits, label_ids=labels)
    )
    probs = sigmoid(logits)  # float32, as the metric stores it
    from_evaluate = metric.compute(
        predictions=probs, references=labels.astype(np.int32), thresholds=thresholds, label_names=names
    )
    assert from_evaluate == from_trainer
    # Batches added one by one give the same result.
    for start in range(0, 64, 16):
        metric.add_batch(
            predictions=probs[start : start + 16], references=labels[start : start + 16].astype(int)
        )
    assert metric.compute(thresholds=thresholds) == from_trainer
    per_label = metric.compute(predictions=probs, references=labels, label_names=names, per_label=True)[
        "per_label"
    ]
    assert list(per_label) == names


@pytest.mark.parametrize("case", sorted(CASES))
def test_f1_from_counts_matches_sklearn_per_label_micro_and_per_sample(case: str) -> None:
    y, scores = CASES[case]
    y_pred = binarize(scores, 0.5)
    per_label = confusion_counts(y, y_pred, axis=0)
    matrix = skm.multilabel_confusion_matrix(y, y_pred)  # per label [[tn, fp], [fn, tp]]
    assert [c.tolist() for c in per_label] == [
        matrix[:, 1, 1].tolist(),
        matrix[:, 0, 1].tolist(),
        matrix[:, 1, 0].tolist(),
    ]
    np.testing.assert_allclose(
        f1_from_counts(*per_label), skm.f1_score(y, y_pred, average=None, zero_division=0), atol=1e-12
    )
    micro = f1_from_counts(*(c.sum() for c in per_label))
    assert micro.shape == () and float(micro) == pytest.approx(
        skm.f1_score(y, y_pred, average="micro", zero_division=0), abs=1e-12
    )
    per_sample = f1_from_counts(*confusion_counts(y, y_pred, axis=1))
    assert float(per_sample.mean()) == pytest.approx(
        skm.f1_score(y, y_pred, average="samples", zero_division=0), abs=1e-12
    )


def test_f1_from_counts_is_zero_where_nothing_is_counted() -> None:
    assert f1_from_counts(np.array([0, 0, 3]), np.array([0, 2, 0]), np.array([0, 0, 1])).tolist() == [
        0.0,
        0.0,
        6 / 7,
    ]
    assert float(f1_from_counts(0, 0, 0)) == 0.0


def test_threshold_tuning_scores_f1_with_the_same_function() -> None:
    from mlclf_hub import thresholds

    assert thresholds.f1_from_counts is f1_from_counts and not hasattr(thresholds, "_f1")
