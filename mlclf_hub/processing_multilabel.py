"""How texts become model inputs and window scores become a text's: the one definition for training and serving.

Used by training (`data.to_dataset` cuts training windows with `encode_windows`), by `inference.predict_proba`
and by the `"multi-label-classification"` pipeline, so a text is read the same way everywhere: at the length
the model was trained at (`resolve_preprocessing`), truncated or cut into overlapping windows
(`tokenize_windows`), the windows' scores aggregated (`aggregate_windows`).

This file is uploaded to the Hub next to the pipeline (remote code), so it imports nothing but `torch`,
`transformers` and the standard library.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

Aggregate = Literal["max", "mean"]


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
    pairs: bool = False,
) -> Preprocessing:
    """The preprocessing of a prediction: each argument given wins, else the model's saved contract.

    The contract is what `train()` saved in the config (`max_length`, `sliding_window`, `window_stride`,
    `window_aggregation`); a model without one (not trained by `train()`) reads the tokenizer's
    `model_max_length`, capped at 512, and truncates. Text pairs (`pairs=True`) are truncated, as in training:
    a saved sliding window does not apply to them (an explicit `sliding_window=True` does, and
    `encode_windows` rejects it).

    Example:
        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(max_length=24, sliding_window=True, window_stride=4, window_aggregation="max")
        >>> resolve_preprocessing(config, tokenizer)
        Preprocessing(max_length=24, sliding_window=True, stride=4, aggregate='max')
        >>> resolve_preprocessing(config, tokenizer, max_length=64, pairs=True)
        Preprocessing(max_length=64, sliding_window=False, stride=None, aggregate='max')
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
    if aggregate is None:
        aggregate = getattr(config, "window_aggregation", None) or "max"
    if aggregate not in ("max", "mean"):
        raise ValueError(f"`aggregate` must be 'max' or 'mean', got {aggregate!r}.")
    if pairs and sliding_window is None:
        return Preprocessing(int(max_length), False, None, aggregate)  # pairs are truncated, as in training
    saved_windows = bool(getattr(config, "sliding_window", False))
    if sliding_window is None:
        sliding_window = saved_windows
    if (
        stride is None
        and sliding_window
        and saved_windows
        and max_length == getattr(config, "max_length", None)
    ):
        # the saved overlap belongs to the saved window length
        stride = getattr(config, "window_stride", None)
    return Preprocessing(int(max_length), bool(sliding_window), stride, aggregate)


def check_window_stride(
    tokenizer: PreTrainedTokenizerBase, max_length: int | None, stride: Any, name: str = "stride"
) -> int:
    """Check the tokens neighbouring windows share: an int >= 0 under the text tokens of a window.

    A window of `max_length` tokens holds `max_length - tokenizer.num_special_tokens_to_add(pair=False)`
    tokens of text (8 of 10 for BERT's ``[CLS] ... [SEP]``); neighbours can share at most one fewer.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): A Hugging Face tokenizer.
        max_length (`int`, *optional*): Tokens per window (default: the tokenizer's `model_max_length`).
        stride (`int`): The tokens neighbouring windows share.
        name (`str`, *optional*, defaults to `"stride"`): The argument's name, for the error message.

    Returns:
        `int`: `stride`.

    Raises:
        ValueError: If `stride` is not an int, is negative, or is not under the text tokens of a window.

    Example:
        >>> check_window_stride(tokenizer, 10, 7)  # BERT: 8 text tokens in 10
        7
    """
    limit = (max_length or tokenizer.model_max_length) - tokenizer.num_special_tokens_to_add(pair=False)
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or not 0 <= stride < limit:
        raise ValueError(
            f"`{name}` must be an int >= 0 and under the {limit} text tokens of a window (tokens shared by "
            f"neighbouring windows); it must be in [0, {limit - 1}], got {stride!r}"
        )
    return int(stride)


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int | None,
    stride: int | None = None,
    *,
    text_pairs: list[str] | None = None,
    name: str = "stride",
) -> tuple[Any, list[int]]:
    """Tokenize texts without padding: each text truncated to one window, or (with `stride`) cut into windows.

    The one place windows are made, for training (`data.to_dataset`) and prediction (`tokenize_windows`).

    Args:
        tokenizer (`PreTrainedTokenizerBase`): A Hugging Face tokenizer.
        texts (`list[str]`): The texts.
        max_length (`int`, *optional*): Tokens per window (default: the tokenizer's `model_max_length`).
        stride (`int`, *optional*): Cut each text into every window of `max_length` tokens, neighbours sharing
            `stride` tokens (see `check_window_stride`); `None` truncates each text to one window.
        text_pairs (`list[str]`, *optional*): Second texts, one per text; truncated, never windowed.
        name (`str`, *optional*, defaults to `"stride"`): The name of `stride`, for error messages.

    Returns:
        `tuple`: The tokenizer's encoding (``input_ids``, ``attention_mask``, ...: one row per window) and, per
        window, the index of its text.

    Raises:
        ValueError: A bad `stride` (`check_window_stride`), or `stride` with `text_pairs`.

    Example:
        >>> encoded, owner = encode_windows(tokenizer, ["a b c d e f g h i j", "k"], 6, stride=1)
        >>> owner
        [0, 0, 0, 1]
    """
    if stride is None:
        return tokenizer(texts, text_pairs, truncation=True, max_length=max_length), list(range(len(texts)))
    if text_pairs is not None:
        raise ValueError("sliding windows read single long texts; windowing does not apply to text pairs.")
    stride = check_window_stride(tokenizer, max_length, stride, name)
    encoded = tokenizer(
        texts, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True
    )
    return encoded, list(encoded.pop("overflow_to_sample_mapping"))


def tokenize_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    *,
    text_pairs: list[str] | None = None,
    stride: int | None = None,
    sliding_window: bool = False,
) -> tuple[list[dict[str, list[int]]], torch.Tensor]:
    """Unpadded token features per window and, for each window, the index of its text (a long tensor).

    Without `sliding_window` each text (or pair) is one window, truncated to `max_length`; with it, the windows
    of `encode_windows`, neighbours sharing `stride` tokens (default `max_length // 4`).

    Example:
        >>> texts = ["the team won the game vote", "new chip"]
        >>> features, owner = tokenize_windows(tokenizer, texts, 5, sliding_window=True)
        >>> owner
        tensor([0, 0, 0, 1])
        >>> [tokenizer.decode(f["input_ids"]) for f in features[:2]]
        ['[CLS] the team won [SEP]', '[CLS] won the game [SEP]']
    """
    overlap = (stride if stride is not None else max_length // 4) if sliding_window else None
    encoded, owner = encode_windows(tokenizer, texts, max_length, overlap, text_pairs=text_pairs)
    present = [key for key in ("input_ids", "token_type_ids") if key in encoded]
    features = [{key: encoded[key][i] for key in present} for i in range(len(encoded["input_ids"]))]
    return features, torch.tensor(owner, dtype=torch.long)


def aggregate_windows(window_scores: Any, owner: Any, n_texts: int, how: Aggregate) -> torch.Tensor:
    """Per-text scores `(n_texts, num_labels)` from per-window scores: the `"max"` or the `"mean"` of each text's.

    Args:
        window_scores (`torch.Tensor` or array-like): `(n_windows, num_labels)` scores (probabilities).
        owner (`torch.Tensor` or array-like): For each window, the index of its text.
        n_texts (`int`): How many texts.
        how (`str`): `"max"` or `"mean"`.

    Returns:
        `torch.Tensor`: float64 scores, one row per text.

    Example:
        >>> aggregate_windows(torch.tensor([[0.2], [0.6], [0.9]]), torch.tensor([0, 0, 1]), 2, "mean")
        tensor([[0.4000],
                [0.9000]], dtype=torch.float64)
    """
    if how not in ("max", "mean"):
        raise ValueError(f"`aggregate` must be 'max' or 'mean', got {how!r}.")
    scores = torch.as_tensor(window_scores, dtype=torch.float64)
    owner = torch.as_tensor(owner, dtype=torch.long)
    shape = (n_texts, scores.shape[1])
    if how == "max":
        index = owner[:, None].expand_as(scores)
        return torch.full(shape, -torch.inf, dtype=torch.float64).scatter_reduce(0, index, scores, "amax")
    sums = torch.zeros(shape, dtype=torch.float64).index_add_(0, owner, scores)
    return sums / torch.bincount(owner, minlength=n_texts)[:, None]


__all__ = [
    "Aggregate",
    "Preprocessing",
    "aggregate_windows",
    "check_window_stride",
    "encode_windows",
    "resolve_preprocessing",
    "tokenize_windows",
]
