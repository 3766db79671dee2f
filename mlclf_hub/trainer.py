"""Fine-tuning through `transformers.Trainer`: `MultiLabelTrainer` and the `train()` entry point.

`train()` validates and tokenizes the rows (`data.py`), starts the head from a linear probe and gives it
its own learning rate, fine-tunes with `MultiLabelTrainer`, fits the nearest-neighbour memory and the lexical
channel on the final encoder (`fitting.py`), tunes per-label thresholds on the validation split
(`thresholds.py`) and saves the model with its card (`hub.py`). Its settings are
`MultiLabelTrainingArguments` (`training_args.py`).

Everything else is the Hugging Face way: `Trainer` with `DataCollatorWithPadding`, length-grouped
batches, `compute_metrics`, `EarlyStoppingCallback`, checkpoints and `resume_from_checkpoint`;
`accelerate` picks the device and runs the same code under `torchrun` / `accelerate launch`.
"""

from __future__ import annotations

import copy
import errno
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.compute as pc
import torch
from huggingface_hub import CommitInfo
from transformers import (
    AutoConfig,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging

from .adapters import (
    add_adapter,
    is_adapter_checkpoint,
    is_peft_model,
    load_adapter_model,
    resolve_peft_config,
)
from .attention import attention_dropout
from .auto import AutoModelForMultiLabel, load_tokenizer
from .configuration_multilabel import MultiLabelConfig
from .data import LabelSpace, infer_label_space, to_dataset, to_rows
from .fitting import (
    bf16_fitting_passes,
    build_knn_memory,
    compute_pos_weight,
    dataset_forward,
    fit_after_training,
    fit_lexical_model,
    fit_linear_probe,
    fitted_tables,
    init_head_from_linear_probe,
    label_matrix,
    linear_probe_head,
    set_fitted_tables,
    set_head,
)
from .heap import ReturnFreedMemoryCallback, return_freed_memory
from .hub import ModelCardCallback, MultiLabelModelCardData, card_writer, create_hub_repo, push_to_hub
from .inference import model_device, predict_proba, probability_loss
from .metrics import make_compute_metrics, multilabel_metrics, sigmoid
from .modeling_multilabel import MultiLabelModel, multilabel_loss
from .processing_multilabel import max_positions
from .saving import save_model
from .thresholds import ThresholdResult, heldout_metrics, min_cross_fit_rows, tune_thresholds
from .training_args import MultiLabelTrainingArguments

logger = logging.get_logger(__name__)


@dataclass
class TrainResult:
    """What `train()` returns: the trained model and everything measured on the way.

    Attributes:
        model: The trained `MultiLabelModel`; with `use_peft` / `peft_config` a `peft.PeftModel` wrapping it
            (`adapters.merge_adapter` folds the adapter in).
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

    model: Any  # MultiLabelModel, or a peft.PeftModel of one
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


def _check_precision(args: TrainingArguments) -> None:
    if args.fp16 and not torch.cuda.is_available():
        raise ValueError(
            "fp16=True needs a CUDA GPU and none is available here; drop fp16, or use bf16=True (supported on CPU)."
        )
    if args.bf16 and torch.cuda.is_available() and not args.use_cpu and not torch.cuda.is_bf16_supported():
        raise ValueError("bf16=True is not supported by this GPU; use fp16=True instead.")


def _nearest_existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _can_write_in(directory: Path) -> OSError | None:
    """None when a file can be created in `directory` (tried: permissions, read-only mounts, quotas), else why."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as err:
        return err


def check_output_dir(output_dir: str | os.PathLike | None) -> None:
    """A `ValueError` naming `output_dir` unless the model and checkpoints can be written there; creates nothing.

    `output_dir` may not exist yet (it and its parents are made when training starts), but the path must not be
    or pass through a file, and the directory it will be made in must be writable. Checked by `train()` before
    anything is loaded, so a bad path fails at once instead of after training, with nothing left behind.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as file:
        ...     check_output_dir(file.name)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `output_dir` '...' is a file; expected a directory to save the model in (or a path where one can be made).
    """
    if output_dir is None:
        return
    path = Path(output_dir).absolute()
    where = f"`output_dir` {str(output_dir)!r}"
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{where} is a file; expected a directory to save the model in (or a path where one can be made)."
        )
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(
            f"{where}: {str(existing)!r} is a file, not a directory, so the directory cannot be made."
        )
    problem = _can_write_in(existing)
    if problem is not None:
        reason = os.strerror(problem.errno) if problem.errno else str(problem)
        if problem.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = f"{reason}; pick another output_dir"
        raise ValueError(f"{where}: cannot write in {str(existing)!r} ({reason}).")


def _remove_new_empty_dirs(path: Path, existing: Path) -> None:
    """Remove `path` and its parents up to `existing` (which stays) where they are empty directories.

    The Trainer makes `output_dir` (and its parents) at start-up: a run that fails, or saves nothing, leaves
    no empty directory behind. A directory holding anything (a checkpoint to resume from) is kept.
    """
    while path != existing and existing in path.parents:
        try:
            if not path.is_dir() or any(path.iterdir()):
                return
            path.rmdir()
        except OSError:
            return
        path = path.parent


def _check_lengths(model: Any, data: _TrainingData, args: MultiLabelTrainingArguments) -> None:
    """A `ValueError` before training when a tokenized text is longer than the model's position table.

    Training would otherwise stop at the first batch holding it with a tensor-size `RuntimeError`.
    """
    limit = max_positions(model.config)
    if limit is None or args.max_length <= limit:
        return
    for split, dataset in (("train", data.train_set), ("validation", data.eval_set)):
        if dataset is None or len(dataset) == 0:
            continue
        longest = int(pc.max(pc.list_value_length(dataset.data.column("input_ids"))).as_py() or 0)
        if longest > limit:
            raise ValueError(
                f"`max_length` is {args.max_length} tokens, and the {split} split holds texts of up to {longest} "
                f"tokens, but the model reads at most {limit} tokens (its position table, `max_position_embeddings`): "
                f"pass max_length <= {limit}, with sliding_window_stride to train on every window of long texts."
            )


def _warn_unlearnable_labels(data: _TrainingData, given: bool) -> None:
    """Warn, naming them, about labels of `labels=` that no training row has (the model cannot learn them).

    Labels found in the data need no check: `infer_label_space` already warns about those seen only in
    the validation split.
    """
    if not given:
        return
    positives = label_matrix(data.train_set).sum(axis=0)
    unseen = [name for name, count in zip(data.label_space.names, positives) if count == 0]
    if unseen:
        logger.warning(
            f"{len(unseen)} of the {data.label_space.num_labels} labels given in `labels=` have no positive "
            f"training row, so the model cannot learn them (their scores stay low): {unseen!r:.500}. Add rows "
            "with them, or leave them out of `labels=`."
        )


def _tuning_skips(rows: int | None, args: MultiLabelTrainingArguments) -> tuple[str | None, str | None]:
    """Why the thresholds will not be tuned, and why there will be no held-out figures (None: they will be).

    Known from the validation row count, so `train()` says it before training instead of after.
    """
    if rows is None:
        return None, None
    if not args.tune_thresholds:
        return "the thresholds were not tuned on the validation rows (tune_thresholds=False)", None
    folds = 3  # tune_thresholds' n_folds
    if rows < folds:
        return f"the validation split has {rows} rows, too few to tune thresholds on ({folds})", None
    if rows < min_cross_fit_rows(folds):
        return None, (
            f"the validation split has {rows} rows, too few to cut in two halves of {folds} "
            f"(cross-fitting needs {min_cross_fit_rows(folds)})"
        )
    return None, None


def _announce_tuning(rows: int | None, args: MultiLabelTrainingArguments) -> None:
    """Before training: warn when the validation split is too small to tune thresholds or to hold them out."""
    not_tuned, no_heldout = _tuning_skips(rows, args)
    need = min_cross_fit_rows(3)
    if not_tuned is not None and args.tune_thresholds:
        logger.warning(
            f"Thresholds will not be tuned: {not_tuned}. They stay at the model's (0.5 for a new head); pass at "
            f"least {need} validation rows (for held-out figures too), or tune_thresholds=False."
        )
    elif no_heldout is not None:
        logger.warning(
            f"No held-out metrics will be measured: {no_heldout}. The thresholds are tuned and scored on the same "
            f"rows (in-sample); pass at least {need} validation rows for held-out figures."
        )


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
    if isinstance(model_name_or_path, MultiLabelModel) or is_peft_model(model_name_or_path):
        model = model_name_or_path
    elif is_adapter_checkpoint(model_name_or_path):
        model = load_adapter_model(model_name_or_path, is_trainable=True)  # trains on, as an adapter
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


class _TrainingData(NamedTuple):
    """What `train()` trains on: the label space, the tokenizer and the tokenized splits."""

    label_space: LabelSpace
    tokenizer: PreTrainedTokenizerBase
    train_set: Any
    eval_set: Any | None
    eval_texts: list[str] | None


def _prepare_data(
    model_name_or_path: str | os.PathLike | MultiLabelModel,
    train_data: Any,
    eval_data: Any,
    labels: Sequence[str] | LabelSpace | None,
    tokenizer: PreTrainedTokenizerBase | None,
    args: MultiLabelTrainingArguments,
    columns: dict[str, str | None],
) -> _TrainingData:
    """Validate both splits, find the labels and the tokenizer, tokenize at `args.max_length`.

    The training rows are cut into windows with `sliding_window_stride`; the validation rows are truncated
    (`_evaluate_and_tune` reads a windowed model through `predict_proba` over `eval_texts`).
    """
    train_rows = to_rows(train_data, split="train", **columns)
    eval_rows = to_rows(eval_data, split="validation", **columns) if eval_data is not None else None
    label_space = _resolve_labels(labels, [r for r in (train_rows, eval_rows) if r is not None])
    if tokenizer is None:
        source = (
            model_name_or_path.name_or_path
            if isinstance(model_name_or_path, MultiLabelModel) or is_peft_model(model_name_or_path)
            else model_name_or_path
        )
        tokenizer = load_tokenizer(source)  # an error naming the directory when it has no tokenizer
    pairs = (
        "text_pair" if "text_pair" in train_rows.column_names else None
    )  # to_rows' name for the second text
    train_set = to_dataset(
        train_rows,
        tokenizer,
        label_space,
        max_length=args.max_length,
        text_pair_column=pairs,
        split="train",
        window_stride=args.sliding_window_stride,
    )
    if eval_rows is None:
        return _TrainingData(label_space, tokenizer, train_set, None, None)
    pairs = "text_pair" if "text_pair" in eval_rows.column_names else None
    eval_set = to_dataset(
        eval_rows,
        tokenizer,
        label_space,
        max_length=args.max_length,
        text_pair_column=pairs,
        split="validation",
    )
    return _TrainingData(label_space, tokenizer, train_set, eval_set, list(eval_rows["text"]))


def _set_pos_weight(config: MultiLabelConfig, args: MultiLabelTrainingArguments, train_set: Any) -> None:
    """`args.pos_weight` into the config: `"auto"` from the training labels, a list checked per label."""
    if args.pos_weight == "auto":
        config.pos_weight = compute_pos_weight(label_matrix(train_set), args.max_pos_weight)
    elif isinstance(args.pos_weight, (list, tuple)):
        if len(args.pos_weight) != config.num_labels:
            raise ValueError(
                f"`pos_weight` needs one value per label ({config.num_labels}), got {len(args.pos_weight)}."
            )
        config.pos_weight = [float(w) for w in args.pos_weight]


def _create_repo_to_push(args: MultiLabelTrainingArguments) -> str | None:
    """With `push_to_hub`, on the main process: the Hub repo, created before training.

    Its id is `hub_model_id`, else the output directory's name: a bad id or token fails before training.
    """
    if not (args.push_to_hub and args.process_index == 0):
        return None
    repo_id = args.hub_model_id or Path(args.output_dir).absolute().name
    return create_hub_repo(repo_id, token=args.hub_token, private=args.hub_private_repo)


def _push_result(result: TrainResult, repo_id: str, args: MultiLabelTrainingArguments) -> CommitInfo:
    """The final model, tokenizer and card in one commit (the Trainer itself never pushed)."""
    return push_to_hub(
        result.model,
        repo_id,
        tokenizer=result.tokenizer,
        card_data=result.card_data,
        private=args.hub_private_repo,
        token=args.hub_token,
        revision=args.hub_revision,
    )


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
        model_name_or_path (`str`, `os.PathLike` or `MultiLabelModel`):
            An encoder checkpoint (directory or Hub id), a trained multi-label model, or a `MultiLabelModel`
            instance.
        train_data (`Any`):
            Rows with text and labels: a DataFrame, a list of `(text, labels)`, a list of
            dicts, a `datasets.Dataset` or a path to JSONL / CSV / Parquet (see `data.to_rows`).
        eval_data (`Any`, *optional*):
            Validation rows in the same forms; used for evaluation, early stopping and
            threshold tuning.
        labels (`Sequence[str]` or `LabelSpace`, *optional*):
            The label names in order; default: the sorted union of the labels in the data.
        args (`MultiLabelTrainingArguments`, *optional*):
            The training arguments; defaults are the measured ones.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Defaults to the checkpoint's own tokenizer.
        callbacks (`list[TrainerCallback]`, *optional*):
            Extra `TrainerCallback`s.
        resume_from_checkpoint (`str` or `bool`, *optional*):
            `True` (latest in `args.output_dir`) or a checkpoint path.
        text_column (`str`, *optional*, defaults to `"text"`):
            The text column name in the input.
        label_column (`str`, *optional*, defaults to `"labels"`):
            The labels column name in the input.
        text_pair_column (`str`, *optional*):
            The second text column name in the input, for text pairs.
        save (`bool`, *optional*, defaults to `True`):
            Save the final model (weights, tokenizer, remote code, card) to `args.output_dir`.
        card_data (`MultiLabelModelCardData`, *optional*):
            What the model card says beyond what training records (name, dataset, license).

    Returns:
        `TrainResult`: The model, the metrics at the tuned thresholds and the thresholds.

    Example:
        >>> from mlclf_hub import load_sample, train
        >>> result = train(minilm_dir, load_sample("train"), load_sample("validation"))  # doctest: +SKIP
        >>> result.eval_metrics["f1_micro"]  # doctest: +SKIP
        0.66
    """
    args = args or MultiLabelTrainingArguments()
    _check_precision(args)
    check_output_dir(args.output_dir)  # before anything is loaded: a bad path fails now, not after training
    target = None if args.output_dir is None else Path(args.output_dir).absolute()
    existing = None if target is None else _nearest_existing(target)
    try:
        return _train(
            model_name_or_path,
            train_data,
            eval_data,
            labels=labels,
            args=args,
            tokenizer=tokenizer,
            callbacks=callbacks,
            resume_from_checkpoint=resume_from_checkpoint,
            columns={
                "text_column": text_column,
                "label_column": label_column,
                "text_pair_column": text_pair_column,
            },
            save=save,
            card_data=card_data,
        )
    finally:
        if target is not None and existing != target and args.process_index == 0:
            _remove_new_empty_dirs(target, existing)  # made by the Trainer at start-up, and left empty


def _train(
    model_name_or_path: str | os.PathLike | MultiLabelModel,
    train_data: Any,
    eval_data: Any,
    *,
    labels: Sequence[str] | LabelSpace | None,
    args: MultiLabelTrainingArguments,
    tokenizer: PreTrainedTokenizerBase | None,
    callbacks: list[TrainerCallback] | None,
    resume_from_checkpoint: str | bool | None,
    columns: dict[str, str | None],
    save: bool,
    card_data: MultiLabelModelCardData | None,
) -> TrainResult:
    """`train()` once its arguments and output directory are checked."""
    data = _prepare_data(model_name_or_path, train_data, eval_data, labels, tokenizer, args, columns)
    model = _load_model(model_name_or_path, data.label_space, args)
    _check_lengths(model, data, args)
    _warn_unlearnable_labels(data, given=labels is not None)
    _announce_tuning(None if data.eval_set is None else len(data.eval_set), args)
    _record_preprocessing(model.config, args)
    hub_repo = _create_repo_to_push(args)  # the repo exists (or the push fails) before training
    # Fitted after training on the final encoder: evaluations while it trains see the head alone.
    model.clear_knn_memory()
    model.clear_lexical_model()
    _set_pos_weight(model.config, args, data.train_set)
    # The passes pad each batch to its longest row (as prediction does); the training batches to a multiple.
    collator = DataCollatorWithPadding(data.tokenizer, pad_to_multiple_of=args.pass_pad_multiple())
    train_collator = DataCollatorWithPadding(data.tokenizer, pad_to_multiple_of=args.training_pad_multiple())
    _place_on_training_device(model, args)  # the probe's encoding pass runs where training will
    if (
        args.head_init == "linear_probe"
        and not resume_from_checkpoint
        and not _is_saved_multilabel(model_name_or_path)
    ):
        probe = _on_main_process_then_shared(
            lambda: linear_probe_head(
                model,
                data.train_set,
                collator,
                c=args.probe_c,
                batch_size=args.per_device_eval_batch_size,
                show_progress=not args.disable_tqdm,
                bf16=bf16_fitting_passes(args, model_device(model)),
            ),
            args,
        )
        set_head(model, *probe)
        return_freed_memory()  # the encoding pass's buffers, before training allocates its own

    if args.freeze_embeddings and not is_peft_model(model):
        model.backbone.get_input_embeddings().weight.requires_grad_(False)
    peft_config = resolve_peft_config(args, model.config.backbone_config)
    if peft_config is not None and not is_peft_model(model):
        model = add_adapter(model, peft_config)  # after the probe: the head's trained copy starts from it
    extra_callbacks = _prepare_eval_settings(args, data.eval_set is not None)
    card_data = card_data if card_data is not None else MultiLabelModelCardData()
    extra_callbacks.append(ModelCardCallback(card_data))
    if args.trim_memory:
        extra_callbacks.append(ReturnFreedMemoryCallback(every_steps=args.trim_memory_steps))
    trainer = MultiLabelTrainer(
        model=model,
        args=_without_hub_push(args),
        data_collator=train_collator,
        train_dataset=data.train_set,
        eval_dataset=data.eval_set,
        processing_class=data.tokenizer,
        compute_metrics=make_compute_metrics(0.5, data.label_space.names),
        callbacks=[*extra_callbacks, *(callbacks or [])],
    )
    with attention_dropout(trainer.model, args.attention_dropout):
        output = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    _drop_autocast_wrapper(trainer)
    _release_optimizer(trainer)  # its states are not needed after training: the fits below reuse the memory
    _fit_after_training_once(trainer.model, data, collator, args)
    result = TrainResult(
        model=trainer.model,
        tokenizer=data.tokenizer,
        trainer=trainer,
        label_space=data.label_space,
        global_step=output.global_step,
        train_metrics=dict(output.metrics),
        card_data=card_data,
    )
    if data.eval_set is not None:
        _evaluate_and_tune(result, data.eval_set, args, eval_texts=data.eval_texts, collator=collator)
        card_data.set_eval_metrics(
            result.eval_metrics,
            thresholds=result.model.config.thresholds,
            tuned=result.thresholds is not None,
        )
        card_data.set_heldout_metrics(result.heldout_metrics, skipped=result.heldout_skipped)
    if save and trainer.is_world_process_zero():
        writers = [card_writer(result.model, card_data)]
        saved = save_model(result.model, args.output_dir, data.tokenizer, extra_writers=writers)
        result.output_dir = str(saved)
    if hub_repo is not None:
        result.hub_commit = _push_result(result, hub_repo, args)
    return result


def _on_main_process_then_shared(compute: Callable[[], Any], args: MultiLabelTrainingArguments) -> Any:
    """`compute()` on the main process only, its result sent to every process (`torch.distributed`).

    Under DDP (`torchrun`), each process would otherwise repeat the same encoding passes and solves on
    the same rows; the others wait instead and receive the result. An error on the main process is raised
    on every process, so none is left waiting. One process: just `compute()`.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if args.world_size <= 1 or not distributed:
        return compute()
    box: list[Any] = [None]
    if args.process_index == 0:
        try:
            box = [("result", compute())]
        except Exception as err:  # sent to the other processes, raised here after
            box = [("error", err)]
    torch.distributed.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def _fit_after_training_once(
    model: Any, data: _TrainingData, collator: Any, args: MultiLabelTrainingArguments
) -> None:
    """`fit_after_training` on the main process; every other process gets the same tables (`fitted_tables`)."""
    base = model.get_base_model() if is_peft_model(model) else model

    def fit() -> dict[str, Any]:
        fit_after_training(model, data.train_set, collator, data.tokenizer, args)
        return fitted_tables(base)

    fitted = _on_main_process_then_shared(fit, args)
    if args.process_index != 0:
        set_fitted_tables(base, fitted)
    return_freed_memory()  # the memory's encoding pass's buffers, before the validation pass allocates its own


def _drop_autocast_wrapper(trainer: Trainer) -> None:
    """Give the trained model back its own `forward`, without the autocast that fp16/bf16 training wrapped it in.

    With `fp16`/`bf16`, `accelerator.prepare` replaces `model.forward` by one under `torch.autocast`. Kept, the
    model returned by `train()` would validate (the thresholds are tuned on that pass) and predict in reduced
    precision in this process, and in float32 once saved and loaded; without it both are the saved model's.
    """
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)  # in place, on the module


def _release_optimizer(trainer: Trainer) -> None:
    """Drop the optimizer's states (two per trainable parameter for AdamW) and the gradients once training ends.

    `Trainer.train` keeps them; a later `trainer.train()` makes new ones (as it does for a fresh run).
    """
    trainer.optimizer = None
    trainer.lr_scheduler = None
    trainer.model.zero_grad(set_to_none=True)
    return_freed_memory()


def _place_on_training_device(model: torch.nn.Module, args: MultiLabelTrainingArguments) -> None:
    """Move the model to the device the `Trainer` will train on (`args.device`: CPU, CUDA, MPS), as it would.

    So the passes `train()` adds (the linear probe's encoding before training; after it, the memory's and the
    validation rows') run on the accelerator, not on the CPU where the model was loaded. Left to the
    `Trainer` under DeepSpeed and FSDP, which place the model themselves.
    """
    if getattr(args, "deepspeed", None) or getattr(args, "fsdp", None):
        return
    model.to(args.device)


def _is_saved_multilabel(model_name_or_path: Any) -> bool:
    """True for the path of a saved multi-label model (its head is trained: no linear probe)."""
    if isinstance(model_name_or_path, MultiLabelModel) or is_peft_model(model_name_or_path):
        return is_peft_model(model_name_or_path)  # an adapter's head is trained
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
    result: TrainResult,
    eval_set: Any,
    args: MultiLabelTrainingArguments,
    eval_texts: list[str] | None = None,
    collator: Any = None,
) -> None:
    """Validation probabilities -> tuned thresholds in the config -> metrics at those thresholds.

    A model trained on sliding windows is read through windows by default (the saved contract), so its
    validation probabilities are those of `predict_proba` over the windows of `eval_texts`, aggregated.
    `collator` pads the validation batches (`train()` gives the passes' one, which pads each batch to its
    longest row, as prediction does); the Trainer's when `None`.

    With `tune_thresholds`, also the held-out (cross-fitted) metrics, when the split is large enough to
    cut in two halves `tune_thresholds` can run on (else `heldout_skipped` says why).
    """
    config = result.model.config
    if config.sliding_window and eval_texts is not None:
        y_true = label_matrix(eval_set).astype(np.int64)
        probs = predict_proba(
            result.model,
            result.tokenizer,
            eval_texts,
            batch_size=args.per_device_eval_batch_size,
            show_progress=False if args.disable_tqdm else None,
        )
        eval_loss = probability_loss(probs, y_true, config)  # of the aggregated windows, as the metrics
    elif args.world_size > 1:  # the Trainer shards the rows over the processes and gathers the logits
        prediction = result.trainer.predict(eval_set, metric_key_prefix="eval")
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        probs = sigmoid(np.asarray(logits, dtype=np.float64))
        y_true = np.asarray(prediction.label_ids).astype(np.int64)
        eval_loss = float(prediction.metrics.get("eval_loss", float("nan")))
    else:
        # One length-sorted pass (`dataset_forward`) instead of `Trainer.predict`'s batches in row order:
        # the same logits with less padding (measured 1.5x faster on debtags).
        logits = dataset_forward(
            result.model,
            eval_set,
            collator or result.trainer.data_collator,
            args.per_device_eval_batch_size,
            progress=None if args.disable_tqdm else "Predicting the validation rows",
        )
        y_true = label_matrix(eval_set).astype(np.int64)
        probs = sigmoid(logits.double().numpy())
        pos_weight = config.pos_weight
        eval_loss = float(
            multilabel_loss(
                logits,
                torch.from_numpy(y_true),
                None if not pos_weight else torch.tensor(pos_weight),
                float(config.focal_gamma or 0.0),
            )
        )
    tuning = {"min_positives": args.threshold_min_positives}
    result.heldout_metrics, result.heldout_skipped = None, None
    not_tuned, _ = _tuning_skips(len(y_true), args)  # announced before training (`_announce_tuning`)
    if not_tuned is not None:
        result.heldout_skipped = not_tuned
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
    if result.heldout_metrics is not None:
        logger.info(
            f"Validation micro-F1 {metrics['f1_micro']:.4f} in-sample (thresholds tuned and scored on the same "
            f"rows), {result.heldout_metrics['f1_micro']:.4f} held out (cross-fitted on two halves)."
        )


# `build_knn_memory`, `compute_pos_weight`, `fit_lexical_model`, `fit_linear_probe`,
# `init_head_from_linear_probe` (now in `fitting.py`) and `MultiLabelTrainingArguments` (in `training_args.py`)
# stay importable from here, where they were first published.
__all__ = [
    "MultiLabelTrainer",
    "MultiLabelTrainingArguments",
    "TrainResult",
    "build_knn_memory",
    "check_output_dir",
    "compute_pos_weight",
    "fit_lexical_model",
    "fit_linear_probe",
    "init_head_from_linear_probe",
    "train",
]
