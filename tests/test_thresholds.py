"""mlclf_hub.thresholds: global and guarded per-label threshold tuning."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import f1_score

import mlclf_hub.thresholds as thresholds_module
from mlclf_hub.metrics import binarize
from mlclf_hub.thresholds import ThresholdResult, default_grid, tune_global_threshold, tune_thresholds

NAMES = ["a", "b", "c", "d", "e", "f", "late", "rare"]


def _micro_f1(y: np.ndarray, probs: np.ndarray, thresholds: float | list[float]) -> float:
    return f1_score(y, binarize(probs, thresholds), average="micro", zero_division=0)


def _known_best(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Scores built so the best global threshold is exactly 0.3.

    Labels 0-5 separate perfectly between 0.29 and 0.30. Label 6 ("late") separates only between 0.69 and
    0.70, with many negatives in [0.3, 0.69]: its best threshold is 0.7. Label 7 ("rare") is like it but has
    only 5 positives.
    """
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 8), dtype=np.int64)
    p = np.zeros((n, 8))
    for j in range(6):
        y[:, j] = rng.random(n) < 0.3
        pos = rng.choice([0.30, 0.35, 0.45, 0.6, 0.8], n)
        p[:, j] = np.where(y[:, j] == 1, pos, rng.choice([0.05, 0.1, 0.2, 0.29], n))
    y[:, 6] = rng.random(n) < 0.3
    p[:, 6] = np.where(
        y[:, 6] == 1, rng.choice([0.7, 0.8, 0.9], n), rng.choice([0.3, 0.4, 0.5, 0.6, 0.69], n)
    )
    y[rng.choice(n, 5, replace=False), 7] = 1
    stray = np.where(rng.random(n) < 0.05, rng.choice([0.4, 0.5, 0.6], n), 0.1)
    p[:, 7] = np.where(y[:, 7] == 1, 0.8, stray)
    return y, p


def _trap(seed: int, n: int = 3000, with_late_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Ten strong labels (prevalence 0.3) and six weak, noisy labels (prevalence 0.2).

    On its own, each weak label's F1 is highest near a low threshold (predict it almost everywhere), but the
    false positives that brings cut micro-F1. With `with_late_label`, label 0 really is better at ~0.7.
    """
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 16), dtype=np.int64)
    p = np.zeros((n, 16))
    for j in range(10):
        y[:, j] = rng.random(n) < 0.3
        p[:, j] = np.where(y[:, j] == 1, rng.normal(0.75, 0.12, n), rng.normal(0.25, 0.12, n))
    for j in range(10, 16):
        y[:, j] = rng.random(n) < 0.2
        p[:, j] = np.where(y[:, j] == 1, rng.normal(0.3, 0.15, n), rng.normal(0.25, 0.15, n))
    if with_late_label:
        p[:, 0] = np.where(y[:, 0] == 1, rng.normal(0.85, 0.05, n), rng.normal(0.55, 0.06, n))
    return y, np.clip(p, 0.0, 1.0)


def _naive_per_label(y: np.ndarray, p: np.ndarray, grid: np.ndarray) -> list[float]:
    """Each label's own F1-maximising threshold, chosen independently (the trap)."""
    pred = p[None, :, :] >= grid[:, None, None]  # (thresholds, rows, labels)
    tp = (pred & (y[None] == 1)).sum(axis=1)
    f1 = 2 * tp / np.maximum(pred.sum(axis=1) + y.sum(axis=0)[None], 1)
    return [float(t) for t in grid[np.argmax(f1, axis=0)]]


def test_default_grid() -> None:
    grid = default_grid()
    assert grid[0] == 0.05 and grid[-1] == 0.95 and len(grid) == 91
    assert 0.5 in grid and 0.3 in grid and 0.7 in grid
    np.testing.assert_allclose(np.diff(grid), 0.01, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_global_threshold_matches_brute_force_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 9)) < 0.25).astype(int)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(y.shape) ** (1 + seed), 0, 1), 2)  # rounded: many ties
    grid = [0.0, 0.1, 0.25, 0.3, 0.33, 0.5, 0.6, 0.8, 1.0] if seed % 2 else None
    best, best_f1 = tune_global_threshold(y, p, grid=grid)
    candidates = default_grid() if grid is None else np.array(grid)
    f1s = np.array([_micro_f1(y, p, float(t)) for t in candidates])
    assert best_f1 == pytest.approx(f1s.max(), abs=1e-12)
    winners = candidates[np.isclose(f1s, f1s.max(), rtol=0, atol=1e-12)]
    assert best == pytest.approx(winners[np.argmin(np.abs(winners - 0.5))])


def test_global_threshold_ties_go_to_the_value_closest_to_half() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    separated = np.where(y == 1, 0.9, 0.1)  # every threshold in (0.1, 0.9] is perfect
    assert tune_global_threshold(y, separated) == (0.5, 1.0)
    low = np.where(y == 1, 0.42, 0.1)  # perfect only up to 0.42
    assert tune_global_threshold(y, low) == (0.42, 1.0)
    high = np.where(y == 1, 0.9, 0.61)  # perfect only from 0.62
    assert tune_global_threshold(y, high) == (0.62, 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_known_best_thresholds(seed: int) -> None:
    y, p = _known_best(seed)
    assert tune_global_threshold(y, p)[0] == 0.3
    result = tune_thresholds(y, p, label_names=NAMES)
    assert isinstance(result, ThresholdResult)
    assert result.global_threshold == 0.3
    assert result.moved == ["late"]
    expected = [0.3] * 8
    expected[6] = 0.7
    assert result.thresholds == pytest.approx(expected)
    # "rare" has only 5 positives: with the default min_positives=10 it stays at the global threshold, ...
    assert result.thresholds[7] == 0.3
    # ... and it is that guard, not its data, that keeps it there.
    loose = tune_thresholds(y, p, label_names=NAMES, min_positives=3)
    assert loose.moved == ["late", "rare"]
    assert 0.6 < loose.thresholds[7] <= 0.7
    # min_gain blocks moves too.
    assert tune_thresholds(y, p, min_gain=0.99).moved == []


def test_scores_are_measured_on_the_tuning_data() -> None:
    y, p = _known_best(0)
    result = tune_thresholds(y, p, label_names=NAMES)
    for key, thresholds in (
        ("0.5", 0.5),
        ("global", result.global_threshold),
        ("per_label", result.thresholds),
    ):
        y_pred = binarize(p, thresholds)
        assert result.scores[f"f1_micro@{key}"] == pytest.approx(
            f1_score(y, y_pred, average="micro", zero_division=0)
        )
        assert result.scores[f"f1_macro@{key}"] == pytest.approx(
            f1_score(y, y_pred, average="macro", zero_division=0)
        )
    assert (
        result.scores["f1_micro@per_label"] > result.scores["f1_micro@global"] > result.scores["f1_micro@0.5"]
    )
    assert result.scores["heldout_f1_micro@per_label"] > result.scores["heldout_f1_micro@global"]


def test_moved_uses_indices_without_label_names() -> None:
    y, p = _known_best(1)
    assert tune_thresholds(y, p).moved == [6]


@pytest.mark.parametrize("seed", range(4))
def test_trap_weak_frequent_labels_never_beat_global_on_held_out_rows(seed: int) -> None:
    y_tune, p_tune = _trap(2 * seed)
    y_held, p_held = _trap(2 * seed + 1)
    result = tune_thresholds(y_tune, p_tune, seed=seed)
    assert all(0.0 <= t <= 1.0 for t in result.thresholds)
    global_f1 = _micro_f1(y_held, p_held, result.global_threshold)
    tuned_f1 = _micro_f1(y_held, p_held, result.thresholds)
    naive_f1 = _micro_f1(y_held, p_held, _naive_per_label(y_tune, p_tune, default_grid()))
    # The data really is a trap: independent per-label maximisation loses clearly on held-out rows ...
    assert naive_f1 < global_f1 - 0.05
    # ... and the guarded tuning does not fall into it.
    assert tuned_f1 >= global_f1 - 1e-3
    assert not set(result.moved) & set(range(10, 16))


def test_without_the_per_label_micro_guard_the_good_move_is_lost_too() -> None:
    y_tune, p_tune = _trap(10, with_late_label=True)
    guarded = tune_thresholds(y_tune, p_tune)
    unguarded = tune_thresholds(y_tune, p_tune, max_micro_loss=1.0)
    # Unguarded, the trap labels move, the set loses held-out micro-F1 and everything falls back to global.
    assert guarded.moved == [0]
    assert unguarded.moved == []
    assert guarded.scores["heldout_f1_micro@per_label"] > unguarded.scores["heldout_f1_micro@per_label"]


@pytest.mark.parametrize("seed", range(2))
def test_trap_still_moves_a_label_that_really_gains(seed: int) -> None:
    y_tune, p_tune = _trap(10 + 2 * seed, with_late_label=True)
    y_held, p_held = _trap(11 + 2 * seed, with_late_label=True)
    result = tune_thresholds(y_tune, p_tune)
    # Label 0 also pulls the global threshold up, so some strong labels may rightly move back down a little.
    assert 0 in result.moved
    assert result.thresholds[0] > result.global_threshold + 0.1
    assert not set(result.moved) & set(range(10, 16))
    assert _micro_f1(y_held, p_held, result.thresholds) > _micro_f1(y_held, p_held, result.global_threshold)


def test_falls_back_to_global_when_moves_lower_held_out_micro_f1(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    y, p = _known_best(0)
    monkeypatch.setattr(thresholds_module, "_heldout_micro", lambda folds, move: (0.9, 0.8))
    with caplog.at_level(logging.INFO, logger="mlclf_hub.thresholds"):
        result = tune_thresholds(y, p, label_names=NAMES)
    assert result.moved == []
    assert result.thresholds == [result.global_threshold] * 8
    assert result.scores["f1_micro@per_label"] == result.scores["f1_micro@global"]
    assert "fell back to global" in caplog.text


def test_logs_a_one_line_summary(caplog: pytest.LogCaptureFixture) -> None:
    y, p = _known_best(2)
    with caplog.at_level(logging.INFO, logger="mlclf_hub.thresholds"):
        tune_thresholds(y, p)
    lines = [r.getMessage() for r in caplog.records if r.name == "mlclf_hub.thresholds"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("Thresholds: global 0.30; 1 of 8 labels moved")


def test_seed_and_folds_are_deterministic() -> None:
    y, p = _trap(3, n=600, with_late_label=True)
    first = tune_thresholds(y, p, n_folds=4, seed=7)
    assert tune_thresholds(y, p, n_folds=4, seed=7) == first


def test_debtags_sized_input() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((3000, 131)) < 0.05).astype(np.int64)
    p = np.clip(0.4 * y + 0.6 * rng.random(y.shape) ** 2, 0, 1).astype(np.float32)
    result = tune_thresholds(y, p)
    assert len(result.thresholds) == 131
    assert result.scores["f1_micro@per_label"] >= result.scores["f1_micro@global"] - 1e-9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_folds": 1}, ValueError, r"`n_folds` must be >= 2, got 1"),
        ({"n_folds": 601}, ValueError, r"at most the number of samples \(600\), got 601"),
        ({"n_folds": 2.5}, TypeError, r"`n_folds` must be an int, got 2.5"),
        ({"min_positives": -1}, ValueError, r"`min_positives` must be >= 0, got -1"),
        ({"min_gain": -0.1}, ValueError, r"`min_gain` must be a number >= 0, got -0.1"),
        ({"max_micro_loss": -1}, ValueError, r"`max_micro_loss` must be a number >= 0, got -1"),
        ({"grid": [0.2, 1.3]}, ValueError, r"in \[0, 1\], got \[1.3\]"),
        ({"grid": []}, ValueError, r"non-empty 1-D sequence"),
        ({"label_names": ["a", "b"]}, ValueError, r"has 2 names but the arrays have 8 label columns"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, error: type, match: str) -> None:
    y, p = _known_best(0)
    with pytest.raises(error, match=match):
        tune_thresholds(y, p, **kwargs)


def test_logits_are_rejected() -> None:
    y, p = _known_best(0)
    with pytest.raises(
        ValueError, match=r"probabilities in \[0, 1\], found -1\.\d+ at row 0, label 0; apply `sigmoid`"
    ):
        tune_global_threshold(y, p - 2.0)


# Cross-fitted (held-out) figures of tuned thresholds


def test_cross_fitted_predictions_cut_each_half_at_the_other_halfs_thresholds() -> None:
    from mlclf_hub.thresholds import cross_fitted_predictions

    y, p = _known_best(4, n=300)
    predictions = cross_fitted_predictions(y, p, label_names=NAMES, seed=5, min_positives=3)
    order = np.random.default_rng(5).permutation(300)
    first, second = order[:150], order[150:]
    for tune_on, score_on in ((first, second), (second, first)):
        tuned = tune_thresholds(y[tune_on], p[tune_on], min_positives=3)
        np.testing.assert_array_equal(predictions[score_on], binarize(p[score_on], tuned.thresholds))
    assert predictions.dtype == np.int64 and predictions.shape == y.shape
    # a row's own label never decides its threshold: flipping the labels of half `second` changes nothing there
    flipped = y.copy()
    flipped[second] = 1 - flipped[second]
    again = cross_fitted_predictions(flipped, p, seed=5, min_positives=3)
    np.testing.assert_array_equal(again[second], predictions[second])


def test_cross_fitted_metrics_score_the_cross_fitted_predictions() -> None:
    from sklearn.metrics import precision_score, recall_score

    from mlclf_hub.metrics import multilabel_metrics
    from mlclf_hub.thresholds import cross_fitted_metrics, cross_fitted_predictions

    y, p = _trap(1, n=400)
    metrics = cross_fitted_metrics(y, p, seed=3, per_label=True)
    predictions = cross_fitted_predictions(y, p, seed=3)
    assert metrics["f1_micro"] == pytest.approx(f1_score(y, predictions, average="micro", zero_division=0))
    assert metrics["f1_macro"] == pytest.approx(f1_score(y, predictions, average="macro", zero_division=0))
    assert metrics["precision_micro"] == pytest.approx(precision_score(y, predictions, average="micro"))
    assert metrics["recall_macro"] == pytest.approx(recall_score(y, predictions, average="macro"))
    assert set(metrics["per_label"]) == {str(j) for j in range(y.shape[1])}
    on_scores = multilabel_metrics(y, p)
    assert metrics["lrap"] == on_scores["lrap"] and metrics["roc_auc_macro"] == on_scores["roc_auc_macro"]


@pytest.mark.parametrize(("rows", "n_folds"), [(5, 3), (3, 2)])
def test_cross_fitting_needs_two_halves_tune_thresholds_can_run_on(rows: int, n_folds: int) -> None:
    from mlclf_hub.thresholds import cross_fitted_predictions, min_cross_fit_rows

    y, p = _trap(0, n=rows + 1)
    assert min_cross_fit_rows(n_folds) == rows + 1
    with pytest.raises(ValueError, match=rf"at least {rows + 1} rows .*, got {rows}\."):
        cross_fitted_predictions(y[:rows], p[:rows], n_folds=n_folds)
    assert cross_fitted_predictions(y, p, n_folds=n_folds).shape == y.shape


def test_the_quality_benchmark_uses_the_librarys_cross_fitting() -> None:
    import importlib.util
    from pathlib import Path

    from mlclf_hub.thresholds import cross_fitted_predictions

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_benchmark", path)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    y, p = _trap(2, n=300)
    np.testing.assert_array_equal(
        quality.cross_fitted(y, p, [str(j) for j in range(y.shape[1])], seed=4),
        cross_fitted_predictions(y, p, seed=4),
    )
