"""Global and per-label decision thresholds tuned for F1 on validation probabilities.

Tuning each label's threshold on its own is a trap: measured on real data, it drove weak but frequent labels
towards 0 (predicting them everywhere raises their own F1) and cut held-out micro-F1 from 0.50 to 0.30.
`tune_thresholds` therefore starts every label at the best global threshold and moves a label only when
cross-validation over rows shows that the move helps on held-out rows, both for that label's F1 and for
micro-F1, and falls back to the global threshold when the moves together do not beat it.

Predictions always follow `mlclf_hub.metrics.binarize` (`probs >= threshold`).

Thresholds tuned on the validation rows and scored on them are optimistic (in-sample).
`cross_fitted_metrics` gives the held-out figure: the rows are cut in two halves, thresholds are tuned on
one half and applied to the other, both ways, and the two halves' predictions are scored together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from transformers.utils import logging

from .metrics import (
    binarize,
    check_label_names,
    confusion_counts,
    f1_from_counts,
    multilabel_metrics,
    validate_multilabel_inputs,
)

logger = logging.get_logger(__name__)

# Two F1 values closer than this count as a tie (they differ only by rounding).
_TIE_TOLERANCE = 1e-12


def default_grid() -> np.ndarray:
    """The default candidate thresholds: 0.05, 0.06, ..., 0.95.

    Example:

    >>> g = default_grid()
    >>> float(g[0]), float(g[-1]), len(g)
    (0.05, 0.95, 91)
    """
    return np.round(np.arange(0.05, 0.951, 0.01), 2)


@dataclass
class ThresholdResult:
    """The outcome of `tune_thresholds`.

    Attributes:
        global_threshold (`float`): The single threshold with the best micro-F1 on the tuning data.
        thresholds (`list[float]`): One threshold per label, each in [0, 1]; labels not moved keep
            `global_threshold`.
        moved (`list[str | int]`): Labels whose threshold differs from `global_threshold` (names when
            `label_names` were given, else column indices), in column order.
        scores (`dict[str, float]`): Micro- and macro-F1 on the tuning data at 0.5 (`f1_micro@0.5`,
            `f1_macro@0.5`), at the global threshold (`...@global`) and with the per-label thresholds
            (`...@per_label`), plus the cross-validated held-out micro-F1 of the global threshold and of the
            per-label moves (`heldout_f1_micro@global`, `heldout_f1_micro@per_label`).

    Example:

    >>> ThresholdResult(global_threshold=0.4, thresholds=[0.4, 0.7], moved=[1]).thresholds
    [0.4, 0.7]
    """

    global_threshold: float
    thresholds: list[float]
    moved: list[str | int] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def _check_grid(grid: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Returns the candidate thresholds as a sorted, de-duplicated float64 array in [0, 1]."""
    if grid is None:
        return default_grid()
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`grid` must be a non-empty 1-D sequence of thresholds, got shape {arr.shape}.")
    bad = arr[~((arr >= 0.0) & (arr <= 1.0))]
    if bad.size:
        raise ValueError(f"Every value in `grid` must be in [0, 1], got {sorted(bad.tolist())[:5]}.")
    return np.unique(arr)


def _counts_on_grid(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP and FN of every label at every grid threshold, each of shape `(len(grid), n_labels)`.

    Sorting each column once makes "how many scores are >= t, and how many of those are positives" a binary
    search plus a suffix sum, so the cost is O(n log n) per label however long the grid is.
    """
    n_samples, n_labels = probs.shape
    order = np.argsort(probs, axis=0, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=0)
    sorted_true = np.take_along_axis(y_true, order, axis=0)
    positives_from = np.zeros((n_samples + 1, n_labels), dtype=np.int64)
    positives_from[:-1] = np.cumsum(sorted_true[::-1], axis=0)[::-1]
    first_at_least = np.empty((grid.size, n_labels), dtype=np.int64)
    for j in range(n_labels):
        first_at_least[:, j] = np.searchsorted(sorted_probs[:, j], grid, side="left")
    tp = np.take_along_axis(positives_from, first_at_least, axis=0)
    fp = (n_samples - first_at_least) - tp
    fn = positives_from[0][None, :] - tp
    return tp, fp, fn


def _pick(f1: np.ndarray, grid: np.ndarray, anchor: float | np.ndarray) -> np.ndarray:
    """Index of the best F1 along axis 0; ties go to the threshold closest to `anchor`, then the lower one."""
    is_best = f1 >= f1.max(axis=0, keepdims=True) - _TIE_TOLERANCE
    distance = np.abs(grid.reshape((-1,) + (1,) * (f1.ndim - 1)) - anchor)
    return np.argmax(np.where(is_best, -distance, -np.inf), axis=0)


def _best_global_index(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, grid: np.ndarray) -> int:
    """Grid index with the best micro-F1 (counts summed over labels), ties to the one closest to 0.5."""
    micro = f1_from_counts(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
    return int(_pick(micro, grid, 0.5))


def _micro_f1_at(counts: tuple[np.ndarray, ...], index: np.ndarray) -> float:
    """Micro-F1 when label j uses grid index `index[j]`."""
    cols = np.arange(index.size)
    tp, fp, fn = (c[index, cols].sum() for c in counts)
    return float(f1_from_counts(tp, fp, fn))


def _f1_scores(y_true: np.ndarray, probs: np.ndarray, thresholds: float | np.ndarray) -> tuple[float, float]:
    """Micro- and macro-F1 of `binarize(probs, thresholds)`."""
    tp, fp, fn = confusion_counts(y_true, binarize(probs, thresholds), axis=0)
    return float(f1_from_counts(tp.sum(), fp.sum(), fn.sum())), float(np.mean(f1_from_counts(tp, fp, fn)))


def tune_global_threshold(
    y_true: np.ndarray | Sequence[Any],
    probs: np.ndarray | Sequence[Any],
    grid: Sequence[float] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Finds the single threshold, shared by every label, with the best micro-F1.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets.
        probs (`np.ndarray` or array-like): `(n_samples, n_labels)` probabilities in [0, 1].
        grid (sequence of `float`, *optional*): Candidate thresholds in [0, 1]; defaults to 0.05, 0.06, ...,
            0.95. Among equally good candidates the one closest to 0.5 wins (then the lower one).

    Returns:
        `tuple[float, float]`: The best threshold and its micro-F1.

    Raises:
        ValueError: On invalid arrays (see `mlclf_hub.metrics.validate_multilabel_inputs`) or grid.

    Example:

    >>> tune_global_threshold([[1, 0], [0, 1]], [[0.35, 0.1], [0.2, 0.4]])
    (0.35, 1.0)
    """
    t, p = validate_multilabel_inputs(y_true, probs)
    g = _check_grid(grid)
    tp, fp, fn = _counts_on_grid(t, p, g)
    best = _best_global_index(tp, fp, fn, g)
    return float(g[best]), float(f1_from_counts(tp[best].sum(), fp[best].sum(), fn[best].sum()))


def _check_int(name: str, value: Any, minimum: int) -> int:
    """Returns `value` if it is an int >= `minimum`, else raises naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def _fold_statistics(
    y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray, n_folds: int, seed: int
) -> list[dict[str, Any]]:
    """For each fold: what tuning on the other folds picks, and the held-out counts to judge it by."""
    permutation = np.random.default_rng(seed).permutation(y_true.shape[0])
    folds = []
    for held_out in np.array_split(permutation, n_folds):
        train = np.setdiff1d(permutation, held_out)
        train_counts = _counts_on_grid(y_true[train], probs[train], grid)
        global_index = _best_global_index(*train_counts, grid)
        label_index = _pick(f1_from_counts(*train_counts), grid, grid[global_index])
        folds.append(
            {
                "global_index": global_index,
                "label_index": label_index,
                "test_counts": _counts_on_grid(y_true[held_out], probs[held_out], grid),
            }
        )
    return folds


def _heldout_gains(folds: list[dict[str, Any]], n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean held-out gain of moving each label alone: in its own F1, and in micro-F1."""
    label_gain = np.zeros(n_labels)
    micro_gain = np.zeros(n_labels)
    cols = np.arange(n_labels)
    for fold in folds:
        g, idx = fold["global_index"], fold["label_index"]
        at_global = [c[g] for c in fold["test_counts"]]
        at_label = [c[idx, cols] for c in fold["test_counts"]]
        label_gain += f1_from_counts(*at_label) - f1_from_counts(*at_global)
        totals = [a.sum() for a in at_global]
        moved_totals = [total - a + b for total, a, b in zip(totals, at_global, at_label)]
        micro_gain += f1_from_counts(*moved_totals) - f1_from_counts(*totals)
    return label_gain / len(folds), micro_gain / len(folds)


def _heldout_micro(folds: list[dict[str, Any]], move: np.ndarray) -> tuple[float, float]:
    """Mean held-out micro-F1 of the global threshold and of the per-label set that moves `move`."""
    global_scores, per_label_scores = [], []
    for fold in folds:
        n_labels = move.size
        at_global = np.full(n_labels, fold["global_index"])
        global_scores.append(_micro_f1_at(fold["test_counts"], at_global))
        per_label_scores.append(
            _micro_f1_at(fold["test_counts"], np.where(move, fold["label_index"], at_global))
        )
    return float(np.mean(global_scores)), float(np.mean(per_label_scores))


def tune_thresholds(
    y_true: np.ndarray | Sequence[Any],
    probs: np.ndarray | Sequence[Any],
    label_names: Sequence[str] | None = None,
    min_positives: int = 10,
    min_gain: float = 0.02,
    n_folds: int = 3,
    seed: int = 0,
    grid: Sequence[float] | np.ndarray | None = None,
    max_micro_loss: float = 0.0,
) -> ThresholdResult:
    """Tunes one global threshold, then moves single labels off it only where that holds up on held-out rows.

    Steps:

    1. The global threshold is the grid value with the best micro-F1 on all rows (`tune_global_threshold`).
    2. The rows are split into `n_folds` folds (shuffled with `seed`). On each fold, the global threshold and
       every label's own best threshold are tuned on the other folds and measured on the held-out fold.
    3. A label moves if it has at least `min_positives` positive rows, its held-out F1 gain (averaged over
       folds) is at least `min_gain`, and moving it alone lowers held-out micro-F1 by at most
       `max_micro_loss`. The last test is what stops weak, frequent labels from sliding towards 0.
    4. If the moved labels together score a lower held-out micro-F1 than the global threshold, every label
       falls back to the global threshold.
    5. A moved label gets its best threshold on all rows (ties to the one closest to the global threshold).

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets of the tuning split.
        probs (`np.ndarray` or array-like): `(n_samples, n_labels)` probabilities in [0, 1].
        label_names (sequence of `str`, *optional*): Names reported in `moved`; default column indices.
        min_positives (`int`, *optional*, defaults to 10): Fewest positive rows a label needs to be moved.
        min_gain (`float`, *optional*, defaults to 0.02): Smallest mean held-out gain in the label's F1 to
            move it.
        n_folds (`int`, *optional*, defaults to 3): Cross-validation folds over rows (at least 2, at most
            `n_samples`).
        seed (`int`, *optional*, defaults to 0): Seed of the row shuffle.
        grid (sequence of `float`, *optional*): Candidate thresholds; defaults to 0.05, 0.06, ..., 0.95.
        max_micro_loss (`float`, *optional*, defaults to 0.0): How much held-out micro-F1 moving one label
            alone may cost.

    Returns:
        `ThresholdResult`: The global threshold, per-label thresholds, moved labels and scores.

    Raises:
        ValueError: On invalid arrays, grid, label names, or out-of-range settings.
        TypeError: If an integer setting is not an int.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((300, 4)) < 0.3).astype(int)
    >>> p = np.clip(0.5 * y + 0.5 * rng.random((300, 4)), 0, 1)
    >>> result = tune_thresholds(y, p, label_names=["a", "b", "c", "d"])
    >>> len(result.thresholds), 0.0 <= result.global_threshold <= 1.0
    (4, True)
    """
    t, p = validate_multilabel_inputs(y_true, probs)
    n_samples, n_labels = t.shape
    names = check_label_names(label_names, n_labels) if label_names is not None else None
    g = _check_grid(grid)
    min_positives = _check_int("min_positives", min_positives, 0)
    n_folds = _check_int("n_folds", n_folds, 2)
    if n_folds > n_samples:
        raise ValueError(f"`n_folds` must be at most the number of samples ({n_samples}), got {n_folds}.")
    if not (isinstance(min_gain, (int, float, np.floating)) and min_gain >= 0) or isinstance(min_gain, bool):
        raise ValueError(f"`min_gain` must be a number >= 0, got {min_gain!r}.")

    counts = _counts_on_grid(t, p, g)
    global_index = _best_global_index(*counts, g)
    global_threshold = float(g[global_index])

    folds = _fold_statistics(t, p, g, n_folds, seed)
    label_gain, micro_gain = _heldout_gains(folds, n_labels)
    if not (isinstance(max_micro_loss, (int, float, np.floating)) and max_micro_loss >= 0):
        raise ValueError(f"`max_micro_loss` must be a number >= 0, got {max_micro_loss!r}.")
    move = (t.sum(axis=0) >= min_positives) & (label_gain >= min_gain) & (micro_gain >= -max_micro_loss)
    heldout_global, heldout_per_label = _heldout_micro(folds, move)
    fallback = bool(move.any()) and heldout_per_label < heldout_global
    if fallback:
        move[:] = False
        heldout_per_label = heldout_global

    best_per_label = g[_pick(f1_from_counts(*counts), g, global_threshold)]
    thresholds = np.where(move, best_per_label, global_threshold)
    moved_cols = np.flatnonzero(thresholds != global_threshold)
    moved: list[str | int] = (
        [names[j] for j in moved_cols] if names is not None else [int(j) for j in moved_cols]
    )

    scores: dict[str, float] = {}
    for key, value in (("0.5", 0.5), ("global", global_threshold), ("per_label", thresholds)):
        scores[f"f1_micro@{key}"], scores[f"f1_macro@{key}"] = _f1_scores(t, p, value)
    scores["heldout_f1_micro@global"] = heldout_global
    scores["heldout_f1_micro@per_label"] = heldout_per_label

    logger.info(
        "Thresholds: global %.2f; %d of %d labels moved%s; micro-F1 on tuning data %.4f at 0.5, %.4f global, "
        "%.4f per-label; held-out micro-F1 %.4f global, %.4f per-label.",
        global_threshold,
        len(moved),
        n_labels,
        " (moves fell back to global: they lowered held-out micro-F1)" if fallback else "",
        scores["f1_micro@0.5"],
        scores["f1_micro@global"],
        scores["f1_micro@per_label"],
        heldout_global,
        heldout_per_label,
    )
    return ThresholdResult(
        global_threshold=global_threshold,
        thresholds=[float(x) for x in thresholds],
        moved=moved,
        scores=scores,
    )


#: Metrics of `multilabel_metrics` that read the scores, not 0/1 predictions: no threshold is tuned for them.
SCORE_METRICS = ("lrap", "roc_auc_macro")


def min_cross_fit_rows(n_folds: int = 3) -> int:
    """Fewest rows `cross_fitted_predictions` can cut: two halves of at least `n_folds` rows each.

    Example:

    >>> min_cross_fit_rows(), min_cross_fit_rows(n_folds=5)
    (6, 10)
    """
    return 2 * _check_int("n_folds", n_folds, 2)


def cross_fitted_predictions(
    y_true: np.ndarray | Sequence[Any],
    probs: np.ndarray | Sequence[Any],
    label_names: Sequence[str] | None = None,
    seed: int = 0,
    **tune_kwargs: Any,
) -> np.ndarray:
    """0/1 predictions where each half of the rows is cut at thresholds tuned on the other half.

    The rows are shuffled with `seed` and cut in two halves; `tune_thresholds` runs on each half (with the
    same `seed` and `tune_kwargs`, e.g. `min_positives`, `n_folds`) and its thresholds `binarize` the other half.
    Scoring the result against `y_true` gives held-out figures for the thresholds: no row is scored at
    thresholds tuned on it.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets.
        probs (`np.ndarray` or array-like): `(n_samples, n_labels)` probabilities in [0, 1].
        label_names (sequence of `str`, *optional*): Passed to `tune_thresholds` (for its log line).
        seed (`int`, *optional*, defaults to 0): Seed of the shuffle that cuts the halves, and of
            `tune_thresholds`' folds.
        **tune_kwargs (`dict[str, Any]`, *optional*): More arguments of `tune_thresholds`.

    Returns:
        `np.ndarray`: `(n_samples, n_labels)` int64 0/1 predictions, in the rows' order.

    Raises:
        ValueError: On invalid arrays, or fewer rows than `min_cross_fit_rows(n_folds)` (each half must hold
            at least `n_folds` rows for `tune_thresholds`).

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((200, 3)) < 0.3).astype(int)
    >>> p = np.clip(0.6 * y + 0.4 * rng.random((200, 3)), 0, 1)
    >>> cross_fitted_predictions(y, p).shape
    (200, 3)
    """
    t, p = validate_multilabel_inputs(y_true, probs)
    needed = min_cross_fit_rows(tune_kwargs.get("n_folds", 3))
    if t.shape[0] < needed:
        raise ValueError(
            f"Cross-fitting needs at least {needed} rows (two halves of `n_folds` rows each), got {t.shape[0]}."
        )
    order = np.random.default_rng(seed).permutation(t.shape[0])
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    predictions = np.zeros_like(t)
    for tune_on, score_on in (halves, halves[::-1]):
        result = tune_thresholds(t[tune_on], p[tune_on], label_names=label_names, seed=seed, **tune_kwargs)
        predictions[score_on] = binarize(p[score_on], result.thresholds)
    return predictions


def cross_fitted_metrics(
    y_true: np.ndarray | Sequence[Any],
    probs: np.ndarray | Sequence[Any],
    label_names: Sequence[str] | None = None,
    seed: int = 0,
    per_label: bool = False,
    **tune_kwargs: Any,
) -> dict[str, Any]:
    """`multilabel_metrics` of `cross_fitted_predictions`: the held-out figures of tuned thresholds.

    Every threshold-dependent metric (precision, recall, F1, subset accuracy, Hamming loss, the per-label
    table) is scored on the cross-fitted 0/1 predictions. `SCORE_METRICS` (LRAP, ROC AUC) read the scores,
    which no threshold changes, so they are those of `probs` (on 0/1 predictions they would be meaningless).

    Args:
        y_true (`np.ndarray` or array-like): As for `cross_fitted_predictions`.
        probs (`np.ndarray` or array-like): As for `cross_fitted_predictions`.
        label_names (sequence of `str`, *optional*): As for `cross_fitted_predictions`.
        seed (`int`, *optional*, defaults to 0): As for `cross_fitted_predictions`.
        per_label (`bool`, *optional*, defaults to `False`): Add the `per_label` table of
            `multilabel_metrics`.
        **tune_kwargs (`dict[str, Any]`, *optional*): As for `cross_fitted_predictions`.

    Returns:
        `dict[str, Any]`: The keys of `multilabel_metrics`.

    Raises:
        ValueError: As `cross_fitted_predictions`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((200, 3)) < 0.3).astype(int)
    >>> p = np.clip(0.6 * y + 0.4 * rng.random((200, 3)), 0, 1)
    >>> m = cross_fitted_metrics(y, p)
    >>> 0.0 <= m["f1_micro"] <= 1.0, m["num_samples"]
    (True, 200)
    """
    t, p = validate_multilabel_inputs(y_true, probs)
    names = check_label_names(label_names, t.shape[1]) if label_names is not None else None
    predictions = cross_fitted_predictions(t, p, label_names=names, seed=seed, **tune_kwargs)
    metrics = multilabel_metrics(
        t, predictions.astype(np.float64), thresholds=0.5, label_names=names, per_label=per_label
    )
    on_scores = multilabel_metrics(t, p, label_names=names)
    for key in SCORE_METRICS:
        metrics.pop(key, None)
        if key in on_scores:
            metrics[key] = on_scores[key]
    return metrics


def heldout_metrics(
    y_true: np.ndarray | Sequence[Any], probs: np.ndarray | Sequence[Any], **kwargs: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """`cross_fitted_metrics(y_true, probs, **kwargs)`, or `(None, why)` when the rows are too few to cut in two
    halves.

    What `train()`, the facade and the model card report as the held-out figures of tuned thresholds.

    Args:
        y_true (`np.ndarray` or array-like): As for `cross_fitted_metrics`.
        probs (`np.ndarray` or array-like): As for `cross_fitted_metrics`.
        **kwargs (`dict[str, Any]`, *optional*): The keyword arguments of `cross_fitted_metrics`
            (`label_names`, `seed`, `per_label`, and those of `tune_thresholds`, `n_folds` included).

    Example:

    >>> heldout_metrics(np.zeros((4, 2)), np.zeros((4, 2)))
    (None, 'the validation split has 4 rows, too few to cut in two halves of 3 (cross-fitting needs 6)')
    """
    rows = len(y_true)
    folds = kwargs.get("n_folds", 3)
    if rows < min_cross_fit_rows(folds):
        why = (
            f"the validation split has {rows} rows, too few to cut in two halves of {folds} "
            f"(cross-fitting needs {min_cross_fit_rows(folds)})"
        )
        return None, why
    return cross_fitted_metrics(y_true, probs, **kwargs), None
