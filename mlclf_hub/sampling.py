"""Repeat-factor sampling: show the rows of rare labels more often during training.

A label seen on a fraction `f` of the training rows gets the repeat factor `max(1, sqrt(t / f))`, and a
row repeats as often as its rarest label asks (the rule of LVIS, Gupta et al. 2019, applied to the
labels of a row). With `t = 0.02` a label on 0.25% of the rows is seen about 2.8 times per epoch, while
labels on 2% of the rows or more keep their frequency. Fractional factors are rounded up or down at
random (seeded), so the expected count of every row is its factor. The repeats are a `Dataset.select`
of row indices, so length-grouped batches, DDP sharding and `resume_from_checkpoint` work unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def repeat_factors(labels: np.ndarray | Any, threshold: float) -> np.ndarray:
    """Per-row repeat factor: the largest `max(1, sqrt(threshold / label_frequency))` over the row's labels.

    Rows without any label, and labels with no positive row, get factor 1.

    Example:

    >>> repeat_factors(np.array([[1, 0], [1, 0], [1, 0], [1, 1]]), threshold=1.0).tolist()
    [1.0, 1.0, 1.0, 2.0]
    """
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}.")
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"`labels` must be a 2-D multi-hot array (rows, labels), got shape {y.shape}.")
    frequency = y.mean(axis=0) if y.shape[0] else np.zeros(y.shape[1])
    label_factor = np.where(frequency > 0, np.sqrt(threshold / np.maximum(frequency, 1e-12)), 1.0)
    label_factor = np.maximum(label_factor, 1.0)
    return ((y > 0) * label_factor[None, :]).max(axis=1, initial=1.0)


def repeat_factor_indices(labels: np.ndarray | Any, threshold: float, seed: int = 0) -> np.ndarray:
    """Row indices with every row repeated `floor(r)` or `ceil(r)` times (expected `r`), in row order.

    Example:

    >>> repeat_factor_indices(np.array([[1, 0], [1, 0], [1, 0], [1, 1]]), threshold=1.0).tolist()
    [0, 1, 2, 3, 3]
    """
    factors = repeat_factors(labels, threshold)
    whole = np.floor(factors)
    extra = np.random.default_rng(seed).random(factors.shape[0]) < (factors - whole)
    counts = (whole + extra).astype(np.int64)
    return np.repeat(np.arange(factors.shape[0]), counts)


__all__ = ["repeat_factor_indices", "repeat_factors"]
