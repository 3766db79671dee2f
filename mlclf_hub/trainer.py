"""Fine-tuning through `transformers.Trainer`: the `train()` entry point.

What it adds to a plain `Trainer` script, each measured on debtags (see `benchmarks/quality.py`):

- The head starts from a linear probe (one-vs-rest logistic regression on the frozen encoder's
  pooled vectors) instead of random weights, and trains with its own, larger learning rate.
  A randomly initialised head collapses to predicting the label frequencies ("predicts nothing").
- A nearest-neighbour memory: after fine-tuning, the training rows' pooled vectors and labels are
  stored with the model, and a text's logits add the label log-odds of its 30 nearest training rows
  (`MultiLabelModel.set_knn_memory`).
- A lexical channel: after fine-tuning, a one-vs-rest logistic regression on the training rows'
  TF-IDF bags of tokens is stored with the model and adds to the logits
  (`MultiLabelModel.set_lexical_model`); it helps the rare labels that hinge on one word.
- Per-label thresholds tuned on the validation split after training, guarded against overfitting
  (`thresholds.tune_thresholds`), and stored in the saved config.

Everything else is the Hugging Face way: `Trainer` with `DataCollatorWithPadding`, length-grouped
batches, `compute_metrics`, `EarlyStoppingCallback`, checkpoints and `resume_from_checkpoint`;
`accelerate` picks the device and runs the same code under `torchrun` / `accelerate launch`.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import CommitInfo
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging

from .auto import AutoModelForMultiLabel
from .configuration_multilabel import MultiLabelConfig
from .data import LabelSpace, infer_label_space, to_dataset, to_rows
from .hub import ModelCardCallback, MultiLabelModelCardData, card_writer, create_hub_repo, push_to_hub
from .inference import predict_proba, probability_loss
from .metrics import make_compute_metrics, multilabel_metrics, sigmoid
from .modeling_multilabel import MultiLabelModel, lexical_token_weights
from .sampling import repeat_factor_indices
from .saving import save_model
from .thresholds import ThresholdResult, heldout_metrics, tune_thresholds

logger = logging.get_logger(__name__)

HEAD_INITS = ("linear_probe", "keep")


@dataclass
class MultiLabelTrainingArguments(TrainingArguments):
    """`TrainingArguments` with multi-label settings and defaults chosen from measured runs.

    Example:
        >>> args = MultiLabelTrainingArguments(output_dir="out", num_train_epochs=2)  # doctest: +SKIP
        >>> args.head_learning_rate, args.head_init  # doctest: +SKIP
        (0.001, 'linear_probe')
    """

    output_dir: str | None = field(
        default="mlclf-model", metadata={"help": "Where checkpoints and the final model go."}
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Learning rate of the encoder."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "Evaluation batch size per device."}
    )
    eval_strategy: str = field(
        default="epoch",
        metadata={
            "help": "When to evaluate on the validation data: 'no', 'steps' or 'epoch' (ignored without it)."
        },
    )
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Warmup steps (int) or ratio of all steps (float < 1)."}
    )
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay (not on biases and norms)."}
    )
    logging_steps: float = field(default=50, metadata={"help": "Log the training loss every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept on disk."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "'group_by_length' batches texts of similar length (less padding)."},
    )
    metric_for_best_model: str | None = field(
        default="f1_micro",
        metadata={"help": "Metric for early stopping and the best checkpoint (any compute_metrics key)."},
    )
    max_length: int = field(default=128, metadata={"help": "Tokens per text; longer texts are truncated."})
    sliding_window_stride: int | None = field(
        default=None,
        metadata={
            "help": "Train on every window of max_length tokens of a long training text (each with the "
            "text's labels), neighbouring windows sharing this many tokens (None: truncate)."
        },
    )
    head_learning_rate: float | None = field(
        default=1e-3,
        metadata={"help": "Learning rate of the classification head (None: same as learning_rate)."},
    )
    head_init: str = field(
        default="linear_probe",
        metadata={
            "help": "'linear_probe': fit the head on frozen pooled vectors before fine-tuning (skipped when "
            "the model is already a trained multi-label model); 'keep': keep the model's current head as it "
            "is (random for a new head on an encoder)."
        },
    )
    probe_c: float = field(
        default=1.0, metadata={"help": "Inverse L2 strength of the linear probe (as scikit-learn's C)."}
    )
    pooling: str | None = field(
        default=None,
        metadata={"help": "'cls', 'mean' or 'max'; default mean for sentence-transformers checkpoints."},
    )
    # `list[float] | str | None`: the Python API takes a list, HfArgumentParser hands the CLI a str.
    pos_weight: list[float] | str | None = field(
        default=None,
        metadata={
            "help": "Positive-class weights of the loss: 'auto' (negatives/positives per label, clipped at "
            "max_pos_weight) or one positive number per label, comma-separated ('1.5,2,3'); default none."
        },
    )
    max_pos_weight: float = field(default=10.0, metadata={"help": "Upper clip of pos_weight='auto'."})
    repeat_factor_threshold: float | None = field(
        default=None,
        metadata={
            "help": "Repeat-factor sampling: rows of labels on fewer than this fraction of the training "
            "rows repeat sqrt(threshold / fraction) times per epoch (None: off)."
        },
    )
    focal_gamma: float = field(
        default=0.0, metadata={"help": "Focal-loss gamma; 0 is plain binary cross-entropy."}
    )
    knn_neighbors: int = field(
        default=30,
        metadata={
            "help": "After training, store the training rows as a nearest-neighbour memory and add the "
            "label log-odds of this many nearest rows to the logits (0: no memory)."
        },
    )
    knn_max_rows: int = field(
        default=20_000,
        metadata={
            "help": "Most training rows kept in the memory (a seeded random subset beyond that). Its float16 "
            "vectors take rows x hidden x 2 bytes: 31 MB for a 768-hidden encoder at 20,000 rows."
        },
    )
    knn_weight: float = field(
        default=0.5, metadata={"help": "Weight of the memory's log-odds in the logits."}
    )
    knn_temperature: float = field(
        default=20.0, metadata={"help": "Softmax temperature over the neighbours' cosine similarities."}
    )
    lexical_weight: float = field(
        default=0.5,
        metadata={
            "help": "After training, fit a logistic regression on the training rows' TF-IDF bags of tokens "
            "and add this weight times its scores to the logits (0: no lexical channel)."
        },
    )
    lexical_c: float = field(
        default=30.0, metadata={"help": "Inverse L2 strength of the lexical channel (as scikit-learn's C)."}
    )
    tune_thresholds: bool = field(
        default=True,
        metadata={"help": "Tune global and per-label thresholds on the validation split after training."},
    )
    threshold_min_positives: int = field(
        default=10,
        metadata={"help": "A label's threshold moves off the global one only with this many positives."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after N evaluations without improvement of metric_for_best_model."},
    )
    early_stopping_threshold: float = field(
        default=0.0, metadata={"help": "Minimum improvement that counts."}
    )

    @staticmethod
    def _parse_pos_weight(value: Any) -> list[float] | str | None:
        """`pos_weight` as given (None, 'auto', a list, or the CLI's text '1.5,2') -> None, 'auto' or floats.

        Example:
            >>> parse = MultiLabelTrainingArguments._parse_pos_weight
            >>> parse("1.5,2"), parse([1, 2]), parse("auto")
            ([1.5, 2.0], [1.0, 2.0], 'auto')
        """
        if value is None or value == "auto":
            return value
        expected = "'auto', a list of positive numbers (one per label) or None"
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",")]
            try:
                value = [float(part) for part in parts]
            except ValueError:
                raise ValueError(
                    f"`pos_weight` must be {expected}; as text 'auto' or comma-separated numbers such as "
                    f"'1.5,2,3', got {value!r:.100}."
                ) from None
        if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
            raise ValueError(f"`pos_weight` must be {expected}, got {value!r:.100}.")
        weights = []
        for i, w in enumerate(value):
            number = isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(
                w, (bool, np.bool_)
            )
            if not (number and np.isfinite(w) and w > 0):
                raise ValueError(f"`pos_weight` must be {expected}; value {i} is {w!r:.50}.")
            weights.append(float(w))
        return weights

    def __post_init__(self) -> None:
        # Decided before `TrainingArguments.__post_init__`, which fills a None itself: a user's value stays.
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith(("loss", "hamming_loss"))
        super().__post_init__()
        self.pos_weight = self._parse_pos_weight(self.pos_weight)
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"`head_init` must be one of {HEAD_INITS}, got {self.head_init!r}.")
        if self.max_length < 8:
            raise ValueError(f"`max_length` must be >= 8 tokens, got {self.max_length}.")
        stride = self.sliding_window_stride
        if stride is not None and not 0 <= stride < self.max_length:
            raise ValueError(
                f"`sliding_window_stride` must be >= 0 and under max_length ({self.max_length}), got {stride}."
            )
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ValueError(f"`head_learning_rate` must be > 0, got {self.head_learning_rate}.")
        if self.repeat_factor_threshold is not None and not 0 < self.repeat_factor_threshold <= 1:
            raise ValueError(
                f"`repeat_factor_threshold` must be in (0, 1] or None, got {self.repeat_factor_threshold}."
            )
        if min(self.knn_neighbors, self.knn_weight, self.knn_temperature, self.knn_max_rows) < 0:
            raise ValueError(
                "`knn_neighbors`, `knn_max_rows`, `knn_weight` and `knn_temperature` must be >= 0, got "
                f"{self.knn_neighbors}, {self.knn_max_rows}, {self.knn_weight} and {self.knn_temperature}."
            )
        if not (self.lexical_weight >= 0 and self.lexical_c > 0):
            raise ValueError(
                f"`lexical_weight` must be >= 0 and `lexical_c` > 0, got {self.lexical_weight} and {self.lexical_c}."
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"`early_stopping_patience` must be >= 1, got {self.early_stopping_patience}.")


@dataclass
class TrainResult:
    """What `train()` returns: the trained model and everything measured on the way.

    Attributes:
        eval_metrics: `multilabel_metrics(..., per_label=True)` on the validation rows at the saved
            thresholds, plus `eval_loss`. With `tune_thresholds` those thresholds were tuned on the same
            rows, so these figures are in-sample (optimistic); empty without validation data.
        heldout_metrics: The same metrics with the thresholds held out (`thresholds.cross_fitted_metrics`):
            tuned on one half of the validation rows, scored on the other, both ways. None when thresholds
            were not tuned, or the split is too small to cut (`heldout_skipped` says which).
        heldout_skipped: Why `heldout_metrics` is None (None when they were measured).
        thresholds: What `tune_thresholds` found (None when not tuned).
        eval_probabilities: The validation probabilities `(rows, labels)` the thresholds were tuned on.
        output_dir: Where the model was saved (None with `save=False`).
        hub_commit: The commit of the push to the Hub (`args.push_to_hub`), else None.

    Example:
        >>> result = train(encoder_dir, train_rows, eval_rows)  # doctest: +SKIP
        >>> result.eval_metrics["f1_micro"], result.heldout_metrics["f1_micro"]  # doctest: +SKIP
        (0.68, 0.67)
    """

    model: MultiLabelModel
    tokenizer: PreTrainedTokenizerBase
    trainer: Trainer
    label_space: LabelSpace
    global_step: int
    train_metrics: dict[str, float]
    eval_metrics: dict[str, Any] = field(default_factory=dict)
    heldout_metrics: dict[str, Any] | None = None
    heldout_skipped: str | None = None
    thresholds: ThresholdResult | None = None
    eval_probabilities: np.ndarray | None = None
    output_dir: str | None = None
    card_data: MultiLabelModelCardData | None = None
    hub_commit: CommitInfo | None = None


class MultiLabelTrainer(Trainer):
    """`Trainer` whose optimizer gives the classification head its own learning rate.

    Evaluation and prediction also keep the dataset's row order: transformers 5.24 reuses the
    length-grouped sampler of `train_sampling_strategy="group_by_length"` for evaluation, which
    returns `predict()` rows shuffled (metrics stay right, per-row outputs do not line up).
    """

    def _get_eval_sampler(self, eval_dataset: Any) -> torch.utils.data.Sampler | None:
        if eval_dataset is None or self.args.world_size > 1:
            return super()._get_eval_sampler(eval_dataset)
        return torch.utils.data.SequentialSampler(eval_dataset)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        if head_lr is None or getattr(optimizer, "_mlclf_head_group", False):
            return optimizer
        opt_model = self.model if model is None else model
        head = {id(p) for name, p in opt_model.named_parameters() if _is_head_parameter(name)}
        moved: list[torch.nn.Parameter] = []
        for group in optimizer.param_groups:
            moved += [p for p in group["params"] if id(p) in head]
            group["params"] = [p for p in group["params"] if id(p) not in head]
        if moved:
            optimizer.add_param_group({"params": moved, "lr": head_lr, "weight_decay": 0.0})
        optimizer._mlclf_head_group = True
        return optimizer


def _is_head_parameter(name: str) -> bool:
    return name.startswith("classifier.") or ".classifier." in name


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


@torch.no_grad()
def pooled_features(
    model: MultiLabelModel, dataset: Any, collator: Any, batch_size: int = 64, progress: str | None = None
) -> torch.Tensor:
    """Pooled encoder vectors `(n, hidden)` of a tokenized dataset, in row order, without gradients.

    `progress` is the label of a progress bar over the batches (none when `None`).
    """
    features = [None] * len(dataset)
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names]
    rows = dataset.select_columns(columns)
    try:
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
            chosen = order[start : start + batch_size].tolist()
            batch = collator([rows[i] for i in chosen])
            batch = {k: v.to(device) for k, v in batch.items() if k in columns}
            pooled = model.pooled_output(**batch).float().cpu()
            for i, vector in zip(chosen, pooled):
                features[i] = vector
    finally:
        model.train(was_training)
    return torch.stack(features)


def fit_linear_probe(
    features: torch.Tensor,
    targets: torch.Tensor,
    c: float = 1.0,
    max_iter: int = 500,
    history_size: int = 100,
    progress: str | None = None,
) -> tuple:
    """One-vs-rest L2 logistic regression (all labels at once) by L-BFGS.

    Minimises, per label, `sum BCE + ||w||^2 / (2 c)` on the raw features, exactly as
    scikit-learn's `LogisticRegression(C=c)` does. Dense features are standardised for conditioning,
    with the penalty expressed on the raw weights, so the result is the raw-feature solution (a head of
    moderate size, not one that explodes the gradients). Sparse features (a `torch.sparse_coo` tensor,
    such as TF-IDF bags) are used as they are. `history_size` is L-BFGS's memory (lower it for many
    features: each iteration costs `history_size` passes over the weights). `progress` labels a
    progress bar over the loss evaluations (none when `None`).

    Returns:
        `(weight (L, H), bias (L,))` for a linear layer on raw `features`.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        >>> w, b = fit_linear_probe(x, torch.tensor([[0.0], [0.0], [1.0], [1.0]]))
        >>> bool(w[0, 0] > 0)
        True
    """
    if features.is_sparse:
        x = features.double().coalesce()
        x_t = x.t().coalesce()
        mean = torch.zeros(x.shape[1], dtype=torch.float64)
        std = torch.ones(x.shape[1], dtype=torch.float64)
    else:
        mean = features.double().mean(0)
        std = features.double().std(0).nan_to_num(1.0).clamp(min=1e-6)  # one row: no spread to scale by
        x = (features.double() - mean) / std
        x_t = x.T
    y = targets.double()
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=torch.float64)
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


def _label_matrix(dataset: Any) -> np.ndarray:
    """The multi-hot `labels` column of a tokenized dataset as one `(rows, num_labels)` array."""
    return np.asarray(dataset.with_format("numpy")["labels"][:])


def _features_and_labels(
    model: MultiLabelModel, dataset: Any, collator: Any, batch_size: int, progress: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled vectors `(n, hidden)` and float multi-hot labels `(n, num_labels)` of a tokenized dataset."""
    features = pooled_features(model, dataset, collator, batch_size, progress=progress)
    return features, torch.tensor(_label_matrix(dataset), dtype=torch.float32)


def init_head_from_linear_probe(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    c: float = 1.0,
    batch_size: int = 64,
    show_progress: bool = False,
) -> None:
    """Set the head to a linear probe fitted on the frozen encoder's pooled vectors of `dataset`."""
    logger.info(f"Fitting the head as a linear probe on {len(dataset)} frozen pooled vectors (C={c}).")
    progress = "Encoding for the linear probe" if show_progress else None
    features, targets = _features_and_labels(model, dataset, collator, batch_size, progress)
    weight, bias = fit_linear_probe(features, targets, c=c)
    with torch.no_grad():
        model.classifier.weight.copy_(weight.to(model.classifier.weight))
        model.classifier.bias.copy_(bias.to(model.classifier.bias))


def build_knn_memory(
    model: MultiLabelModel,
    dataset: Any,
    collator: Any,
    neighbors: int = 30,
    weight: float = 0.5,
    temperature: float = 20.0,
    batch_size: int = 64,
    show_progress: bool = False,
    max_rows: int | None = None,
    seed: int = 42,
    key_dtype: str = "float16",
) -> None:
    """Store the pooled vectors and labels of a tokenized, labelled `dataset` as the model's memory.

    With more than `max_rows` rows, a random `max_rows` of them (`dataset.shuffle(seed)`, as `train()`
    picks them under `knn_max_rows`) are kept, with a warning. The vectors are stored as `key_dtype`.

    Example:
        >>> build_knn_memory(model, train_set, collator, max_rows=20_000)  # doctest: +SKIP
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
        *_features_and_labels(model, dataset, collator, batch_size, progress), key_dtype=key_dtype
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
    c: float = 30.0,
    weight: float = 0.5,
    show_progress: bool = False,
) -> None:
    """Fit and store the model's lexical channel on a tokenized, labelled `dataset`.

    One-vs-rest logistic regression (`fit_linear_probe`, inverse strength `c`) on the rows' TF-IDF
    bags of tokens; its intercepts are dropped, so a text with no known token adds nothing.

    Example:
        >>> fit_lexical_model(model, train_set, special_ids=tokenizer.all_special_ids)  # doctest: +SKIP
    """
    token_rows = dataset["input_ids"]
    vocab, idf = lexical_vocabulary(token_rows, special_ids)
    logger.info(f"Fitting the lexical channel on {len(token_rows)} rows and {len(vocab)} tokens (C={c}).")
    if len(vocab) == 0:
        model.clear_lexical_model()
        return
    labels = torch.tensor(_label_matrix(dataset), dtype=torch.float32)
    progress = "Fitting the lexical channel" if show_progress else None
    bags = lexical_bags(token_rows, vocab, idf)
    coef, _ = fit_linear_probe(bags, labels, c=c, max_iter=100, history_size=10, progress=progress)
    model.set_lexical_model(vocab, idf, coef.T.contiguous())
    model.config.lexical_weight = float(weight)


def _check_precision(args: TrainingArguments) -> None:
    if args.fp16 and not torch.cuda.is_available():
        raise ValueError(
            "fp16=True needs a CUDA GPU and none is available here; drop fp16, or use bf16=True (supported on CPU)."
        )
    if args.bf16 and torch.cuda.is_available() and not args.use_cpu and not torch.cuda.is_bf16_supported():
        raise ValueError("bf16=True is not supported by this GPU; use fp16=True instead.")


def _prepare_eval_settings(args: MultiLabelTrainingArguments, has_eval: bool) -> list[TrainerCallback]:
    """Align evaluation, saving and early stopping with whether validation data exists."""
    if not has_eval:
        if args.early_stopping_patience is not None or args.load_best_model_at_end:
            raise ValueError(
                "early stopping / load_best_model_at_end need validation data: pass `eval_data`, "
                "or drop early_stopping_patience and load_best_model_at_end."
            )
        args.eval_strategy = "no"
        return []
    if args.early_stopping_patience is None:
        return []
    if args.eval_strategy == "no":
        raise ValueError(
            f"early_stopping_patience={args.early_stopping_patience} needs evaluations: "
            "set eval_strategy to 'epoch' or 'steps', or drop early_stopping_patience."
        )
    args.load_best_model_at_end = True
    args.save_strategy = args.eval_strategy
    if args.eval_strategy == "steps":
        args.save_steps = args.eval_steps or args.save_steps
    # `greater_is_better` is the user's, or decided from the metric in MultiLabelTrainingArguments.
    return [EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold)]


def _load_model(
    model_name_or_path: str | os.PathLike | MultiLabelModel,
    label_space: LabelSpace,
    args: MultiLabelTrainingArguments,
) -> MultiLabelModel:
    if isinstance(model_name_or_path, MultiLabelModel):
        model = model_name_or_path
    else:
        model = AutoModelForMultiLabel.from_pretrained(
            model_name_or_path,
            labels=label_space.names,
            pooling=args.pooling,
            focal_gamma=args.focal_gamma,
        )
    if model.config.labels != label_space.names:
        raise ValueError(
            f"The model's labels {model.config.labels!r:.200} differ from the data's {label_space.names!r:.200}; "
            "pass `labels=model.config.labels` or start from the encoder."
        )
    model.config.focal_gamma = args.focal_gamma
    return model


def _record_preprocessing(config: MultiLabelConfig, args: MultiLabelTrainingArguments) -> None:
    """Save the training length (and windows) in the config: prediction uses them by default.

    Thresholds, the memory and the lexical channel are fitted on texts cut at `args.max_length`; a model
    read at another length (the tokenizer's 512, say) would apply them to inputs they never saw.
    """
    config.max_length = int(args.max_length)
    config.sliding_window = args.sliding_window_stride is not None
    config.window_stride = args.sliding_window_stride


def _resolve_labels(labels: Sequence[str] | LabelSpace | None, rows: list[Any]) -> LabelSpace:
    if isinstance(labels, LabelSpace):
        return labels
    if labels is not None:
        return LabelSpace(list(labels))
    return infer_label_space(*rows)


def train(
    model_name_or_path: str | os.PathLike | MultiLabelModel,
    train_data: Any,
    eval_data: Any = None,
    *,
    labels: Sequence[str] | LabelSpace | None = None,
    args: MultiLabelTrainingArguments | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    callbacks: list[TrainerCallback] | None = None,
    resume_from_checkpoint: str | bool | None = None,
    text_column: str = "text",
    label_column: str = "labels",
    text_pair_column: str | None = None,
    save: bool = True,
    card_data: MultiLabelModelCardData | None = None,
) -> TrainResult:
    """Fine-tune a multi-label classifier, tune its thresholds and save it.

    Args:
        model_name_or_path: An encoder checkpoint (directory or Hub id), a trained multi-label
            model, or a `MultiLabelModel` instance.
        train_data: Rows with text and labels: a DataFrame, a list of `(text, labels)`, a list of
            dicts, a `datasets.Dataset` or a path to JSONL / CSV / Parquet (see `data.to_rows`).
        eval_data: Validation rows in the same forms; used for evaluation, early stopping and
            threshold tuning.
        labels: The label names in order; default: the sorted union of the labels in the data.
        args: `MultiLabelTrainingArguments`; defaults are the measured ones.
        tokenizer: Defaults to the checkpoint's own tokenizer.
        callbacks: Extra `TrainerCallback`s.
        resume_from_checkpoint: `True` (latest in `args.output_dir`) or a checkpoint path.
        text_column, label_column, text_pair_column: Column names in the input.
        save: Save the final model (weights, tokenizer, remote code, card) to `args.output_dir`.
        card_data: What the model card says beyond what training records (name, dataset, license).

    Returns:
        A `TrainResult` with the model, the metrics at the tuned thresholds and the thresholds.

    Example:
        >>> from mlclf_hub import load_sample, train
        >>> result = train(minilm_dir, load_sample("train"), load_sample("validation"))  # doctest: +SKIP
        >>> result.eval_metrics["f1_micro"]  # doctest: +SKIP
        0.66
    """
    args = args or MultiLabelTrainingArguments()
    _check_precision(args)
    columns = {"text_column": text_column, "label_column": label_column, "text_pair_column": text_pair_column}
    train_rows = to_rows(train_data, split="train", **columns)
    eval_rows = to_rows(eval_data, split="validation", **columns) if eval_data is not None else None
    label_space = _resolve_labels(labels, [r for r in (train_rows, eval_rows) if r is not None])
    if tokenizer is None:
        source = (
            model_name_or_path.name_or_path
            if isinstance(model_name_or_path, MultiLabelModel)
            else model_name_or_path
        )
        tokenizer = AutoTokenizer.from_pretrained(source)
    train_set = to_dataset(
        train_rows,
        tokenizer,
        label_space,
        max_length=args.max_length,
        split="train",
        window_stride=args.sliding_window_stride,
    )
    eval_set = None
    if eval_rows is not None:
        eval_set = to_dataset(
            eval_rows, tokenizer, label_space, max_length=args.max_length, split="validation"
        )

    model = _load_model(model_name_or_path, label_space, args)
    _record_preprocessing(model.config, args)
    hub_repo = None
    if args.push_to_hub and args.process_index == 0:  # the repo exists (or the push fails) before training
        repo_id = args.hub_model_id or Path(args.output_dir).absolute().name
        hub_repo = create_hub_repo(repo_id, token=args.hub_token, private=args.hub_private_repo)
    # Fitted after training on the final encoder: evaluations while it trains see the head alone.
    model.clear_knn_memory()
    model.clear_lexical_model()
    train_labels = _label_matrix(train_set)
    if args.pos_weight == "auto":
        model.config.pos_weight = compute_pos_weight(train_labels, args.max_pos_weight)
    elif isinstance(args.pos_weight, (list, tuple)):
        if len(args.pos_weight) != len(label_space.names):
            raise ValueError(
                f"`pos_weight` needs one value per label ({len(label_space.names)}), got {len(args.pos_weight)}."
            )
        model.config.pos_weight = [float(w) for w in args.pos_weight]
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None)
    if (
        args.head_init == "linear_probe"
        and not resume_from_checkpoint
        and not _is_saved_multilabel(model_name_or_path)
    ):
        init_head_from_linear_probe(
            model,
            train_set,
            collator,
            c=args.probe_c,
            batch_size=args.per_device_eval_batch_size,
            show_progress=not args.disable_tqdm,
        )

    memory_set = train_set
    if args.repeat_factor_threshold is not None:
        indices = repeat_factor_indices(train_labels, args.repeat_factor_threshold, seed=args.seed)
        logger.info(
            f"Repeat-factor sampling (threshold {args.repeat_factor_threshold}): "
            f"{len(train_set)} training rows -> {len(indices)} per epoch."
        )
        train_set = train_set.select(indices)

    extra_callbacks = _prepare_eval_settings(args, eval_set is not None)
    card_data = card_data if card_data is not None else MultiLabelModelCardData()
    extra_callbacks.append(ModelCardCallback(card_data))
    trainer = MultiLabelTrainer(
        model=model,
        args=_without_hub_push(args),
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(0.5, label_space.names),
        callbacks=[*extra_callbacks, *(callbacks or [])],
    )
    output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    # The parts fitted on the training rows as they are (not repeated by repeat-factor sampling).
    if args.lexical_weight > 0:
        fit_lexical_model(
            trainer.model,
            memory_set,
            tokenizer.all_special_ids,
            c=args.lexical_c,
            weight=args.lexical_weight,
            show_progress=not args.disable_tqdm,
        )
    if args.knn_neighbors > 0 and args.knn_max_rows > 0:
        build_knn_memory(
            trainer.model,
            memory_set,
            collator,
            max_rows=args.knn_max_rows,
            seed=args.seed,
            neighbors=args.knn_neighbors,
            weight=args.knn_weight,
            temperature=args.knn_temperature,
            batch_size=args.per_device_eval_batch_size,
            show_progress=not args.disable_tqdm,
        )
    result = TrainResult(
        model=trainer.model,
        tokenizer=tokenizer,
        trainer=trainer,
        label_space=label_space,
        global_step=output.global_step,
        train_metrics=dict(output.metrics),
        card_data=card_data,
    )
    if eval_set is not None:
        _evaluate_and_tune(result, eval_set, args, eval_texts=list(eval_rows["text"]))
        card_data.set_eval_metrics(
            result.eval_metrics,
            thresholds=result.model.config.thresholds,
            tuned=result.thresholds is not None,
        )
        card_data.set_heldout_metrics(result.heldout_metrics, skipped=result.heldout_skipped)
    if save and trainer.is_world_process_zero():
        writers = [card_writer(result.model, card_data)]
        result.output_dir = str(save_model(result.model, args.output_dir, tokenizer, extra_writers=writers))
    if hub_repo is not None:
        # The Trainer ran with push_to_hub off (`_without_hub_push`): one commit, with our card, at the end.
        result.hub_commit = push_to_hub(
            result.model,
            hub_repo,
            tokenizer=tokenizer,
            card_data=card_data,
            private=args.hub_private_repo,
            token=args.hub_token,
            revision=args.hub_revision,
        )
    return result


def _is_saved_multilabel(model_name_or_path: Any) -> bool:
    """True for the path of a saved multi-label model (its head is trained: no linear probe)."""
    if isinstance(model_name_or_path, MultiLabelModel):
        return False
    try:
        return isinstance(AutoConfig.from_pretrained(model_name_or_path), MultiLabelConfig)
    except (OSError, ValueError):
        return False


def _without_hub_push(args: MultiLabelTrainingArguments) -> MultiLabelTrainingArguments:
    """The arguments the `Trainer` gets: with `push_to_hub` off, so that `train()` pushes once at the end.

    transformers' Trainer would create the repo at start-up, push every checkpoint and write its own
    model card; `train()` instead pushes the final model with tuned thresholds and our card in one commit
    (to `hub_model_id`, else the output directory's name, with `hub_token`, `hub_private_repo` and
    `hub_revision`). The caller's `args` are left as they are.
    """
    if not args.push_to_hub:
        return args
    trainer_args = copy.copy(args)
    trainer_args.push_to_hub = False
    return trainer_args


def _evaluate_and_tune(
    result: TrainResult, eval_set: Any, args: MultiLabelTrainingArguments, eval_texts: list[str] | None = None
) -> None:
    """Validation probabilities -> tuned thresholds in the config -> metrics at those thresholds.

    A model trained on sliding windows is read through windows by default (the saved contract), so its
    validation probabilities are those of `predict_proba` over the windows of `eval_texts`, aggregated.

    With `tune_thresholds`, also the held-out (cross-fitted) metrics, when the split is large enough to
    cut in two halves `tune_thresholds` can run on (else `heldout_skipped` says why).
    """
    config = result.model.config
    if config.sliding_window and eval_texts is not None:
        y_true = _label_matrix(eval_set).astype(np.int64)
        probs = predict_proba(
            result.model,
            result.tokenizer,
            eval_texts,
            batch_size=args.per_device_eval_batch_size,
            show_progress=False if args.disable_tqdm else None,
        )
        eval_loss = probability_loss(probs, y_true, config)  # of the aggregated windows, as the metrics
    else:
        prediction = result.trainer.predict(eval_set, metric_key_prefix="eval")
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        probs = sigmoid(np.asarray(logits, dtype=np.float64))
        y_true = np.asarray(prediction.label_ids).astype(np.int64)
        eval_loss = float(prediction.metrics.get("eval_loss", float("nan")))
    tuning = {"min_positives": args.threshold_min_positives}
    rows, folds = len(y_true), 3  # tune_thresholds' n_folds
    result.heldout_metrics, result.heldout_skipped = None, None
    if not args.tune_thresholds:
        result.heldout_skipped = (
            "the thresholds were not tuned on the validation rows (tune_thresholds=False)"
        )
    elif rows < folds:
        result.heldout_skipped = (
            f"the validation split has {rows} rows, too few to tune thresholds on ({folds})"
        )
        logger.warning(f"Thresholds not tuned: {result.heldout_skipped}.")
    else:
        result.thresholds = tune_thresholds(
            y_true, probs, label_names=config.labels, seed=args.seed, **tuning
        )
        config.thresholds = [float(t) for t in result.thresholds.thresholds]
    metrics = multilabel_metrics(
        y_true, probs, thresholds=config.thresholds, label_names=config.labels, per_label=True
    )
    metrics["eval_loss"] = eval_loss
    result.eval_metrics = metrics
    result.eval_probabilities = probs
    if result.heldout_skipped is not None:
        return
    result.heldout_metrics, result.heldout_skipped = heldout_metrics(
        y_true, probs, label_names=config.labels, seed=args.seed, per_label=True, **tuning
    )
    if result.heldout_metrics is None:
        logger.warning(f"No held-out metrics: {result.heldout_skipped}.")
    else:
        logger.info(
            f"Validation micro-F1 {metrics['f1_micro']:.4f} in-sample (thresholds tuned and scored on the same "
            f"rows), {result.heldout_metrics['f1_micro']:.4f} held out (cross-fitted on two halves)."
        )


__all__ = [
    "MultiLabelTrainer",
    "MultiLabelTrainingArguments",
    "TrainResult",
    "build_knn_memory",
    "compute_pos_weight",
    "fit_lexical_model",
    "fit_linear_probe",
    "init_head_from_linear_probe",
    "train",
]
