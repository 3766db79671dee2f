"""Batched prediction: texts in, per-label probabilities (or label names) out.

Texts are tokenized without padding, sorted by length and fed in batches padded only to the
longest text of each batch, so memory stays bounded by `batch_size` and short texts cost little.
Long texts can be read through a sliding window whose per-label scores are aggregated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .metrics import binarize, sigmoid
from .modeling_multilabel import multilabel_loss

logger = logging.get_logger(__name__)

Aggregate = Literal["max", "mean"]


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


@dataclass(frozen=True)
class Preprocessing:
    """How texts become model inputs at prediction time: the contract a model was trained with.

    Attributes:
        max_length: Tokens per text (or window).
        sliding_window: Read texts longer than `max_length` as overlapping windows.
        stride: Tokens shared by neighbouring windows (`None`: `max_length // 4`).
        aggregate: How window probabilities become the text's: `"max"` or `"mean"`.
    """

    max_length: int
    sliding_window: bool = False
    stride: int | None = None
    aggregate: Aggregate = "max"


def resolve_preprocessing(
    config: object,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int | None = None,
    sliding_window: bool | None = None,
    stride: int | None = None,
    aggregate: Aggregate | None = None,
) -> Preprocessing:
    """The preprocessing of a prediction: each argument given wins, else the model's saved contract.

    The contract is what `train()` saved in the config (`max_length`, `sliding_window`, `window_stride`,
    `window_aggregation`); a model without one (not trained by `train()`) reads the tokenizer's
    `model_max_length`, capped at 512, and truncates.

    Example:
        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(max_length=24, sliding_window=False, window_stride=None, window_aggregation="max")
        >>> resolve_preprocessing(config, tokenizer).max_length
        24
        >>> resolve_preprocessing(config, tokenizer, max_length=64).max_length
        64
        >>> resolve_preprocessing(model.config, tokenizer)  # untrained: the tokenizer's limit, at most 512
        Preprocessing(max_length=512, sliding_window=False, stride=None, aggregate='max')
    """
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
        raise TypeError(
            f"`max_length` must be an int or None, got {type(max_length).__name__} {max_length!r}."
        )
    if max_length is None:
        max_length = getattr(config, "max_length", None)
    if max_length is None:
        max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    if max_length < 3:
        raise ValueError(f"`max_length` must be >= 3 tokens, got {max_length}.")
    saved_windows = bool(getattr(config, "sliding_window", False))
    if sliding_window is None:
        sliding_window = saved_windows
    if (
        stride is None
        and sliding_window
        and saved_windows
        and max_length == getattr(config, "max_length", None)
    ):
        stride = getattr(
            config, "window_stride", None
        )  # the saved overlap belongs to the saved window length
    if aggregate is None:
        aggregate = getattr(config, "window_aggregation", None) or "max"
    if aggregate not in ("max", "mean"):
        raise ValueError(f"`aggregate` must be 'max' or 'mean', got {aggregate!r}.")
    return Preprocessing(int(max_length), bool(sliding_window), stride, aggregate)


def tokenize_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    *,
    text_pairs: list[str] | None = None,
    stride: int | None = None,
    sliding_window: bool = False,
) -> tuple[list[dict[str, list[int]]], np.ndarray]:
    """Unpadded token features per window and, for each window, the index of its text.

    Without `sliding_window` each text (or pair) is one window, truncated to `max_length`; with it, the windows
    of `data.encode_windows`, neighbours sharing `stride` tokens (default `max_length // 4`).

    Example:
        >>> texts = ["the team won the game vote", "new chip"]
        >>> features, owner = tokenize_windows(tokenizer, texts, 5, sliding_window=True)
        >>> owner
        array([0, 0, 0, 1])
        >>> [tokenizer.decode(f["input_ids"]) for f in features[:2]]
        ['[CLS] the team won [SEP]', '[CLS] won the game [SEP]']
    """
    # data loads datasets and pandas: imported on first use, as the package's lazy modules are
    from .data import encode_windows

    overlap = (stride if stride is not None else max_length // 4) if sliding_window else None
    encoded, owner = encode_windows(tokenizer, texts, max_length, overlap, text_pairs=text_pairs)
    present = [key for key in ("input_ids", "token_type_ids") if key in encoded]
    features = [{key: encoded[key][i] for key in present} for i in range(len(encoded["input_ids"]))]
    return features, np.asarray(owner)


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


def aggregate_windows(
    window_scores: np.ndarray, owner: np.ndarray, n_texts: int, how: Aggregate
) -> np.ndarray:
    """Per-text scores from per-window scores: the `"max"` or the `"mean"` over each text's windows.

    Example:
        >>> aggregate_windows(np.array([[0.2], [0.6], [0.9]]), np.array([0, 0, 1]), 2, "mean")
        array([[0.4],
               [0.9]])
    """
    if how not in ("max", "mean"):
        raise ValueError(f"`aggregate` must be 'max' or 'mean', got {how!r}.")
    out = np.full((n_texts, window_scores.shape[1]), -np.inf if how == "max" else 0.0, dtype=np.float64)
    if how == "max":
        np.maximum.at(out, owner, window_scores)
        return out
    np.add.at(out, owner, window_scores)
    return out / np.bincount(owner, minlength=n_texts)[:, None]


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
    )
    if plan.sliding_window and text_pairs is not None and sliding_window is None:
        plan = Preprocessing(
            plan.max_length, False, None, plan.aggregate
        )  # pairs are truncated, as in training
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
    return aggregate_windows(sigmoid(logits.double().numpy()), owner, len(texts), plan.aggregate)


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
