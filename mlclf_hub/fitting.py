"""What `train()` fits by closed-form or convex solves rather than by gradient steps on the encoder.

- `fit_linear_probe`: one-vs-rest L2 logistic regression by L-BFGS (dense or sparse features), scikit-learn's
  objective.
- Before fine-tuning, `init_head_from_linear_probe`: the head starts as a linear probe on the frozen encoder's
  pooled vectors instead of random weights (a random head collapses to predicting the label frequencies).
- After fine-tuning, `fit_after_training`: the lexical channel (`fit_lexical_model`, a logistic regression on
  the training rows' TF-IDF bags of tokens, `MultiLabelModel.set_lexical_model`) and the nearest-neighbour
  memory (`build_knn_memory`: the training rows' pooled vectors and labels, `MultiLabelModel.set_knn_memory`).
- `compute_pos_weight`: the loss's `pos_weight="auto"`.

The model file holds the apply side of each part (self-contained, for remote code); this module the fit.
Each is measured on debtags in `benchmarks/README.md`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging

from .configuration_multilabel import MultiLabelConfig
from .inference import batched_forward, model_device, native_bf16
from .modeling_multilabel import MultiLabelModel, lexical_token_weights
from .training_args import MultiLabelTrainingArguments

logger = logging.get_logger(__name__)


def compute_pos_weight(labels: np.ndarray, max_weight: float = 10.0) -> list[float]:
    """Per-label `negatives / positives`, clipped to `[1, max_weight]` (labels never seen get `max_weight`).

    Example:
        >>> compute_pos_weight(np.array([[1, 0], [0, 0], [0, 0], [1, 1]]))
        [1.0, 3.0]
    """
    positives = np.asarray(labels, dtype=np.float64).sum(axis=0)
    negatives = labels.shape[0] - positives
    ratio = np.where(positives > 0, negatives / np.maximum(positives, 1), max_weight)
    return [float(w) for w in np.clip(ratio, 1.0, max_weight)]


def dataset_forward(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    batch_size: int = 64,
    output: str = "logits",
    progress: str | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """Logits (or pooled vectors) `(n, ...)` of a tokenized dataset, in row order, without gradients.

    One `inference.batched_forward` pass over the dataset's model inputs (its `labels` column is not
    read): in eval mode, on the model's device, longest batches first, each padded by `collator` only to
    its own longest row. `progress` is the label of a progress bar over the batches (none when `None`);
    `bf16` runs it under bfloat16 autocast.

    Example:
        >>> dataset_forward(model, train_set, collator).shape
        torch.Size([3, 3])
    """
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names]
    rows = dataset.select_columns(columns)
    return batched_forward(model, rows, collator, batch_size, output=output, progress=progress, bf16=bf16)


def pooled_features(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    batch_size: int = 64,
    progress: str | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """Pooled encoder vectors `(n, hidden)` of a tokenized dataset, in row order (`dataset_forward`).

    Example:
        >>> pooled_features(model, train_set, collator).shape
        torch.Size([3, 32])
    """
    return dataset_forward(
        model, dataset, collator, batch_size, output="pooled", progress=progress, bf16=bf16
    )


def fit_linear_probe(
    features: torch.Tensor,
    targets: torch.Tensor,
    c: float = 1.0,
    max_iter: int = 500,
    history_size: int = 100,
    progress: str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple:
    """One-vs-rest L2 logistic regression (all labels at once) by L-BFGS.

    Minimises, per label, `sum BCE + ||w||^2 / (2 c)` on the raw features, exactly as
    scikit-learn's `LogisticRegression(C=c)` does. Dense features are standardised for conditioning,
    with the penalty expressed on the raw weights, so the result is the raw-feature solution (a head of
    moderate size, not one that explodes the gradients). Sparse features (a `torch.sparse_coo` tensor,
    such as TF-IDF bags) are used as they are.

    Args:
        features (`torch.Tensor`):
            `(rows, H)` inputs, dense or `torch.sparse_coo`.
        targets (`torch.Tensor`):
            `(rows, L)` multi-hot labels (floats).
        c (`float`, *optional*, defaults to 1.0):
            Inverse L2 strength, as scikit-learn's `C`.
        max_iter (`int`, *optional*, defaults to 500):
            L-BFGS iterations at the most.
        history_size (`int`, *optional*, defaults to 100):
            L-BFGS's memory; lower it for many features (each iteration costs `history_size` passes over
            the weights).
        progress (`str`, *optional*):
            The label of a progress bar over the loss evaluations (none when `None`).
        dtype (`torch.dtype`, *optional*, defaults to `torch.float64`):
            The solver's precision; `torch.float32` halves its memory (L-BFGS keeps `2 * history_size`
            copies of the weights) and time.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `(weight (L, H), bias (L,))` for a linear layer on raw
        `features`.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        >>> w, b = fit_linear_probe(x, torch.tensor([[0.0], [0.0], [1.0], [1.0]]))
        >>> bool(w[0, 0] > 0)
        True
    """
    if features.is_sparse:
        x = features.to(dtype).coalesce()
        x_t = x.t().coalesce()
        mean = torch.zeros(x.shape[1], dtype=dtype)
        std = torch.ones(x.shape[1], dtype=dtype)
    else:
        mean = features.to(dtype).mean(0)
        std = features.to(dtype).std(0).nan_to_num(1.0).clamp(min=1e-6)  # one row: no spread to scale by
        x = (features.to(dtype) - mean) / std
        x_t = x.T
    y = targets.to(dtype)
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=dtype)
    prior = y.mean(0).clamp(1e-4, 1 - 1e-4)
    bias = torch.log(prior / (1 - prior))
    penalty_scale = 1 / (std.pow(2) * c)
    optimizer = torch.optim.LBFGS(
        [weight.requires_grad_(), bias.requires_grad_()],
        max_iter=max_iter,
        history_size=history_size,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    bar = tqdm(total=optimizer.defaults["max_eval"], desc=progress, unit="step", disable=progress is None)

    @torch.no_grad()
    def closure() -> torch.Tensor:
        bar.update(1)
        # sum of BCE = sum(softplus(z) - y z); its gradient in z is sigmoid(z) - y (no autograd graph).
        logits = x @ weight.T + bias
        residual = torch.sigmoid(logits) - y
        weight.grad = (x_t @ residual).T.contiguous() + weight * penalty_scale
        bias.grad = residual.sum(0)
        loss = torch.nn.functional.softplus(logits).sum() - (y * logits).sum()
        return loss + (weight.pow(2) * penalty_scale).sum() / 2

    optimizer.step(closure)
    bar.close()
    raw_weight = weight.detach() / std
    raw_bias = bias.detach() - (raw_weight * mean).sum(1)
    return raw_weight.float(), raw_bias.float()


def label_matrix(dataset: Any) -> np.ndarray:
    """The multi-hot `labels` column of a tokenized dataset as one `(rows, num_labels)` array.

    Example:
        >>> from datasets import Dataset
        >>> label_matrix(Dataset.from_dict({"labels": [[1.0, 0.0], [0.0, 1.0]]})).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    return np.asarray(dataset.with_format("numpy")["labels"][:])


def _features_and_labels(
    model: MultiLabelModel, dataset: Any, collator: Any, batch_size: int, progress: str | None, bf16: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled vectors `(n, hidden)` and float multi-hot labels `(n, num_labels)` of a tokenized dataset."""
    features = pooled_features(model, dataset, collator, batch_size, progress=progress, bf16=bf16)
    return features, torch.tensor(label_matrix(dataset), dtype=torch.float32)


def init_head_from_linear_probe(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    c: float = MultiLabelTrainingArguments.probe_c,
    batch_size: int = 64,
    show_progress: bool = False,
) -> None:
    """Set the head to a linear probe fitted on the frozen encoder's pooled vectors of `dataset`.

    Args:
        model (`MultiLabelModel`):
            The model whose `classifier` is overwritten; the encoder is only read.
        dataset (`datasets.Dataset`):
            Tokenized, labelled training rows (`data.to_dataset`).
        collator (`DataCollatorWithPadding`):
            Pads the rows to batches for the encoding pass.
        c (`float`, *optional*, defaults to 1.0):
            Inverse L2 strength of the probe (`fit_linear_probe`; `probe_c` in `train()`).
        batch_size (`int`, *optional*, defaults to 64):
            Rows per forward pass.
        show_progress (`bool`, *optional*, defaults to `False`):
            A progress bar over the encoding ("Encoding for the linear probe").

    Example:
        >>> import copy
        >>> probe = copy.deepcopy(model)  # the shared example model stays as it is
        >>> init_head_from_linear_probe(probe, train_set, collator, c=1.0)
        >>> [round(b, 2) for b in probe.classifier.bias.tolist()]  # random encoder: the prior, 1 row in 3
        [-0.69, -0.69, -0.69]
    """
    weight, bias = linear_probe_head(
        model, dataset, collator, c=c, batch_size=batch_size, show_progress=show_progress
    )
    set_head(model, weight, bias)


def linear_probe_head(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    c: float = MultiLabelTrainingArguments.probe_c,
    batch_size: int = 64,
    show_progress: bool = False,
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear probe `init_head_from_linear_probe` sets, as `(weight (L, H), bias (L,))`; the model is only read.

    With `bf16` the encoding pass runs under bfloat16 autocast (what `train()` does where the hardware has bf16).

    Example:
        >>> weight, bias = linear_probe_head(model, train_set, collator)
        >>> tuple(weight.shape), tuple(bias.shape)
        ((3, 32), (3,))
    """
    logger.info(f"Fitting the head as a linear probe on {len(dataset)} frozen pooled vectors (C={c}).")
    progress = "Encoding for the linear probe" if show_progress else None
    features, targets = _features_and_labels(model, dataset, collator, batch_size, progress, bf16)
    # 100 L-BFGS steps: measured on debtags, the probe's validation LRAP and F1 are as high as after 500
    # (0.632 / 0.498 against 0.630 / 0.489), at a fifth of the time; it only starts the head.
    return fit_linear_probe(features, targets, c=c, max_iter=100)


def set_head(model: MultiLabelModel, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Copy `(weight, bias)` into the model's `classifier`, on its device and in its dtype.

    Example:
        >>> import copy
        >>> other = copy.deepcopy(model)
        >>> set_head(other, torch.zeros(3, 32), torch.ones(3))
        >>> other.classifier.bias.tolist()
        [1.0, 1.0, 1.0]
    """
    with torch.no_grad():
        model.classifier.weight.copy_(weight.to(model.classifier.weight))
        model.classifier.bias.copy_(bias.to(model.classifier.bias))


def build_knn_memory(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    *,
    max_rows: int | None = None,
    seed: int = 42,
    neighbors: int = MultiLabelConfig.knn_neighbors,
    weight: float = MultiLabelConfig.knn_weight,
    temperature: float = MultiLabelConfig.knn_temperature,
    key_dtype: str = "float16",
    batch_size: int = 64,
    show_progress: bool = False,
    bf16: bool = False,
) -> None:
    """Store the pooled vectors and labels of a tokenized, labelled `dataset` as the model's memory.

    With more than `max_rows` rows, a random `max_rows` of them (`dataset.shuffle(seed)`, as `train()`
    picks them under `knn_max_rows`) are kept, with a warning. The vectors are stored as `key_dtype`.

    Args:
        model (`MultiLabelModel`):
            The model that stores the memory (`set_knn_memory`) and its settings in its config.
        dataset (`datasets.Dataset`):
            Tokenized, labelled training rows (`data.to_dataset`).
        collator (`DataCollatorWithPadding`):
            Pads the rows to batches for the encoding pass.
        max_rows (`int`, *optional*):
            Most rows kept (all when `None`).
        seed (`int`, *optional*, defaults to 42):
            Seed of the subset beyond `max_rows`.
        neighbors (`int`, *optional*, defaults to 30):
            Neighbours a text looks up (`config.knn_neighbors`, >= 1).
        weight (`float`, *optional*, defaults to 0.5):
            Weight of the neighbours' label log-odds in the logits (`config.knn_weight`).
        temperature (`float`, *optional*, defaults to 20.0):
            Softmax temperature over the neighbours' cosine similarities (`config.knn_temperature`).
        key_dtype (`str`, *optional*, defaults to `"float16"`):
            `"float16"` or `"float32"` vectors.
        batch_size (`int`, *optional*, defaults to 64):
            Rows per forward pass.
        show_progress (`bool`, *optional*, defaults to `False`):
            A progress bar over the encoding ("Encoding the memory"); `train()` shows it unless
            `disable_tqdm`.
        bf16 (`bool`, *optional*, defaults to `False`):
            Encode under bfloat16 autocast (`train()`'s `bf16_fitting_passes`); the keys are then within
            bf16 rounding of the float32 ones, and stored as `key_dtype` either way.

    Example:
        >>> import copy
        >>> memo = copy.deepcopy(model)  # the shared example model stays as it is
        >>> build_knn_memory(memo, train_set, collator, max_rows=20_000)
        >>> memo.config.knn_memory_size
        3
    """
    if max_rows is not None and len(dataset) > max_rows:
        hidden = model.classifier.in_features
        size = max_rows * (hidden * (2 if key_dtype == "float16" else 4) + model.config.num_labels) / 1e6
        logger.warning(
            f"The nearest-neighbour memory keeps a random {max_rows:,} of the {len(dataset):,} training rows "
            f"(knn_max_rows={max_rows}; {size:.0f} MB saved with the model); raise knn_max_rows to keep more."
        )
        dataset = dataset.shuffle(seed=seed).select(range(max_rows))
    logger.info(f"Storing {len(dataset)} training rows as the nearest-neighbour memory (k={neighbors}).")
    progress = "Encoding the memory" if show_progress else None
    model.set_knn_memory(
        *_features_and_labels(model, dataset, collator, batch_size, progress, bf16), key_dtype=key_dtype
    )
    model.config.knn_neighbors = int(neighbors)
    model.config.knn_weight = float(weight)
    model.config.knn_temperature = float(temperature)


def lexical_vocabulary(
    token_rows: Sequence[Sequence[int]], special_ids: Sequence[int] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """The token ids of `token_rows` (without `special_ids`), sorted, and their smoothed idf.

    The idf is scikit-learn's: `ln((1 + rows) / (1 + rows holding the token)) + 1`.

    Example:
        >>> lexical_vocabulary([[101, 5, 6, 102], [101, 5, 102]], special_ids=[101, 102])
        (tensor([5, 6]), tensor([1.0000, 1.4055]))
    """
    ignored = set(special_ids)
    document_frequency: Counter[int] = Counter()
    for ids in token_rows:
        document_frequency.update(set(ids) - ignored)
    vocab = sorted(document_frequency)
    df = torch.tensor([document_frequency[t] for t in vocab], dtype=torch.float64)
    idf = torch.log((1 + len(token_rows)) / (1 + df)) + 1
    return torch.tensor(vocab, dtype=torch.long), idf.float()


def lexical_bags(
    token_rows: Sequence[Sequence[int]], vocab: torch.Tensor, idf: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """The `lexical_features` of every row, as a sparse `(rows, len(vocab))` tensor.

    Built from `lexical_token_weights`, so no dense `(rows, len(vocab))` tensor is ever made.

    Example:
        >>> vocab, idf = lexical_vocabulary([[5, 6], [5]])
        >>> lexical_bags([[5, 6], [5]], vocab, idf).to_dense().shape
        torch.Size([2, 2])
    """
    rows, columns, values = [], [], []
    for start in range(0, len(token_rows), batch_size):
        chunk = token_rows[start : start + batch_size]
        width = max((len(ids) for ids in chunk), default=0)
        ids = torch.full((len(chunk), max(width, 1)), -1, dtype=torch.long)
        for i, row in enumerate(chunk):
            ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        position, weight = lexical_token_weights(ids, ids >= 0, vocab, idf)
        row_index, column = (weight > 0).nonzero(as_tuple=True)
        rows.append(row_index + start)
        columns.append(position[row_index, column])
        values.append(weight[row_index, column])
    indices = (
        torch.stack([torch.cat(rows), torch.cat(columns)]) if rows else torch.zeros(2, 0, dtype=torch.long)
    )
    data = torch.cat(values) if values else torch.zeros(0)
    # duplicate (row, token) entries, one per occurrence, add up to the token's bag value
    shape = (len(token_rows), len(vocab))
    return torch.sparse_coo_tensor(indices, data, shape, check_invariants=True).coalesce()


def fit_lexical_model(
    model: MultiLabelModel,
    dataset: Any,
    special_ids: Sequence[int] = (),
    c: float = MultiLabelTrainingArguments.lexical_c,
    weight: float = MultiLabelConfig.lexical_weight,
    show_progress: bool = False,
) -> None:
    """Fit and store the model's lexical channel on a tokenized, labelled `dataset`.

    One-vs-rest logistic regression (`fit_linear_probe`, inverse strength `c`) on the rows' TF-IDF
    bags of tokens; its intercepts are dropped, so a text with no known token adds nothing.

    Args:
        model (`MultiLabelModel`):
            The model that stores the channel (`set_lexical_model`) and `config.lexical_weight`.
        dataset (`datasets.Dataset`):
            Tokenized, labelled training rows (`data.to_dataset`).
        special_ids (`Sequence[int]`, *optional*, defaults to `()`):
            Token ids kept out of the vocabulary (`tokenizer.all_special_ids`).
        c (`float`, *optional*, defaults to 30.0):
            Inverse L2 strength of the regression.
        weight (`float`, *optional*, defaults to 0.5):
            Weight of the channel's scores in the logits.
        show_progress (`bool`, *optional*, defaults to `False`):
            A progress bar over the solver's steps ("Fitting the lexical channel").

    Example:
        >>> import copy
        >>> from mlclf_hub.inference import predict
        >>> lexical = copy.deepcopy(model)  # the shared example model stays as it is
        >>> fit_lexical_model(lexical, train_set, special_ids=tokenizer.all_special_ids)
        >>> lexical.config.lexical_vocab_size
        8
        >>> predict(lexical, tokenizer, ["the game", "new chip"])
        [['sports'], ['tech']]
    """
    token_rows = dataset["input_ids"]
    vocab, idf = lexical_vocabulary(token_rows, special_ids)
    logger.info(f"Fitting the lexical channel on {len(token_rows)} rows and {len(vocab)} tokens (C={c}).")
    if len(vocab) == 0:
        model.clear_lexical_model()
        return
    labels = torch.tensor(label_matrix(dataset), dtype=torch.float32)
    progress = "Fitting the lexical channel" if show_progress else None
    bags = lexical_bags(token_rows, vocab, idf)
    # float32: the same validation LRAP as float64 (0.608) at 40% of the time and half the solver's memory
    coef, _ = fit_linear_probe(
        bags, labels, c=c, max_iter=100, history_size=10, progress=progress, dtype=torch.float32
    )
    model.set_lexical_model(vocab, idf, coef.T.contiguous())
    model.config.lexical_weight = float(weight)


def bf16_fitting_passes(args: MultiLabelTrainingArguments, device: torch.device) -> bool:
    """Whether the probe's and the memory's encoding passes run under bf16 autocast on `device`.

    `args.bf16_fitting_passes` when it is set; else with `args.bf16`, or on a CPU that computes bf16 natively
    (`native_bf16`). On an accelerator the passes are a small part of the job and stay as the model is,
    unless `bf16` or `bf16_fitting_passes` say otherwise.

    Example:
        >>> args = MultiLabelTrainingArguments(output_dir="out", bf16_fitting_passes=False)
        >>> bf16_fitting_passes(args, torch.device("cpu"))
        False
    """
    if args.bf16_fitting_passes is not None:
        return bool(args.bf16_fitting_passes)
    return bool(args.bf16) or (device.type == "cpu" and native_bf16(device))


def fit_after_training(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    tokenizer: PreTrainedTokenizerBase,
    args: MultiLabelTrainingArguments,
) -> None:
    """Fit what joins the logits after fine-tuning, on the final encoder and the training rows, as `args` say.

    First the lexical channel (`fit_lexical_model` with `lexical_c` and `lexical_weight`; none with
    `lexical_weight=0`), then the nearest-neighbour memory (`build_knn_memory` of at most `knn_max_rows`
    rows, with `knn_neighbors`, `knn_weight`, `knn_temperature` and `seed`; none with `knn_weight=0` or
    `knn_max_rows=0`), encoded under bf16 autocast as `bf16_fitting_passes` decides. Progress bars unless
    `disable_tqdm`.

    Args:
        model (`MultiLabelModel`):
            The fine-tuned model; the parts are stored on it (`set_lexical_model`, `set_knn_memory`).
        dataset (`datasets.Dataset`):
            The tokenized, labelled training rows (`data.to_dataset`).
        collator (`DataCollatorWithPadding`):
            Pads the rows to batches for the memory's encoding pass.
        tokenizer (`PreTrainedTokenizerBase`):
            Its special tokens stay out of the lexical channel's vocabulary.
        args (`MultiLabelTrainingArguments`):
            The settings above, and `per_device_eval_batch_size` for the encoding pass.

    Example:
        >>> import copy
        >>> fitted = copy.deepcopy(model)  # the shared example model stays as it is
        >>> args = MultiLabelTrainingArguments(output_dir="out", disable_tqdm=True)
        >>> fit_after_training(fitted, train_set, collator, tokenizer, args)
        >>> fitted.config.knn_memory_size, fitted.config.lexical_vocab_size
        (3, 8)
    """
    show_progress = not args.disable_tqdm
    if args.lexical_weight > 0:
        lexical = {"c": args.lexical_c, "weight": args.lexical_weight, "show_progress": show_progress}
        fit_lexical_model(model, dataset, tokenizer.all_special_ids, **lexical)
    if args.knn_weight > 0 and args.knn_max_rows > 0:
        vote = {
            "neighbors": args.knn_neighbors,
            "weight": args.knn_weight,
            "temperature": args.knn_temperature,
        }
        rows = {
            "max_rows": args.knn_max_rows,
            "seed": args.seed,
            "batch_size": args.per_device_eval_batch_size,
        }
        bf16 = bf16_fitting_passes(args, model_device(model))
        build_knn_memory(model, dataset, collator, **vote, **rows, show_progress=show_progress, bf16=bf16)


#: The config fields `fit_after_training` sets beside the tables.
_FITTED_CONFIG = (
    "knn_memory_size",
    "knn_key_dtype",
    "knn_neighbors",
    "knn_weight",
    "knn_temperature",
    "lexical_vocab_size",
    "lexical_weight",
)
_FITTED_TABLES = ("knn_keys", "knn_values", "lexical_vocab", "lexical_idf", "lexical_coef")


def fitted_tables(model: MultiLabelModel) -> dict[str, Any]:
    """What `fit_after_training` stored on `model` (the memory's and the lexical channel's tables, on the CPU,
    and their config fields), to hand to `set_fitted_tables` on another copy of the model.

    Example:
        >>> sorted(fitted_tables(model)["tables"])
        ['knn_keys', 'knn_values', 'lexical_coef', 'lexical_idf', 'lexical_vocab']
    """
    return {
        "tables": {name: getattr(model, name).detach().cpu() for name in _FITTED_TABLES},
        "config": {name: getattr(model.config, name) for name in _FITTED_CONFIG},
    }


def set_fitted_tables(model: MultiLabelModel, fitted: dict[str, Any]) -> None:
    """Store `fitted_tables(...)` of another copy of the model on `model` (on its device).

    Example:
        >>> import copy
        >>> other = copy.deepcopy(model)
        >>> set_fitted_tables(other, fitted_tables(model))
        >>> other.config.knn_memory_size == model.config.knn_memory_size
        True
    """
    device = model.classifier.weight.device
    model._set_tables(**{name: table.to(device) for name, table in fitted["tables"].items()})
    for name, value in fitted["config"].items():
        setattr(model.config, name, value)


__all__ = [
    "bf16_fitting_passes",
    "build_knn_memory",
    "compute_pos_weight",
    "dataset_forward",
    "fit_after_training",
    "fit_lexical_model",
    "fit_linear_probe",
    "fitted_tables",
    "init_head_from_linear_probe",
    "label_matrix",
    "lexical_bags",
    "lexical_vocabulary",
    "linear_probe_head",
    "pooled_features",
    "set_fitted_tables",
    "set_head",
]
