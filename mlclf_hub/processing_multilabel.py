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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging

logger = logging.get_logger(__name__)

Aggregate = Literal["max", "mean"]

#: Encoder families whose position ids start after the padding id (RoBERTa's layout): `max_position_embeddings`
#: minus `pad_token_id + 1` positions are left for tokens (514 -> 512 for roberta-base).
PADDING_OFFSET_POSITIONS = frozenset(
    {
        "camembert",
        "data2vec-text",
        "ibert",
        "longformer",
        "luke",
        "markuplm",
        "mpnet",
        "roberta",
        "roberta-prelayernorm",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)


def max_positions(config: object) -> int | None:
    """The most tokens the model's encoder reads at once (its absolute position table), or None when unbounded.

    `config` is a `MultiLabelConfig` (its `backbone_config` is read) or an encoder's config. Encoders with
    rotary or relative positions only (ModernBERT; DeBERTa-v3, with `position_biased_input=False`) have no
    table and give None.

    Example:
        >>> from transformers import BertConfig, RobertaConfig
        >>> max_positions(BertConfig(max_position_embeddings=64)), max_positions(RobertaConfig(max_position_embeddings=514))
        (64, 512)
    """
    backbone = getattr(config, "backbone_config", None) or config
    size = getattr(backbone, "max_position_embeddings", None)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        return None
    if any(
        getattr(backbone, name, None) is not None
        for name in ("rope_parameters", "rope_theta", "rope_scaling")
    ):
        return None
    if getattr(backbone, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None
    if getattr(backbone, "position_biased_input", True) is False:
        return None
    if getattr(backbone, "model_type", None) in PADDING_OFFSET_POSITIONS:
        size -= int(getattr(backbone, "pad_token_id", None) or 0) + 1
    return size if size > 0 else None


def check_text(text: str, where: str) -> str:
    r"""`text`, or a `ValueError` naming `where` when it cannot be encoded as UTF-8.

    Only a lone surrogate (``"\ud800"``: what a JSON escape or `errors="surrogateescape"` can leave) cannot be;
    the tokenizer rejects it with an unclear `TypeError`.

    Example:
        >>> check_text("café", "text 0")
        'café'
        >>> check_text("a " + chr(0xD800) + " b", "text 0")
        Traceback (most recent call last):
        ...
        ValueError: text 0: a lone surrogate '\ud800' at character 2 cannot be encoded as UTF-8; remove or replace it (text.encode('utf-8', errors='replace').decode() makes it '?').
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{where}: a lone surrogate {text[err.start : err.end]!r} at character {err.start} cannot be encoded as "
            "UTF-8; remove or replace it (text.encode('utf-8', errors='replace').decode() makes it '?')."
        ) from None
    return text


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
    `model_max_length`, capped at 512 and at what the model's position table holds (`max_positions`), and
    truncates. A `max_length` asked for that the model cannot read (above `max_positions`) is a `ValueError` naming
    the limit. The saved length (also when passed as `max_length`) is read within the limit: `train()` refuses
    texts longer than the model reads, so a model saved at 128 tokens on 64 positions was trained on at most 64.
    Text pairs (`pairs=True`) are truncated, as in training:
    a saved sliding window does not apply to them (an explicit `sliding_window=True` does, and
    `encode_windows` rejects it).

    Example:
        >>> from types import SimpleNamespace
        >>> config = SimpleNamespace(max_length=24, sliding_window=True, window_stride=4, window_aggregation="max")
        >>> resolve_preprocessing(config, tokenizer)
        Preprocessing(max_length=24, sliding_window=True, stride=4, aggregate='max')
        >>> resolve_preprocessing(config, tokenizer, max_length=64, pairs=True)
        Preprocessing(max_length=64, sliding_window=False, stride=None, aggregate='max')
        >>> resolve_preprocessing(model.config, tokenizer)  # untrained: at most 512, and this model's 64 positions
        Preprocessing(max_length=64, sliding_window=False, stride=None, aggregate='max')
        >>> resolve_preprocessing(model.config, tokenizer, max_length=100)
        Traceback (most recent call last):
        ...
        ValueError: `max_length` is 100 tokens but the model reads at most 64 tokens (its position table, `max_position_embeddings`); pass max_length <= 64, or sliding_window=True to read longer texts whole, as overlapping windows.
    """
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
        raise TypeError(
            f"`max_length` must be an int or None, got {type(max_length).__name__} {max_length!r}."
        )
    limit = max_positions(config)
    reads = f"the model reads at most {limit} tokens (its position table, `max_position_embeddings`)"
    if max_length is not None and max_length == getattr(config, "max_length", None):
        max_length = None  # the training length, asked for by name: the saved contract, read as below
    if max_length is not None:
        if max_length < 3:
            raise ValueError(f"`max_length` must be >= 3 tokens, got {max_length}.")
        if limit is not None and max_length > limit:
            raise ValueError(
                f"`max_length` is {max_length} tokens but {reads}; pass max_length <= {limit}, or "
                "sliding_window=True to read longer texts whole, as overlapping windows."
            )
    else:  # the saved length, read within the position table (a saved 128 on 64 positions reads 64)
        max_length = getattr(config, "max_length", None)
        if max_length is not None and limit is not None:
            max_length = min(max_length, limit)
    if max_length is None:  # the tokenizer's limit, at most 512 and what the model reads
        max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512, limit or 512)
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


def count_truncated(
    encoded: Any,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int | None,
    text_pairs: list[str] | None = None,
) -> int:
    """How many texts (or pairs) lost tokens to truncation in `encoded`, their truncated encoding (one row each).

    A fast tokenizer records what it cut (`Encoding.overflowing`), so counting costs nothing; otherwise only the
    rows that came out at the full `max_length` are tokenized again, whole, to see whether they were longer.

    Example:
        >>> texts = ["the team won the game", "new chip"]
        >>> count_truncated(tokenizer(texts, truncation=True, max_length=5), tokenizer, texts, 5)
        1
    """
    encodings = getattr(encoded, "encodings", None)
    if encodings is not None:
        return sum(1 for encoding in encodings if encoding.overflowing)
    limit = max_length or tokenizer.model_max_length
    full = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) >= limit]
    if not full:
        return 0
    pairs = None if text_pairs is None else [text_pairs[i] for i in full]
    whole = tokenizer([texts[i] for i in full], pairs, truncation=False)["input_ids"]
    return sum(1 for ids in whole if len(ids) > limit)


class TruncationCounter:
    """Counts the texts `tokenize_windows` truncated over one prediction call; `warn()` says so once.

    Pass it as `tokenize_windows(..., on_truncated=counter)` for each chunk (or text) of a call, then call
    `counter.warn()` when the call is done: one warning, with how many texts were cut and how to read them whole.

    Example:
        >>> counter = TruncationCounter()
        >>> _ = tokenize_windows(tokenizer, ["the team won the game", "new chip"], 5, on_truncated=counter)
        >>> counter.cut, counter.texts
        (1, 2)
        >>> print(counter.message())
        1 of 2 texts was longer than max_length=5 tokens and was truncated: only its first 5 tokens were read. Pass sliding_window=True to read long texts whole (as overlapping windows whose scores are aggregated).
    """

    def __init__(self) -> None:
        self.cut = 0
        self.texts = 0
        self.max_length: int | None = None
        self.pairs = False

    def __call__(self, cut: int, texts: int, max_length: int, pairs: bool = False) -> None:
        """Record one `tokenize_windows` call: `cut` of its `texts` were truncated at `max_length`."""
        self.cut += int(cut)
        self.texts += int(texts)
        self.max_length = max_length
        self.pairs = self.pairs or pairs

    def message(self) -> str | None:
        """The warning's text, or None when nothing was cut."""
        if not self.cut:
            return None
        one = self.cut == 1
        was, its = ("was", "its") if one else ("were", "their")
        what = "text pair" if self.pairs else "text"
        cut = (
            f"{self.cut} of {self.texts} {what}{'' if self.texts == 1 else 's'} {was} longer than max_length="
        )
        cut += f"{self.max_length} tokens and {was} truncated: only {its} first {self.max_length} tokens were read."
        if self.pairs:
            return (
                f"{cut} Text pairs are never read as windows: pass a larger max_length (up to what the model reads) "
                "to keep more of them."
            )
        return f"{cut} Pass sliding_window=True to read long texts whole (as overlapping windows whose scores are aggregated)."

    def warn(self, warn_logger: Any = None) -> None:
        """Log `message()` once as a warning (on `warn_logger`, else this module's logger), if anything was cut."""
        text = self.message()
        if text is not None:
            (warn_logger or logger).warning(text)


def tokenize_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    *,
    text_pairs: list[str] | None = None,
    stride: int | None = None,
    sliding_window: bool = False,
    on_truncated: Callable[..., None] | None = None,
) -> tuple[list[dict[str, list[int]]], torch.Tensor]:
    """Unpadded token features per window and, for each window, the index of its text (a long tensor).

    Without `sliding_window` each text (or pair) is one window, truncated to `max_length`; with it, the windows
    of `encode_windows`, neighbours sharing `stride` tokens (default `max_length // 4`). Without windows,
    `on_truncated` (a `TruncationCounter`) is told how many texts were cut:
    `on_truncated(cut, len(texts), max_length, text_pairs is not None)`.

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
    if on_truncated is not None and overlap is None:
        cut = count_truncated(encoded, tokenizer, texts, max_length, text_pairs)
        on_truncated(cut, len(texts), max_length, text_pairs is not None)
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
    "PADDING_OFFSET_POSITIONS",
    "Aggregate",
    "Preprocessing",
    "TruncationCounter",
    "aggregate_windows",
    "check_text",
    "check_window_stride",
    "count_truncated",
    "encode_windows",
    "max_positions",
    "resolve_preprocessing",
    "tokenize_windows",
]
