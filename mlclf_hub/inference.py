"""Batched prediction: texts in, per-label probabilities (or label names) out.

Texts are tokenized without padding, sorted by length and fed in batches padded only to the
longest text of each batch, so memory stays bounded by `batch_size` and short texts cost little.
Long texts can be read through a sliding window whose per-label scores are aggregated. The preprocessing
(`Preprocessing`, `resolve_preprocessing`, `tokenize_windows`, `aggregate_windows`) is defined once in
`processing_multilabel`, which the pipeline shares (and which travels with it as remote code); its names
are importable from here too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .metrics import binarize, sigmoid
from .modeling_multilabel import multilabel_loss
from .processing_multilabel import (
    Aggregate,
    Preprocessing,
    aggregate_windows,
    resolve_preprocessing,
    tokenize_windows,
)

logger = logging.get_logger(__name__)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("`texts` must be a list of strings, got a single str; wrap it in a list: [text].")
    texts = list(texts)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"row {row}, field 'text': expected a string, got {type(text).__name__} {text!r:.60}."
            )
    return texts


@torch.no_grad()
def batched_forward(
    model: PreTrainedModel,
    features: Sequence[Mapping[str, Sequence[int]]],
    pad: Callable[[list[Mapping[str, Sequence[int]]]], Mapping[str, torch.Tensor]],
    batch_size: int = 64,
    *,
    output: Literal["logits", "pooled"] = "logits",
    progress: str | None = None,
) -> torch.Tensor:
    """One eval-mode pass over unpadded token features, longest first, padded per batch; rows in input order.

    Args:
        model (`PreTrainedModel`):
            The model; it is put in eval mode for the pass and back in its mode after.
        features (`Sequence[Mapping[str, Sequence[int]]]`):
            One mapping per row (`input_ids`, and `token_type_ids` where the model has them): a list
            of dicts, or a tokenized `datasets.Dataset` holding only those columns.
        pad (`Callable`):
            Pads a list of rows to one batch of tensors (`DataCollatorWithPadding`, or
            `functools.partial(tokenizer.pad, return_tensors="pt")`).
        batch_size (`int`, *optional*, defaults to 64):
            Rows per forward pass.
        output (`str`, *optional*, defaults to `"logits"`):
            `"logits"` (the model's output logits) or `"pooled"` (`model.pooled_output`, the vectors
            the head reads).
        progress (`str`, *optional*):
            The label of a progress bar over the batches (none when `None`).

    Returns:
        `torch.Tensor`: A float32 CPU tensor `(rows, ...)`, row `i` for `features[i]`.

    Example:
        >>> pad = functools.partial(tokenizer.pad, return_tensors="pt")
        >>> batched_forward(model, [{"input_ids": [2, 7, 3]}], pad, output="pooled").shape
        torch.Size([1, 32])
    """
    if output not in ("logits", "pooled"):
        raise ValueError(f"`output` must be 'logits' or 'pooled', got {output!r}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    lengths = np.array([len(row["input_ids"]) for row in features], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")  # longest batch first: running out of memory shows at once
    device = next(model.parameters()).device
    rows: list[torch.Tensor | None] = [None] * len(lengths)
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
            chosen = order[start : start + batch_size].tolist()
            batch = {key: value.to(device) for key, value in pad([features[i] for i in chosen]).items()}
            values = model.pooled_output(**batch) if output == "pooled" else model(**batch).logits
            for i, value in zip(chosen, values.float().cpu()):
                rows[i] = value
    finally:
        model.train(was_training)
    return torch.stack(rows) if rows else torch.zeros(0)


def predict_proba(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    *,
    text_pairs: Iterable[str] | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    sliding_window: bool | None = None,
    stride: int | None = None,
    aggregate: Aggregate | None = None,
    show_progress: bool | None = None,
) -> np.ndarray:
    """Sigmoid probabilities `(n_texts, num_labels)` for a list of texts.

    Args:
        model (`PreTrainedModel`):
            A `MultiLabelModel` (or any model whose output has multi-label `logits`).
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer.
        texts (`Iterable[str]`):
            The texts; row order is kept whatever the batching order.
        text_pairs (`Iterable[str]`, *optional*):
            Second texts, one per text, for pair inputs (token type ids kept). Pairs are truncated,
            never windowed: a model saved with `sliding_window` reads pairs truncated by default, and an
            explicit `sliding_window=True` with pairs is a `ValueError`.
        batch_size (`int`, *optional*, defaults to 64):
            Texts (or windows) per forward pass.
        max_length (`int`, *optional*):
            Token budget per text (or window); default: the length the model was trained at
            (`config.max_length`), else the tokenizer's `model_max_length` capped at 512.
        sliding_window (`bool`, *optional*):
            Read texts longer than `max_length` as overlapping windows; default: as the
            model was trained (`config.sliding_window`).
        stride (`int`, *optional*):
            Tokens shared by neighbouring windows (default: `config.window_stride` when the model
            was trained on windows, else `max_length // 4`).
        aggregate (`str`, *optional*):
            How window probabilities become the text's: `"max"` or `"mean"` (default:
            `config.window_aggregation`, `"max"`).
        show_progress (`bool`, *optional*):
            Progress bar; default on for more than 10 batches.

    Example:
        >>> probs = predict_proba(model, tokenizer, ["a text", "another"])
        >>> probs.shape
        (2, 3)
    """
    texts = _check_texts(texts)
    if text_pairs is not None:
        text_pairs = _check_texts(text_pairs)
        if len(text_pairs) != len(texts):
            raise ValueError(f"`text_pairs` needs one text per text ({len(texts)}), got {len(text_pairs)}.")
    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float64)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    plan = resolve_preprocessing(
        model.config,
        tokenizer,
        max_length=max_length,
        sliding_window=sliding_window,
        stride=stride,
        aggregate=aggregate,
        pairs=text_pairs is not None,
    )
    features, owner = tokenize_windows(
        tokenizer,
        texts,
        plan.max_length,
        text_pairs=text_pairs,
        stride=plan.stride,
        sliding_window=plan.sliding_window,
    )
    if show_progress is None:
        show_progress = len(features) > 10 * batch_size
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    logits = batched_forward(
        model, features, pad, batch_size, progress="Predicting" if show_progress else None
    )
    probs = sigmoid(logits.double().numpy())
    return aggregate_windows(probs, owner, len(texts), plan.aggregate).numpy()


def probability_loss(probs: np.ndarray, y_true: np.ndarray, config: object) -> float:
    """The model's loss (`multilabel_loss`: BCE, `pos_weight`, focal) of probabilities, such as aggregated windows'.

    Example:
        >>> probability_loss(np.full((1, 2), 0.5), np.array([[1, 0]]), model.config)
        0.6931471805599453
    """
    clipped = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    logits = torch.tensor(np.log(clipped / (1 - clipped)))
    pos_weight = getattr(config, "pos_weight", None)
    pos_weight = torch.tensor(pos_weight, dtype=torch.float64) if pos_weight else None
    targets = torch.tensor(np.asarray(y_true), dtype=torch.float64)
    return float(
        multilabel_loss(logits, targets, pos_weight, float(getattr(config, "focal_gamma", 0.0) or 0.0))
    )


def predict(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    *,
    thresholds: float | Sequence[float] | None = None,
    **kwargs: object,
) -> list[list[str]]:
    """Label names per text, using the model's tuned thresholds unless `thresholds` is given.

    Example:
        >>> predict(model, tokenizer, ["the team won"])  # doctest: +SKIP
        [['sports']]
    """
    probs = predict_proba(model, tokenizer, texts, **kwargs)
    chosen = binarize(probs, model.config.thresholds if thresholds is None else thresholds)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return [[names[j] for j in np.flatnonzero(row)] for row in chosen]


__all__ = [
    "Preprocessing",
    "aggregate_windows",
    "batched_forward",
    "predict",
    "predict_proba",
    "probability_loss",
    "resolve_preprocessing",
    "tokenize_windows",
]
