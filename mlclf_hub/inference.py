"""Batched prediction: texts in, per-label probabilities (or label names) out.

Texts are read from any iterable (a list, a generator, an open file, a `datasets` column) in chunks of
`chunk_size` (4,096 by default); each chunk is tokenized without padding, sorted by length and fed in
batches padded only to the longest text of each batch, then put back in input order. Memory stays bounded
by the chunk, whatever the number of texts, and `predict_proba_iter` hands each chunk's probabilities out
as soon as they are computed, to be written as they go.

Prediction never changes the model: a model in train mode (as `train()` without validation data returns it)
is read in eval mode and every submodule's mode is put back after, and predictions from several threads on
one model agree with sequential ones (`eval_mode`).

Long texts can be read through a sliding window whose per-label scores are aggregated. The preprocessing
(`Preprocessing`, `resolve_preprocessing`, `tokenize_windows`, `aggregate_windows`) is defined once in
`processing_multilabel`, which the pipeline shares (and which travels with it as remote code); its names
are importable from here too.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .metrics import binarize, check_thresholds, sigmoid
from .modeling_multilabel import multilabel_loss
from .processing_multilabel import (
    Aggregate,
    Preprocessing,
    TruncationCounter,
    aggregate_windows,
    check_text,
    resolve_preprocessing,
    tokenize_windows,
)

logger = logging.get_logger(__name__)


#: Texts read, tokenized and predicted at a time by `predict_proba_iter` (and so `predict_proba`, `predict`).
DEFAULT_CHUNK_SIZE = 4096


def _check_texts(texts: Sequence[str], first_row: int = 0, field: str = "text") -> list[str]:
    """The texts as a list, each checked to be a string; errors name the row (counted from `first_row`)."""
    if isinstance(texts, str):
        raise TypeError(f"`{field}s` must be a list of strings, got a single str; wrap it in a list: [text].")
    texts = list(texts)
    for row, text in enumerate(texts, start=first_row):
        if not isinstance(text, str):
            raise TypeError(
                f"row {row}, field '{field}': expected a string, got {type(text).__name__} {text!r:.60}."
            )
        check_text(text, f"row {row}, field '{field}'")
    return texts


# ---------------------------------------------------------------------------------------------
# Eval mode without changing the model
# ---------------------------------------------------------------------------------------------


class _ModeGuard:
    """The prediction passes running on one model, and the submodule modes to put back after the last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passes = 0
        self.saved: list[tuple[torch.nn.Module, bool]] = []


_GUARDS: weakref.WeakKeyDictionary[torch.nn.Module, _ModeGuard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


def _guard_of(model: torch.nn.Module) -> _ModeGuard:
    """The model's `_ModeGuard`, shared by a `peft.PeftModel` and the model it wraps (they share modules)."""
    get_base = getattr(model, "get_base_model", None)  # peft's; a PreTrainedModel has none
    base = get_base() if callable(get_base) else model
    key = base if isinstance(base, torch.nn.Module) else model
    with _GUARDS_LOCK:
        guard = _GUARDS.get(key)
        if guard is None:
            guard = _GUARDS[key] = _ModeGuard()
        return guard


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with `model` in eval mode, then put every submodule's mode back as it was.

    A model already in eval mode is not touched. A model in train mode (wholly or in part) is switched
    to eval mode when the first prediction pass begins and switched back, submodule by submodule, when the
    last pass running on it ends: passes from several threads run at once, all in eval mode, and the model
    is left exactly as it was. A `peft.PeftModel` and the model it wraps count as one.

    Example:
        >>> _ = model.train()
        >>> with eval_mode(model):
        ...     model.training
        False
        >>> model.training
        True
        >>> _ = model.eval()
    """
    if not isinstance(model, torch.nn.Module):  # a model run outside torch (ONNX Runtime): no modes to switch
        yield model
        return
    guard = _guard_of(model)
    with guard.lock:
        if guard.passes == 0:
            guard.saved = [(module, module.training) for module in model.modules() if module.training]
            for module, _ in guard.saved:
                module.training = False  # what `module.eval()` does, one module at a time
        guard.passes += 1
    try:
        yield model
    finally:
        with guard.lock:
            guard.passes -= 1
            if guard.passes == 0:
                for module, training in guard.saved:
                    module.training = training
                guard.saved = []


# ---------------------------------------------------------------------------------------------
# Forward passes
# ---------------------------------------------------------------------------------------------


def model_device(model: object) -> torch.device:
    """Where the model's inputs go: its first parameter's device, else its `device` (the CPU for ONNX Runtime).

    Example:
        >>> model_device(model)
        device(type='cpu')
    """
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.device
    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else torch.device("cpu")


# On the CPU a forward pass of more tokens than this is split: measured on all-MiniLM-L6-v2 (2 cores,
# 1,500 debtags texts, max length 128), batches of 64 rows ran at 52.5 texts/s, of 32 at 59.8 and of 16
# at 64.3 (the mean of three interleaved runs each; a plain `Trainer.predict` at batch 64: 35.5). A likely
# cause, not verified: the activations of a long batch of 64 rows (e.g. 64 x 128 x 1536 float32, 50 MB) are
# above glibc's largest mmap threshold (32 MB), so every pass maps and faults them in afresh.
CPU_TOKENS_PER_PASS = 2048


def _passes(lengths: np.ndarray, batch_size: int, token_budget: int | None) -> Iterator[list[int]]:
    """Row indices of each forward pass: longest first, at most `batch_size` rows and, with a `token_budget`,
    at most that many padded tokens (but at least one row)."""
    order = np.argsort(-lengths, kind="stable")  # longest batch first: running out of memory shows at once
    start = 0
    while start < len(order):
        rows = batch_size
        if token_budget is not None:
            rows = max(1, min(batch_size, token_budget // max(int(lengths[order[start]]), 1)))
        yield order[start : start + rows].tolist()
        start += rows


def native_bf16(device: torch.device | str) -> bool:
    """True where bfloat16 matrix products run in hardware: a CPU with AVX512-BF16 or AMX, a CUDA GPU with bf16.

    Elsewhere `torch.autocast(dtype=torch.bfloat16)` still works, but emulated and slower than float32.

    Example:
        >>> isinstance(native_bf16("cpu"), bool)
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu helpers
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@torch.no_grad()
def _forward(
    model: PreTrainedModel,
    features: Sequence[Mapping[str, Sequence[int]]],
    pad: Callable[[list[Mapping[str, Sequence[int]]]], Mapping[str, torch.Tensor]],
    batch_size: int,
    output: Literal["logits", "pooled"],
    on_batch: Callable[[int], None] | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """`batched_forward`'s pass; `on_batch(rows)` is called after each forward pass with its number of rows."""
    lengths = np.array([len(row["input_ids"]) for row in features], dtype=np.int64)
    device = model_device(model)
    budget = CPU_TOKENS_PER_PASS if device.type == "cpu" else None
    rows: list[torch.Tensor | None] = [None] * len(lengths)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with eval_mode(model), autocast:
        for chosen in _passes(lengths, batch_size, budget):
            batch = {key: value.to(device) for key, value in pad([features[i] for i in chosen]).items()}
            values = model.pooled_output(**batch) if output == "pooled" else model(**batch).logits
            for i, value in zip(chosen, values.float().cpu()):
                rows[i] = value
            if on_batch is not None:
                on_batch(len(chosen))
    return torch.stack(rows) if rows else torch.zeros(0)


def batched_forward(
    model: PreTrainedModel,
    features: Sequence[Mapping[str, Sequence[int]]],
    pad: Callable[[list[Mapping[str, Sequence[int]]]], Mapping[str, torch.Tensor]],
    batch_size: int = 64,
    *,
    output: Literal["logits", "pooled"] = "logits",
    progress: str | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """One eval-mode pass over unpadded token features, longest first, padded per batch; rows in input order.

    Args:
        model (`PreTrainedModel`):
            The model; read in eval mode, its modes left as they were (`eval_mode`).
        features (`Sequence[Mapping[str, Sequence[int]]]`):
            One mapping per row (`input_ids`, and `token_type_ids` where the model has them): a list
            of dicts, or a tokenized `datasets.Dataset` holding only those columns.
        pad (`Callable`):
            Pads a list of rows to one batch of tensors (`DataCollatorWithPadding`, or
            `functools.partial(tokenizer.pad, return_tensors="pt")`).
        batch_size (`int`, *optional*, defaults to 64):
            Rows per forward pass; on the CPU, a long batch is split so a pass pads at most
            `CPU_TOKENS_PER_PASS` (2,048) tokens, which measured faster.
        output (`str`, *optional*, defaults to `"logits"`):
            `"logits"` (the model's output logits) or `"pooled"` (`model.pooled_output`, the vectors
            the head reads).
        progress (`str`, *optional*):
            The label of a progress bar over the batches (none when `None`).
        bf16 (`bool`, *optional*, defaults to `False`):
            Run the pass under bfloat16 autocast (`torch.autocast`); the results are still float32. Fast
            where the hardware has bf16 (`native_bf16`), close to the float32 pass but not equal to it.

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
    with tqdm(total=len(features), desc=progress, unit="row", disable=progress is None) as bar:
        return _forward(model, features, pad, batch_size, output, bar.update, bf16=bf16)


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


def _length(values: object) -> int | None:
    """`len(values)` for sized inputs (lists, tuples, arrays, `datasets` columns), else `None`."""
    if isinstance(values, Sized):
        try:
            return len(values)
        except TypeError:
            return None
    return None


_END = object()


def _read_chunks(
    texts: Iterable[str], text_pairs: Iterable[str] | None, chunk_size: int | None
) -> Iterator[tuple[int, list[str], list[str] | None]]:
    """`(first row, texts, pairs)` of at most `chunk_size` rows each, read lazily and checked."""
    rows: Iterator = (
        iter(texts) if text_pairs is None else itertools.zip_longest(texts, text_pairs, fillvalue=_END)
    )
    first = 0
    while True:
        block = list(itertools.islice(rows, chunk_size))
        if not block:
            return
        if text_pairs is None:
            yield first, _check_texts(block, first), None
        else:
            for row, (text, pair) in enumerate(block, start=first):
                if text is _END or pair is _END:
                    ended = "texts" if text is _END else "text pairs"
                    raise ValueError(
                        f"`text_pairs` needs one text per text: the {ended} ended after {row} rows, "
                        "the others go on."
                    )
            yield (
                first,
                _check_texts([text for text, _ in block], first),
                _check_texts([pair for _, pair in block], first, "text_pair"),
            )
        first += len(block)


def _check_chunk_size(chunk_size: int | None) -> None:
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be an int >= 1 or None, got {chunk_size!r}.")


def predict_proba_iter(
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
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    backend: str | None = None,
) -> Iterator[np.ndarray]:
    """Sigmoid probabilities chunk by chunk: one float64 `(rows, num_labels)` array per `chunk_size` texts.

    The texts are read lazily from any iterable (a generator, an open file's lines, a `datasets` column), so
    memory holds one chunk's texts, tokens and probabilities at a time: write each array out as it comes.
    The arguments are those of `predict_proba` (checked here, before anything is read); the arrays, stacked,
    are what `predict_proba` returns.

    Returns:
        `Iterator[np.ndarray]`: The chunks' probabilities, in input order.

    Example:
        >>> texts = (f"text {i}" for i in range(5))  # any iterable, read lazily
        >>> [chunk.shape for chunk in predict_proba_iter(model, tokenizer, texts, chunk_size=2)]
        [(2, 3), (2, 3), (1, 3)]
    """
    if isinstance(texts, str):
        raise TypeError("`texts` must be a list of strings, got a single str; wrap it in a list: [text].")
    if isinstance(text_pairs, str):
        raise TypeError(
            "`text_pairs` must be a list of strings, got a single str; wrap it in a list: [text]."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    _check_chunk_size(chunk_size)
    if backend is not None:
        from .backends import on_backend

        model = on_backend(model, backend)
    total = _length(texts)
    if text_pairs is not None:
        pairs_total = _length(text_pairs)
        if total is not None and pairs_total is not None and pairs_total != total:
            raise ValueError(f"`text_pairs` needs one text per text ({total}), got {pairs_total}.")
    plan = resolve_preprocessing(
        model.config,
        tokenizer,
        max_length=max_length,
        sliding_window=sliding_window,
        stride=stride,
        aggregate=aggregate,
        pairs=text_pairs is not None,
    )
    return _predict_chunks(
        model, tokenizer, texts, text_pairs, plan, batch_size, chunk_size, show_progress, total
    )


def _predict_chunks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    text_pairs: Iterable[str] | None,
    plan: Preprocessing,
    batch_size: int,
    chunk_size: int | None,
    show_progress: bool | None,
    total: int | None,
) -> Iterator[np.ndarray]:
    """`predict_proba_iter`'s generator, its arguments checked."""
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    bar = None
    cut = TruncationCounter()  # one warning per call, after the last chunk
    try:
        for first, chunk, pairs in _read_chunks(texts, text_pairs, chunk_size):
            features, owner = tokenize_windows(
                tokenizer,
                chunk,
                plan.max_length,
                text_pairs=pairs,
                stride=plan.stride,
                sliding_window=plan.sliding_window,
                on_truncated=cut,
            )
            if bar is None and first == 0:
                # on for more than 10 batches: of the whole input when its length is known, else of this
                # chunk, or when the chunk is full (more may follow)
                many = (total if total is not None else len(features)) > 10 * batch_size
                full = total is None and chunk_size is not None and len(chunk) == chunk_size
                if show_progress if show_progress is not None else many or full:
                    bar = tqdm(
                        total=total if not plan.sliding_window else None,
                        desc="Predicting",
                        unit="window" if plan.sliding_window else "text",
                    )
            logits = _forward(
                model, features, pad, batch_size, "logits", bar.update if bar is not None else None
            )
            probs = sigmoid(logits.double().numpy())
            yield aggregate_windows(probs, owner, len(chunk), plan.aggregate).numpy()
        cut.warn(logger)
    finally:
        if bar is not None:
            bar.close()


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
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    backend: str | None = None,
) -> np.ndarray:
    """Sigmoid probabilities `(n_texts, num_labels)` for a list (or any iterable) of texts.

    Args:
        model (`PreTrainedModel`):
            A `MultiLabelModel` (or any model whose output has multi-label `logits`). Read in eval mode and
            left as it was (`eval_mode`): safe to call from several threads on one model.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer.
        texts (`Iterable[str]`):
            The texts: a list, or any iterable (a generator, an open file's lines, a `datasets` column),
            read `chunk_size` at a time. Row order is kept whatever the batching order.
        text_pairs (`Iterable[str]`, *optional*):
            Second texts, one per text, for pair inputs (token type ids kept). Pairs are truncated,
            never windowed: a model saved with `sliding_window` reads pairs truncated by default, and an
            explicit `sliding_window=True` with pairs is a `ValueError`.
        batch_size (`int`, *optional*, defaults to 64):
            Texts (or windows) per forward pass; on the CPU, a long batch is split so a pass pads at most
            `CPU_TOKENS_PER_PASS` (2,048) tokens, which measured faster.
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
        chunk_size (`int`, *optional*, defaults to 4096):
            Texts read, tokenized and length-sorted at a time, so memory is bounded by the chunk and the
            result. `None` reads everything as one chunk: the batches, hence the floats, of a single
            length-sorted pass over all texts (a list under `chunk_size` texts gets them either way).
            To write results as they go instead of holding them, use `predict_proba_iter`.
        backend (`str`, *optional*):
            Run a torch model on another backend (`mlclf_hub.backends`): `"torch"`, `"torch-int8"` (a dynamic
            int8 copy, made on each call: for repeated calls quantize once with
            `AutoModelForMultiLabel.from_pretrained(path, backend="torch-int8")`), `"onnx"` or `"onnx-int8"`
            (the graph exported into the model's directory, `mlclf-hub export`). Default: the model as given
            (a torch model, or an `OnnxMultiLabelModel`).

    Returns:
        `np.ndarray`: float64 probabilities, row `i` for text `i`.

    Example:
        >>> probs = predict_proba(model, tokenizer, ["a text", "another"])
        >>> probs.shape
        (2, 3)
    """
    chunks = predict_proba_iter(
        model,
        tokenizer,
        texts,
        text_pairs=text_pairs,
        batch_size=batch_size,
        max_length=max_length,
        sliding_window=sliding_window,
        stride=stride,
        aggregate=aggregate,
        show_progress=show_progress,
        chunk_size=chunk_size,
        backend=backend,
    )
    num_labels = model.config.num_labels
    total = _length(texts)
    if total is None:  # unknown length: keep the chunks, stack them once
        parts = list(chunks)
        return np.concatenate(parts) if parts else np.zeros((0, num_labels), dtype=np.float64)
    out = np.empty((total, num_labels), dtype=np.float64)  # known length: each chunk goes in its place
    filled = 0
    for part in chunks:
        if filled + len(part) > total:
            raise ValueError(f"`texts` gave more rows than its length ({total}).")
        out[filled : filled + len(part)] = part
        filled += len(part)
    if filled != total:
        raise ValueError(f"`texts` gave {filled} rows, not its length ({total}).")
    return out


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

    The texts are read chunk by chunk (`predict_proba_iter`, which takes the same keywords as `predict_proba`):
    only the label names are kept, never all the probabilities at once.

    Example:
        >>> predict(model, tokenizer, ["the team won"])  # doctest: +SKIP
        [['sports']]
    """
    config = model.config
    cut = check_thresholds(config.thresholds if thresholds is None else thresholds, config.num_labels)
    names = [config.id2label[i] for i in range(config.num_labels)]
    labels: list[list[str]] = []
    for probs in predict_proba_iter(model, tokenizer, texts, **kwargs):
        labels.extend([names[j] for j in np.flatnonzero(row)] for row in binarize(probs, cut))
    return labels


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Preprocessing",
    "aggregate_windows",
    "batched_forward",
    "eval_mode",
    "model_device",
    "native_bf16",
    "predict",
    "predict_proba",
    "predict_proba_iter",
    "probability_loss",
    "resolve_preprocessing",
    "tokenize_windows",
]
