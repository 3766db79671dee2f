"""`MultiLabelTrainingArguments`: `transformers.TrainingArguments` with the multi-label settings of `train()`.

The defaults are the measured ones (`benchmarks/README.md`); each setting has one home here, and `train()`,
the fitting after training (`fitting.fit_after_training`) and the CLI read it from this object.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from transformers import TrainingArguments

from .configuration_multilabel import MultiLabelConfig

HEAD_INITS = ("linear_probe", "keep")


def _check_number(name: str, value: Any, minimum: float, *, strict: bool, integer: bool = False) -> None:
    """A `ValueError` naming `name` unless `value` is a finite number (an int if `integer`) above `minimum`.

    Above means `> minimum` with `strict`, else `>= minimum`; bools are not numbers here.

    Example:
        >>> _check_number("learning_rate", -1.0, 0, strict=True)
        Traceback (most recent call last):
        ...
        ValueError: `learning_rate` must be a number > 0, got -1.0.
    """
    kind = "an int" if integer else "a number"
    number = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and (value > minimum if strict else value >= minimum)):
        raise ValueError(f"`{name}` must be {kind} {'>' if strict else '>='} {minimum:g}, got {value!r:.60}.")


@dataclass
class MultiLabelTrainingArguments(TrainingArguments):
    """`TrainingArguments` with multi-label settings and defaults chosen from measured runs.

    Example:
        >>> args = MultiLabelTrainingArguments(output_dir="out", num_train_epochs=2)
        >>> args.head_learning_rate, args.head_init, args.knn_neighbors
        (0.001, 'linear_probe', 30)
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
    freeze_embeddings: bool = field(
        default=True,
        metadata={
            "help": "Keep the encoder's word-embedding matrix fixed: about half of a small encoder's parameters "
            "(MiniLM: 11.7M of 22.7M), so half the gradients and optimizer states. Measured on debtags (1,000 "
            "rows, 1 epoch): 1.2x the training samples/s at the same held-out F1 (benchmarks/README.md); "
            "--freeze_embeddings false trains them too."
        },
    )
    attention_dropout: float | None = field(
        default=0.0,
        metadata={
            "help": "Dropout on the attention probabilities while fine-tuning (0 <= p < 1), in place of the "
            "encoder config's (0.1 for BERT and MiniLM); None keeps the config's (on the command line, pass its "
            "value). With 0, scaled-dot-product attention runs its fused kernel on the CPU: measured on MiniLM "
            "(batch 16, 2 cores) 0.49 s a training step against 0.56 s, held-out F1 within 0.005 "
            "(`mlclf_hub.attention`, benchmarks/README.md). The hidden-state dropout stays the config's; nothing "
            "of this is saved."
        },
    )
    trim_memory: bool = field(
        default=True,
        metadata={
            "help": "On the CPU, hand freed heap pages back to the OS after every trim_memory_steps-th training "
            "step (glibc `malloc_trim`; `mlclf_hub.heap`). Length-grouped batches change shape every step, and "
            "the heap otherwise keeps growing in pieces: measured on debtags (MiniLM, 1,000 rows, batch 16), "
            "peak RSS 1,531 MB trimmed after every step, 1,723 MB without, 1,636 MB for a plain Trainer script, "
            "at some training speed (benchmarks/README.md). --trim_memory false turns it off.",
        },
    )
    trim_memory_steps: int = field(
        default=2,
        metadata={
            "help": "Training steps between two trims of trim_memory (>= 1): more trains faster (fewer pages to "
            "fault in again), but lets the heap grow for that many steps. With the CPU batches padded to 16 "
            "tokens (pad_to_multiple_of), 2 measured 16.1 samples/s at a 1,548 MB peak, against 14.5 samples/s "
            "and 1,527 MB trimmed after every step (benchmarks/README.md)."
        },
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={
            "help": "Pad each training batch to a multiple of this many tokens (>= 1). Default: 16 on the CPU "
            "(length-grouped batches then take a few shapes, not one per length, so the heap fragments less: "
            "measured faster and at a lower peak RSS), 8 with fp16/bf16 elsewhere, none otherwise. The "
            "encoding and validation passes are padded only to their longest row either way."
        },
    )
    bf16_fitting_passes: bool | None = field(
        default=None,
        metadata={
            "help": "Run the encoding passes of the linear probe (before training) and of the nearest-neighbour "
            "memory (after it) under bfloat16 autocast; the validation pass and prediction stay as the model "
            "is. Default (None): on a CPU that computes bf16 natively (AVX512-BF16 or AMX, "
            "`mlclf_hub.inference.native_bf16`), and on any device with --bf16. Measured on MiniLM (2 AVX512-BF16 cores, "
            "debtags): 1.7x the rows/s of those passes, pooled vectors at cosine >= 0.99997 to float32's "
            "(benchmarks/README.md).",
        },
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
    focal_gamma: float = field(
        default=0.0, metadata={"help": "Focal-loss gamma; 0 is plain binary cross-entropy."}
    )
    knn_neighbors: int = field(
        default=MultiLabelConfig.knn_neighbors,
        metadata={
            "help": "After training, store the training rows as a nearest-neighbour memory and add the "
            "label log-odds of this many nearest rows to the logits (>= 1, as in the config; knn_weight=0 "
            "turns the memory off)."
        },
    )
    knn_max_rows: int = field(
        default=20_000,
        metadata={
            "help": "Most training rows kept in the memory (a seeded random subset beyond that; 0: no "
            "memory). Its float16 vectors take rows x hidden x 2 bytes: 31 MB for a 768-hidden encoder at "
            "20,000 rows."
        },
    )
    knn_weight: float = field(
        default=MultiLabelConfig.knn_weight,
        metadata={"help": "Weight of the memory's log-odds in the logits (0: no memory is built)."},
    )
    knn_temperature: float = field(
        default=MultiLabelConfig.knn_temperature,
        metadata={"help": "Softmax temperature over the neighbours' cosine similarities."},
    )
    lexical_weight: float = field(
        default=MultiLabelConfig.lexical_weight,
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
    use_peft: bool = field(
        default=False,
        metadata={
            "help": "Train a LoRA adapter (peft) instead of the whole encoder: the encoder is frozen, the "
            "adapter and the head train; the model is saved as an adapter on its encoder checkpoint."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (with use_peft)."})
    lora_alpha: float = field(
        default=16.0, metadata={"help": "LoRA alpha: the update is scaled by alpha / r."}
    )
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on LoRA's input (with use_peft)."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated names of the layers LoRA adapts (default: the attention's query and value "
            "projections of the encoder family, e.g. 'query,value' for BERT)."
        },
    )
    # Any `peft.PeftConfig` in Python; the CLI passes a JSON file (or a directory with adapter_config.json).
    peft_config: dict | str | None = field(
        default=None,
        metadata={
            "help": "A peft config (a PeftConfig in Python; a JSON file or an adapter directory on the command "
            "line) for any non-prompt adapter; overrides use_peft and the lora_* settings. The head always "
            "trains in full (modules_to_save)."
        },
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

    def _check_optimisation(self) -> None:
        """The values `transformers.TrainingArguments` accepts but training would fail on (or silently ignore).

        Checked here, when the arguments are made, so that a bad value fails before anything is loaded or
        written: a negative learning rate, for one, would otherwise fail in the optimizer, after the model is
        loaded, the head fitted and the output directory made.
        """
        _check_number("learning_rate", self.learning_rate, 0, strict=True)
        if self.head_learning_rate is not None:
            _check_number("head_learning_rate", self.head_learning_rate, 0, strict=True)
        if self.max_steps is None or self.max_steps <= 0:  # max_steps > 0 overrides the epochs
            _check_number("num_train_epochs", self.num_train_epochs, 0, strict=True)
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        ):
            _check_number(name, getattr(self, name), 1, strict=False, integer=True)
        for name in ("weight_decay", "max_grad_norm", "focal_gamma"):
            _check_number(name, getattr(self, name), 0, strict=False)
        for name in ("probe_c", "max_pos_weight"):
            _check_number(name, getattr(self, name), 0, strict=True)
        _check_number("threshold_min_positives", self.threshold_min_positives, 0, strict=False, integer=True)
        _check_number("trim_memory_steps", self.trim_memory_steps, 1, strict=False, integer=True)
        if self.attention_dropout is not None:
            _check_number("attention_dropout", self.attention_dropout, 0, strict=False)
            if self.attention_dropout >= 1:
                raise ValueError(f"`attention_dropout` must be < 1, got {self.attention_dropout!r}.")
        if self.pad_to_multiple_of is not None:
            _check_number("pad_to_multiple_of", self.pad_to_multiple_of, 1, strict=False, integer=True)

    def __post_init__(self) -> None:
        # Decided before `TrainingArguments.__post_init__`, which fills a None itself: a user's value stays.
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith(("loss", "hamming_loss"))
        self._check_optimisation()
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
        if self.knn_neighbors < 1:
            raise ValueError(
                f"`knn_neighbors` must be >= 1, got {self.knn_neighbors}; knn_weight=0 turns the memory off."
            )
        if min(self.knn_weight, self.knn_temperature, self.knn_max_rows) < 0:
            raise ValueError(
                "`knn_max_rows`, `knn_weight` and `knn_temperature` must be >= 0, got "
                f"{self.knn_max_rows}, {self.knn_weight} and {self.knn_temperature}."
            )
        if not (self.lexical_weight >= 0 and self.lexical_c > 0):
            raise ValueError(
                f"`lexical_weight` must be >= 0 and `lexical_c` > 0, got {self.lexical_weight} and {self.lexical_c}."
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"`early_stopping_patience` must be >= 1, got {self.early_stopping_patience}.")
        self._check_peft()

    def _check_peft(self) -> None:
        """The adapter settings, checked before any training: peft installed, LoRA values in range."""
        if self.peft_config is None and not self.use_peft:
            return
        from .adapters import require_peft

        require_peft()
        if self.peft_config is not None:
            return
        if not (isinstance(self.lora_r, int) and self.lora_r >= 1):
            raise ValueError(f"`lora_r` must be an integer >= 1, got {self.lora_r!r}.")
        if not self.lora_alpha > 0:
            raise ValueError(f"`lora_alpha` must be > 0, got {self.lora_alpha}.")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"`lora_dropout` must be in [0, 1), got {self.lora_dropout}.")

    def training_pad_multiple(self) -> int | None:
        """The multiple training batches are padded to: `pad_to_multiple_of`, else 16 on the CPU, 8 with fp16/bf16.

        Example:
            >>> MultiLabelTrainingArguments(output_dir="out", use_cpu=True).training_pad_multiple()
            16
        """
        if self.pad_to_multiple_of is not None:
            return self.pad_to_multiple_of
        if self.device.type == "cpu":
            return 16
        return self.pass_pad_multiple()

    def pass_pad_multiple(self) -> int | None:
        """The multiple the encoding passes (probe, memory, validation) pad to: 8 with fp16/bf16, else none, so each
        batch is padded to its longest row as prediction pads it.

        Example:
            >>> MultiLabelTrainingArguments(output_dir="out", use_cpu=True).pass_pad_multiple() is None
            True
        """
        return 8 if (self.fp16 or self.bf16) else None

    def to_dict(self) -> dict[str, Any]:
        """`TrainingArguments.to_dict`, with a `PeftConfig` written as its JSON-ready dict.

        Example:
            >>> import peft
            >>> args = MultiLabelTrainingArguments(output_dir="out", peft_config=peft.LoraConfig(target_modules=["query"]))
            >>> args.to_dict()["peft_config"]["target_modules"]
            ['query']
        """
        values = super().to_dict()
        config = values.get("peft_config")
        if config is not None and hasattr(config, "to_dict"):
            values["peft_config"] = {
                key: sorted(value) if isinstance(value, set) else value
                for key, value in config.to_dict().items()
            }
        return values


__all__ = ["HEAD_INITS", "MultiLabelTrainingArguments"]
