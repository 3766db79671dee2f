"""Labels and input data: `LabelSpace`, and rows, DataFrames, files or Datasets -> tokenized `Dataset`.

Input is validated once, at the entry point (`to_rows`, `to_dataset`, `infer_label_space`), and
every rejection names the split, the 0-based row, the column, the bad value and what was expected.
Below that, everything works on clean Python lists. What `to_rows` returns is marked as validated, so
passing it on to `infer_label_space` and `to_dataset` (as `train()` does) validates each split once.
Sliding windows, for training and prediction alike, come from `encode_windows` (defined, with
`check_window_stride`, in `processing_multilabel`, which the pipeline shares; importable from here too).

Accepted inputs:

- a `pandas.DataFrame` with ``text`` and ``labels`` columns (names configurable), or without a
  header (integer column names, as simpletransformers: text first, labels second; with three
  columns text, text pair, labels);
- a list of ``(text, labels)`` tuples (or ``(text, text_pair, labels)``), of dicts, or of plain
  strings (texts without labels, for prediction); a dict of columns;
- a path to a ``.jsonl``, ``.json``, ``.csv``, ``.tsv`` (each optionally ``.gz``) or ``.parquet`` file;
- a `datasets.Dataset` (pick one split of a `datasets.DatasetDict`); a ``List(ClassLabel)`` labels
  column is read as label names.

A labels cell is a list of label names, a 0/1 vector with one value per label, or (with
``label_format="indices"``) a list of label ids. An empty list means "no labels".

A labels cell that is a string is read the same way from every source (a CSV or TSV file, a
DataFrame, tuples, dicts, a `Dataset`): a JSON list (``["a", "b"]`` or ``[0, 1, 0]``), a Python list
as `pd.read_csv` or `astype(str)` leave a list cell (``['a', 'b']``), or names separated by ``|``
(``a|b``; a single name is a one-label list, an empty string no labels). A comma outside a list
(``"sports,politics"``) is refused with the row named rather than read as one label name: separate
names with ``|``, or put a name holding a comma in a list (``["arts, crafts"]``).
"""

from __future__ import annotations

import ast
import csv
import difflib
import gzip
import io
import itertools
import json
import math
import numbers
import os
import reprlib
import tokenize
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import datasets
import numpy as np
import pandas as pd
from transformers.utils import logging

from .processing_multilabel import check_text, check_window_stride, encode_windows

logger = logging.get_logger(__name__)

LabelFormat = Literal["auto", "names", "vector", "indices"]

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample_data")
SAMPLE_FILES = {"train": "debtags_train.jsonl.gz", "validation": "debtags_validation.jsonl.gz"}
SUFFIXES = (".csv", ".csv.gz", ".json", ".json.gz", ".jsonl", ".jsonl.gz", ".parquet", ".tsv", ".tsv.gz")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = 8


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """A data file that does not exist; both a `FileNotFoundError` and a `ValueError`.

    Example:
        >>> issubclass(DataFileNotFoundError, ValueError)
        True
    """


# ---------------------------------------------------------------------------------------------
# Error messages
# ---------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    """`repr` of a value, shortened to about 60 characters."""
    return _repr.repr(value)


def _where(split: str | None, row: int | str | None, column: Any) -> str:
    """Where a problem is: ``"row 2 of the train split, column 'labels'"``."""
    place = f"row {row}" if row is not None else ""
    if split:
        place = f"{place} of the {split} split" if place else f"the {split} split"
    if column is not None:
        place = f"{place}, column {column!r}" if place else f"column {column!r}"
    return place or "input"


def _bad(
    kind: type[Exception],
    split: str | None,
    row: int | str | None,
    column: Any,
    problem: str,
    value: Any,
    expected: str,
) -> Exception:
    """Build the error for one bad value: where, what is wrong, the value, what was expected."""
    return kind(f"{_where(split, row, column)}: {problem}: got {_short(value)}; expected {expected}")


def _sorted_names(names: Iterable[Any]) -> list[Any]:
    """Sort names of any types (column names may mix ints and strings)."""
    return sorted(names, key=lambda name: (str(type(name)), str(name)))


def _is_missing(value: Any) -> bool:
    """True for None, NaN, `pd.NA` and `pd.NaT` scalars."""
    if value is None:
        return True
    if isinstance(value, (str, bytes, list, tuple, set, frozenset, dict, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_number(value: Any) -> bool:
    """True for bool, int and float values (numpy scalars included), not for strings."""
    return isinstance(value, (numbers.Number, np.bool_)) and not isinstance(value, str)


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def _label_list(value: Any, split: str | None, row: int | str | None, field: Any) -> list[Any]:
    """Turn one labels cell into a plain list (names, numbers or ids), checking only its shape."""
    if _is_missing(value):
        raise _bad(
            ValueError,
            split,
            row,
            field,
            "missing labels",
            value,
            "a list of label names or a 0/1 vector (use [] for none)",
        )
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, (set, frozenset)):
        value = _sorted_names(value)
    if not isinstance(value, (list, tuple)):
        raise _bad(
            TypeError,
            split,
            row,
            field,
            f"labels of type {type(value).__name__}",
            value,
            "a list of label names or a 0/1 vector",
        )
    return [item.item() if isinstance(item, np.generic) else item for item in value]


def _label_kind(items: list[Any], split: str | None, row: int | str | None, field: Any) -> str:
    """Classify a non-empty label list as ``"names"`` (all strings) or ``"numbers"`` (all numbers)."""
    if all(isinstance(item, str) for item in items):
        return "names"
    if all(_is_number(item) for item in items):
        return "numbers"
    raise _bad(
        TypeError,
        split,
        row,
        field,
        "labels mix names with other values",
        items,
        "only label names (strings) or only 0/1 numbers",
    )


class LabelSpace:
    """The label names of a multi-label problem, their ids, and multi-hot vectors.

    Args:
        names (`Iterable[str]`): The label names, in id order. Must be non-empty and unique.

    Raises:
        ValueError: If there are no names, a name is empty, or a name appears twice.
        TypeError: If a name is not a string, or `names` is a single string.

    Example:
        >>> space = LabelSpace(["games", "sports"])
        >>> space.encode(["sports"])
        [0.0, 1.0]
        >>> space.decode([0.9, 0.2])
        ['games']
    """

    def __init__(self, names: Iterable[str]):
        if isinstance(names, str):
            raise TypeError(f"LabelSpace expects a list of label names, got the string {_short(names)}")
        names = list(names)
        if not names:
            raise ValueError("LabelSpace needs at least one label name, got none")
        seen: dict[str, int] = {}
        for position, name in enumerate(names):
            if not isinstance(name, str):
                raise TypeError(f"label name at position {position} is {_short(name)}; expected a string")
            if not name.strip():
                raise ValueError(
                    f"label name at position {position} is {name!r}; expected a non-empty string"
                )
            if name in seen:
                raise ValueError(
                    f"duplicate label name {name!r} at positions {seen[name]} and {position}; "
                    "expected each label once"
                )
            seen[name] = position
        self._names = tuple(names)
        self._label2id = seen

    @classmethod
    def from_label_lists(cls, label_lists: Iterable[Iterable[str]]) -> LabelSpace:
        """Build the sorted union of the label names in several label lists.

        Args:
            label_lists (`Iterable[Iterable[str]]`): One list of label names per row.

        Returns:
            `LabelSpace`: The names, sorted.

        Example:
            >>> LabelSpace.from_label_lists([["b", "a"], [], ["c"]]).names
            ['a', 'b', 'c']
        """
        union: set[str] = set()
        for labels in label_lists:
            union.update([labels] if isinstance(labels, str) else labels)
        return cls(sorted(union))

    @classmethod
    def from_config(cls, config: Any) -> LabelSpace:
        """Read the label names from a config's ``id2label``, ordered by id.

        Args:
            config (`Any`): Any object with an ``id2label`` mapping (int or numeric-string keys 0..n-1).

        Returns:
            `LabelSpace`: The names in id order.

        Raises:
            ValueError: If the ids are not exactly 0..n-1.

        Example:
            >>> from types import SimpleNamespace
            >>> LabelSpace.from_config(SimpleNamespace(id2label={1: "b", 0: "a"})).names
            ['a', 'b']
        """
        id2label = {int(key): name for key, name in dict(config.id2label).items()}
        if sorted(id2label) != list(range(len(id2label))):
            raise ValueError(
                f"config.id2label has ids {_short(sorted(id2label))}; expected the ids 0..{len(id2label) - 1}"
            )
        return cls(id2label[i] for i in range(len(id2label)))

    @property
    def names(self) -> list[str]:
        """`list[str]`: The label names in id order."""
        return list(self._names)

    @property
    def num_labels(self) -> int:
        """`int`: How many labels there are."""
        return len(self._names)

    @property
    def label2id(self) -> dict[str, int]:
        """`dict[str, int]`: Label name to id."""
        return dict(self._label2id)

    @property
    def id2label(self) -> dict[int, str]:
        """`dict[int, str]`: Id to label name (int keys)."""
        return dict(enumerate(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSpace) and self._names == other._names

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"LabelSpace({_short(list(self._names))})"

    def encode(
        self,
        labels: Any,
        row: int | str | None = None,
        split: str | None = None,
        field: Any = "labels",
        label_format: LabelFormat = "auto",
    ) -> list[float]:
        """Turn one row's labels into a multi-hot vector.

        Args:
            labels (`Any`): Label names (list, tuple, set, array or a single name), a 0/1 vector of length
                `num_labels`, or a list of label ids with ``label_format="indices"``. An empty
                list gives all zeros.
            row (`int` or `str`, *optional*): The row, for error messages.
            split (`str`, *optional*): The split, for error messages.
            field (`str`, *optional*, defaults to `"labels"`): The column, for error messages.
            label_format (`str`, *optional*, defaults to `"auto"`): ``"names"``, ``"vector"``,
                ``"indices"``, or ``"auto"``: strings are names, numbers a 0/1 vector.

        Returns:
            `list[float]`: ``num_labels`` values, each 0.0 or 1.0.

        Raises:
            ValueError: Unknown label name, id out of range, wrong vector length, NaN or a value
                other than 0/1, missing labels.
            TypeError: Labels of an unsupported type, or names mixed with numbers.

        Example:
            >>> space = LabelSpace(["a", "b", "c"])
            >>> space.encode(["c", "a"]), space.encode([0, 1, 0]), space.encode([2], label_format="indices")
            ([1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
        """
        items = _label_list(labels, split, row, field)
        if not items:
            return [0.0] * self.num_labels
        kind = label_format
        if label_format == "auto":
            kind = "names" if _label_kind(items, split, row, field) == "names" else "vector"
        if kind == "names":
            return self._encode_names(items, split, row, field)
        if kind == "indices":
            return self._encode_indices(items, split, row, field)
        if kind == "vector":
            return self._encode_vector(items, split, row, field)
        raise ValueError(
            f"label_format is {label_format!r}; expected one of 'auto', 'indices', 'names', 'vector'"
        )

    def _unknown_name_error(
        self, name: Any, split: str | None, row: int | str | None, field: Any
    ) -> Exception:
        known = sorted(self._names)
        error = _bad(
            ValueError,
            split,
            row,
            field,
            "unknown label",
            name,
            f"one of the {len(known)} known labels {known}",
        )
        close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        return ValueError(f"{error}; did you mean {close[0]!r}?") if close else error

    def _encode_names(
        self, items: list[Any], split: str | None, row: int | str | None, field: Any
    ) -> list[float]:
        vector = [0.0] * self.num_labels
        for name in items:
            if not isinstance(name, str):
                raise _bad(
                    TypeError,
                    split,
                    row,
                    field,
                    "a label name that is not a string",
                    name,
                    "label names (strings)",
                )
            if name not in self._label2id:
                raise self._unknown_name_error(name, split, row, field)
            vector[self._label2id[name]] = 1.0
        return vector

    def _encode_indices(
        self, items: list[Any], split: str | None, row: int | str | None, field: Any
    ) -> list[float]:
        vector = [0.0] * self.num_labels
        for index in items:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise _bad(
                    TypeError, split, row, field, "a label id that is not an int", index, "int label ids"
                )
            if not 0 <= index < self.num_labels:
                raise _bad(
                    ValueError,
                    split,
                    row,
                    field,
                    "label id out of range",
                    index,
                    f"ids in 0..{self.num_labels - 1}",
                )
            vector[index] = 1.0
        return vector

    def _encode_vector(
        self, items: list[Any], split: str | None, row: int | str | None, field: Any
    ) -> list[float]:
        expected = f"a 0/1 vector of length {self.num_labels} (one value per label)"
        if len(items) != self.num_labels:
            hint = "; for label ids pass label_format='indices'"
            raise _bad(
                ValueError, split, row, field, f"vector of length {len(items)}", items, expected + hint
            )
        for position, value in enumerate(items):
            if not _is_number(value):
                raise _bad(
                    TypeError, split, row, field, f"non-numeric value at position {position}", items, expected
                )
            if isinstance(value, float) and math.isnan(value):
                raise _bad(ValueError, split, row, field, f"NaN at position {position}", items, expected)
            if value not in (0, 1):
                raise _bad(
                    ValueError, split, row, field, f"value {value!r} at position {position}", items, expected
                )
        return [float(value) for value in items]

    def decode(
        self, vector_or_probs: Sequence[float] | np.ndarray, threshold: float | Sequence[float] | None = None
    ) -> list[str]:
        """Turn a multi-hot vector or one row of probabilities into label names.

        A label is kept when its value is ``>=`` its threshold.

        Args:
            vector_or_probs (`Sequence[float]` or `np.ndarray`): ``num_labels`` values.
            threshold (`float` or `Sequence[float]`, *optional*): One threshold for all labels or
                one per label. Defaults to 0.5.

        Returns:
            `list[str]`: The kept label names, in id order.

        Raises:
            ValueError: If the vector or the thresholds do not have ``num_labels`` values.

        Example:
            >>> LabelSpace(["a", "b", "c"]).decode([0.7, 0.1, 0.4], threshold=[0.5, 0.5, 0.3])
            ['a', 'c']
        """
        values = np.asarray(vector_or_probs, dtype=float)
        if values.shape != (self.num_labels,):
            raise ValueError(
                f"decode got values of shape {values.shape}: {_short(vector_or_probs)}; "
                f"expected {self.num_labels} values, one per label"
            )
        thresholds = np.broadcast_to(
            np.asarray(0.5 if threshold is None else threshold, dtype=float), values.shape
        )
        return [name for name, value, cut in zip(self._names, values, thresholds) if value >= cut]


def load_labels(path: str | os.PathLike) -> list[str]:
    """Read label names from a ``labels.txt`` style file: one name per line, blank lines skipped.

    Args:
        path (`str` or `os.PathLike`): The file.

    Returns:
        `list[str]`: The names in file order.

    Raises:
        DataFileNotFoundError: If the file does not exist.

    Example:
        >>> load_labels(os.path.join(SAMPLE_DIR, "labels.txt"))[:2]
        ['accessibility::input', 'admin::configuring']
    """
    path = _existing_file(path)
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------
# Reading sources into columns: dict of column name -> list of cells
# ---------------------------------------------------------------------------------------------

Columns = dict[Any, list[Any]]


def _existing_file(path: str | os.PathLike) -> Path:
    """Return `path` as a `Path`, or raise `DataFileNotFoundError`."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"data file {str(path)!r} not found; expected an existing file")
    return path


def _suffix(path: Path) -> str:
    """The data suffix, with ``.gz`` kept: ``"train.jsonl.gz"`` -> ``".jsonl.gz"``."""
    suffixes = [s.lower() for s in path.suffixes]
    return "".join(suffixes[-2:]) if suffixes[-1:] == [".gz"] else "".join(suffixes[-1:])


def _open_text(path: Path):
    """Open a text file, transparently gunzipping ``.gz`` files."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")  # a byte-order mark is read past, as pandas does for CSV


def _read_jsonl(path: Path, split: str) -> list[Any]:
    """Read a JSON-lines file into records; blank lines are skipped and not counted as rows."""
    with _open_text(path) as f:
        lines = [(number, line) for number, line in enumerate(f, start=1) if line.strip()]
    records = []
    for row, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise _bad(
                ValueError,
                split,
                row,
                None,
                f"invalid JSON on line {number} of {path.name} ({err.msg})",
                line,
                "one JSON object per line",
            ) from None
    return records


def _read_json(path: Path, split: str) -> list[Any]:
    """Read a ``.json`` file holding an array of records (or, failing that, JSON lines)."""
    with _open_text(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(path, split)
    if not isinstance(data, list):
        raise TypeError(
            f"the {split} split: {path.name} holds a JSON {type(data).__name__}; expected an array of objects"
        )
    return data


def _check_field_counts(path: Path, sep: str, split: str) -> None:
    """Every record of a CSV/TSV file has the header's field count, or a ValueError naming the line.

    pandas reads a short record (an unquoted lone carriage return inside a text ends a record early) as a row
    with empty trailing cells: its labels would silently become "no labels".
    """
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None)
        if header is None:
            return
        for record in reader:
            if record and len(record) < len(header):
                raise ValueError(
                    f"the {split} split: line {reader.line_num} of {path.name} has {len(record)} field"
                    f"{'' if len(record) == 1 else 's'}, the header {len(header)}; quote a text that holds a line break"
                )


def _read_file(path: str | os.PathLike, split: str) -> Columns:
    """Read a data file into columns (CSV and TSV cells as strings)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in SUFFIXES:
        raise ValueError(
            f"the {split} split: unsupported file suffix {suffix or '(none)'!r} for {str(path)!r}; "
            f"expected one of {', '.join(SUFFIXES)}"
        )
    path = _existing_file(path)
    try:
        if suffix.startswith((".csv", ".tsv")):
            sep = "\t" if suffix.startswith(".tsv") else ","
            _check_field_counts(path, sep, split)
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            return {column: frame[column].tolist() for column in frame.columns}
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            return {column: frame[column].tolist() for column in frame.columns}
        reader = _read_jsonl if suffix.startswith(".jsonl") else _read_json
        return _columns_from_records(reader(path, split), split)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"the {split} split: {path.name} is not UTF-8 text ({err.reason} at byte {err.start}); re-save it as UTF-8"
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"the {split} split: {path.name} is not a complete gzip file ({err})") from None
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"the {split} split: {path.name} is empty; expected a header row (text,labels) and rows"
        ) from None
    except pd.errors.ParserError as err:
        raise ValueError(
            f"the {split} split: {path.name}: {str(err).strip()}; quote a field that holds the separator"
        ) from None


def _columns_from_records(records: Sequence[Any], split: str) -> Columns:
    """Turn a list of dicts, of tuples or of strings into columns (tuples and strings: 0, 1, ...)."""
    if not records:
        return {}
    first = records[0]
    if isinstance(first, Mapping):
        names = list(
            dict.fromkeys(key for record in records if isinstance(record, Mapping) for key in record)
        )
        kind, expected = Mapping, "a dict, like row 0"
    elif isinstance(first, (tuple, list)):
        names = list(range(len(first)))
        kind, expected = (tuple, list), f"a (text, labels) tuple of length {len(first)}, like row 0"
    elif isinstance(first, str):
        return {0: list(records)}
    else:
        raise _bad(
            TypeError,
            split,
            0,
            None,
            f"a row of type {type(first).__name__}",
            first,
            "a dict, a (text, labels) tuple or a text",
        )
    for row, record in enumerate(records):
        if not isinstance(record, kind) or (kind != Mapping and len(record) != len(first)):
            raise _bad(TypeError, split, row, None, "a row unlike the first", record, expected)
    if kind == Mapping:
        return {name: [record.get(name) for record in records] for name in names}
    return {name: [record[name] for record in records] for name in names}


def _dataset_columns(dataset: datasets.Dataset) -> Columns:
    """A `Dataset`'s columns as lists; ``List(ClassLabel)`` label ids become their names."""
    columns = dataset.to_dict()
    for name, feature in dataset.features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(inner, datasets.ClassLabel):
            columns[name] = [None if cell is None else inner.int2str(list(cell)) for cell in columns[name]]
    return columns


def _mapping_columns(data: Mapping, split: str) -> Columns:
    """A dict of columns as lists, all of one length."""
    columns = {name: list(values) for name, values in data.items()}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the {split} split: columns of different lengths {lengths}; expected one length")
    return columns


def _read_source(data: Any, split: str) -> tuple[Columns, list[Any] | None]:
    """Read any supported input into (columns, DataFrame index labels or None)."""
    if isinstance(data, datasets.DatasetDict):
        raise TypeError(
            f"the {split} split: got a DatasetDict with splits {sorted(data)}; "
            "expected one split of it, a datasets.Dataset such as data['train']"
        )
    if isinstance(data, datasets.Dataset):
        return _dataset_columns(data), None
    if isinstance(data, pd.DataFrame):
        index = list(data.index)
        index = None if index == list(range(len(index))) else index
        return {column: data[column].tolist() for column in data.columns}, index
    if isinstance(data, (str, os.PathLike)):
        return _read_file(data, split), None
    if isinstance(data, Mapping):
        return _mapping_columns(data, split), None
    if isinstance(data, (list, tuple)):
        return _columns_from_records(data, split), None
    raise TypeError(
        f"the {split} split: unsupported input of type {type(data).__name__}; expected a DataFrame, a list of "
        "(text, labels) tuples or dicts, a file path or a datasets.Dataset"
    )


# ---------------------------------------------------------------------------------------------
# Validating columns and cells
# ---------------------------------------------------------------------------------------------


def is_headerless(column_names: Iterable[Any]) -> bool:
    """Whether a table has no header: its columns are numbered (a DataFrame built from lists), not named.

    Args:
        column_names (`Iterable`): The column names, such as `DataFrame.columns`.

    Example:
        >>> is_headerless(pd.DataFrame([["a text", ["games"]]]).columns), is_headerless(["text", "labels"])
        (True, False)
    """
    return all(isinstance(name, numbers.Integral) for name in column_names)


def _name_positional(columns: Columns, text_column: str, split: str) -> Columns | None:
    """Name headerless columns 0, 1, 2 as simpletransformers does; None when the input has a header.

    One column is ``text``; two are ``text``, ``labels``; three are ``text``, ``text_pair``, ``labels``.
    """
    if text_column in columns or not is_headerless(columns):
        return None
    roles = {1: ["text"], 2: ["text", "labels"], 3: ["text", "text_pair", "labels"]}.get(len(columns))
    if roles is None:
        raise ValueError(
            f"the {split} split: {len(columns)} unnamed columns {_sorted_names(columns)}; "
            "expected (text, labels) or (text, text_pair, labels)"
        )
    return {role: columns[name] for role, name in zip(roles, sorted(columns))}


def _pick_columns(
    columns: Columns,
    text_column: str,
    label_column: str,
    text_pair_column: str | None,
    split: str,
    require_labels: bool,
) -> dict[str, Any]:
    """Map the roles ``text``/``text_pair``/``labels`` to the input's column names, checking they exist."""
    found = _sorted_names(columns)
    picked = {"text": text_column, "labels": label_column}
    if text_pair_column is not None:
        picked["text_pair"] = text_pair_column
    for role, name in picked.items():
        if name not in columns and (role != "labels" or require_labels):
            raise ValueError(
                f"the {split} split: no {role} column {name!r}; found columns {found}; "
                f"expected a {name!r} column or {role if role != 'labels' else 'label'}_column=... naming one of them"
            )
    return {role: name for role, name in picked.items() if name in columns}


def _check_text(value: Any, split: str, row: int | str, column: Any) -> str:
    """Return the text, or raise if it is missing, not a string, or blank."""
    if _is_missing(value):
        raise _bad(ValueError, split, row, column, "missing text", value, "a non-empty string")
    if not isinstance(value, str):
        raise _bad(TypeError, split, row, column, f"text of type {type(value).__name__}", value, "a string")
    if not value.strip():
        raise _bad(
            ValueError, split, row, column, "empty or whitespace-only text", value, "a non-empty string"
        )
    return check_text(value, _where(split, row, column))


_LABELS_STRING = 'a list (["a", "b"], [0, 1, 0]) or names separated by "|" (a|b)'


def _literal_list(cell: str) -> list[Any] | None:
    """A list of names or numbers written as JSON or as a Python literal (``['a', 'b']``); else `None`."""
    try:
        parsed = json.loads(cell)
    except json.JSONDecodeError:
        try:
            tokens = [t for t in tokenize.generate_tokens(io.StringIO(cell).readline) if t.string.strip()]
            if any(a.type == b.type == tokenize.STRING for a, b in itertools.pairwise(tokens)):
                return None  # "['a' 'b']" (a numpy array's str) would read as ['ab']
            parsed = ast.literal_eval(cell)  # literals only: never runs code
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, tokenize.TokenError):
            return None
        if not isinstance(parsed, list) or not all(
            isinstance(item, str) or _is_number(item) for item in parsed
        ):
            return None
    return parsed if isinstance(parsed, list) else None


def _parse_labels_string(value: str, split: str, row: int | str, column: Any) -> list[Any]:
    """Parse a labels cell that is a string, from any source (see the module docstring).

    A JSON or Python list is that list, names separated by ``|`` are those names (one name: a one-label
    list; an empty cell: no labels); a comma outside a list, or a list that cannot be read, is an error.

    Example:
        >>> [_parse_labels_string(cell, "train", 0, "labels") for cell in ["a|b", "['a']", "[0, 1]", "a", ""]]
        [['a', 'b'], ['a'], [0, 1], ['a'], []]
    """
    cell = value.strip()
    if cell.startswith("["):
        parsed = _literal_list(cell)
        if parsed is None:
            raise _bad(ValueError, split, row, column, "unreadable labels cell", value, _LABELS_STRING)
        return parsed
    if "," in cell:
        raise _bad(
            ValueError,
            split,
            row,
            column,
            "a labels cell with ',' outside a list (one label name, or several?)",
            value,
            f'{_LABELS_STRING}; a name holding a comma goes in a list (["arts, crafts"])',
        )
    return [name.strip() for name in cell.split("|") if name.strip()]


def _row_ref(position: int, index: list[Any] | None) -> int | str:
    """The row as the user sees it: the position, plus the DataFrame index label when it differs."""
    if index is None or index[position] == position:
        return position
    return f"{position} (index {index[position]!r})"


class _Table(NamedTuple):
    """Validated input: clean columns, each row as the user sees it, the labels column's name and, for rows
    `to_rows` returned, their label kind (``"names"`` or ``"numbers"``; `None`: not known yet)."""

    columns: Columns
    rows: list[int | str]
    label_column: Any
    label_kind: str | None = None


#: Arrow field metadata on the ``text`` column of what `to_rows` returns: its rows are validated.
_VALIDATED_KEY = b"mlclf_hub"


def _validated_marker(table: Any) -> dict[bytes, bytes]:
    """The marker on validated rows' ``text`` field: it names their columns, so a column added later
    (`add_column`, which keeps the field metadata) no longer matches.
    """
    return {_VALIDATED_KEY: f"validated rows: {','.join(table.column_names)}".encode()}


def _labels_feature(kind: str) -> datasets.List:
    """The ``labels`` feature of validated rows: label names (``"names"``) or 0/1 vectors (``"numbers"``)."""
    return datasets.List(datasets.Value("string" if kind == "names" else "float32"))


def _mark_validated(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` with the validated-rows marker (`_validated_marker`) on its ``text`` column.

    The marker is Arrow field metadata: row subsets (`select`, `filter`, `shuffle`, `train_test_split`) keep
    it; whatever writes new data (`map`, `cast`, `flatten_indices`, a disk round trip) drops it, and rows or
    columns added to it (`concatenate_datasets`, `add_item`, `add_column`) are not trusted, so changed rows
    are validated again.
    """
    table = dataset.data.table
    position = table.schema.get_field_index("text")
    field = table.schema.field(position).with_metadata(_validated_marker(table))
    return datasets.Dataset(table.set_column(position, field, table.column(position)), info=dataset.info)


def _validated_label_kind(data: Any) -> str | None:
    """The label kind of rows `to_rows` returned (``"names"`` also when they have no labels), else `None`."""
    if not isinstance(data, datasets.Dataset) or "text" not in data.column_names:
        return None
    if data.data.schema.field("text").metadata != _validated_marker(data.data.table):
        return None  # not to_rows' output, or a column was added since
    if isinstance(data.data, datasets.table.ConcatenationTable):
        return None  # rows added (`concatenate_datasets`, `add_item`) keep the first table's metadata
    string, features = datasets.Value("string"), data.features
    if features["text"] != string or features.get("text_pair", string) != string:
        return None
    labels = features.get("labels")
    if labels is None:
        return "names"
    return next((kind for kind in ("names", "numbers") if labels == _labels_feature(kind)), None)


def _normalise(
    data: Any, text_column: str, label_column: str, pair_column: str | None, split: str, require_labels: bool
) -> _Table:
    """Read and validate any input into clean columns ``text``, (``text_pair``), (``labels``).

    Rows `to_rows` returned are read, not validated again, when the columns asked for are theirs.
    """
    columns, index = _read_source(data, split)
    num_rows = len(next(iter(columns.values()), []))
    if num_rows == 0:
        raise ValueError(f"the {split} split: no rows; expected at least one row of text (and labels)")
    named = _name_positional(columns, text_column, split)
    if named is not None:
        columns, text_column, label_column = named, "text", "labels"
        pair_column = "text_pair" if "text_pair" in named else None
    picked = _pick_columns(columns, text_column, label_column, pair_column, split, require_labels)
    kind = _validated_label_kind(data)
    if kind is None or any(role != name for role, name in picked.items()):
        rows = [_row_ref(position, index) for position in range(num_rows)]
        return _Table(_check_cells(columns, picked, rows, split), rows, picked.get("labels"))
    clean = {role: columns[role] for role in picked}  # rows to_rows validated: nothing to check again
    return _Table(clean, list(range(num_rows)), picked.get("labels"), kind)


def _check_cells(columns: Columns, picked: dict[str, Any], rows: list[int | str], split: str) -> Columns:
    """The picked columns (role -> column name) with every cell checked: texts as strings, labels as lists.

    A labels cell that is a string is parsed the same way whatever the source (`_parse_labels_string`).
    """
    clean: Columns = {role: [] for role in ("text", "text_pair", "labels") if role in picked}
    for position, row in enumerate(rows):
        for role in ("text", "text_pair"):
            if role in picked:
                clean[role].append(_check_text(columns[picked[role]][position], split, row, picked[role]))
        if "labels" in picked:
            cell = columns[picked["labels"]][position]
            if isinstance(cell, str):
                cell = _parse_labels_string(cell, split, row, picked["labels"])
            clean["labels"].append(_label_list(cell, split, row, picked["labels"]))
    return clean


def _check_uniform_labels(table: _Table, split: str) -> str:
    """Check every non-empty labels cell is of one kind (names or numbers); return that kind.

    The kind of rows `to_rows` returned is known (`_Table.label_kind`): they are not checked again.
    """
    if table.label_kind is not None:
        return table.label_kind
    first_row: dict[str, int | str] = {}
    column = table.label_column
    for row, items in zip(table.rows, table.columns["labels"]):
        if not items:
            continue
        kind = _label_kind(items, split, row, column)
        first_row.setdefault(kind, row)
        if len(first_row) > 1:
            other = next(k for k in first_row if k != kind)
            raise _bad(
                TypeError,
                split,
                row,
                column,
                f"label {kind} where row {first_row[other]} holds label {other}",
                items,
                "one label format per split",
            )
    return next(iter(first_row), "names")


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def to_rows(
    data: Any,
    text_column: str = "text",
    label_column: str = "labels",
    text_pair_column: str | None = None,
    split: str = "train",
    require_labels: bool = True,
) -> datasets.Dataset:
    """Validate any supported input and return it as a `Dataset` with clean columns.

    `infer_label_space`, `to_dataset` and `to_rows` recognise what `to_rows` returned, and row subsets of
    it (`select`, `filter`, `shuffle`, `train_test_split`), and do not validate it again; after a `map` or a
    `cast` the rows are validated again.

    Args:
        data (`Any`): A DataFrame, a list of tuples/dicts/texts, a dict of columns, a file path or a
            `Dataset`.
        text_column (`str`, *optional*, defaults to `"text"`): The text column.
        label_column (`str`, *optional*, defaults to `"labels"`): The labels column.
        text_pair_column (`str`, *optional*): A second text column, for text pairs.
        split (`str`, *optional*, defaults to `"train"`): The split name, for error messages.
        require_labels (`bool`, *optional*, defaults to `True`): If `False`, a missing labels
            column is allowed (prediction input).

    Returns:
        `datasets.Dataset`: Columns ``text``, ``text_pair`` (if given) and ``labels`` (lists of
        label names, or 0/1 vectors as float32), one row per input row.

    Raises:
        ValueError: Empty input, missing/blank text, missing column or labels, unsupported suffix,
            missing file (`DataFileNotFoundError`).
        TypeError: Non-string text, labels of an unsupported type, a `DatasetDict`.

    Example:
        >>> to_rows([("a game", ["games"]), ("a ball", ["sports"])])[1]
        {'text': 'a ball', 'labels': ['sports']}
    """
    table = _normalise(data, text_column, label_column, text_pair_column, split, require_labels)
    clean = table.columns
    features = _text_features(clean)
    if "labels" in clean:
        kind = _check_uniform_labels(table, split)
        if kind == "numbers":
            clean["labels"] = [[float(value) for value in items] for items in clean["labels"]]
        features["labels"] = _labels_feature(kind)
    return _mark_validated(datasets.Dataset.from_dict(clean, features=datasets.Features(features)))


def _text_features(columns: dict[str, list]) -> dict[str, datasets.Value]:
    """The `datasets` features of the text columns present (`text`, and `text_pair` for pairs)."""
    return {role: datasets.Value("string") for role in ("text", "text_pair") if role in columns}


def _tokenize_batch(
    batch: dict[str, list],
    tokenizer: Any,
    max_length: int | None,
    window_stride: int | None = None,
    keep_text: bool = False,
) -> dict[str, list]:
    """Tokenize one batch of texts (and pairs) with `encode_windows`, without padding.

    With `window_stride`, each window repeats its text's other columns (its labels).
    """
    pairs = batch.get("text_pair")
    encoded, owner = encode_windows(
        tokenizer, batch["text"], max_length, window_stride, text_pairs=pairs, name="window_stride"
    )
    if window_stride is None:
        return encoded
    out = dict(encoded)
    for name, values in batch.items():
        if name != "text" or keep_text:
            out[name] = [values[i] for i in owner]
    return out


def to_dataset(
    data: Any,
    tokenizer: Any,
    label_space: LabelSpace | None,
    *,
    max_length: int | None = None,
    text_column: str = "text",
    label_column: str = "labels",
    text_pair_column: str | None = None,
    split: str = "train",
    keep_text: bool = False,
    batch_size: int = 1000,
    require_labels: bool = True,
    label_format: LabelFormat = "auto",
    window_stride: int | None = None,
) -> datasets.Dataset:
    """Validate any supported input, encode its labels and tokenize it for training or prediction.

    Everything is checked before any `Dataset` is built, so nothing is written when input is
    rejected. Texts are truncated to `max_length` but not padded: `DataCollatorWithPadding` pads
    each batch.

    Args:
        data (`Any`): A DataFrame, a list of tuples/dicts/texts, a dict of columns, a file path or a
            `Dataset`.
        tokenizer (`PreTrainedTokenizerBase`): A Hugging Face tokenizer.
        label_space (`LabelSpace`, *optional*): The labels; needed when the data has labels.
        max_length (`int`, *optional*): Truncate to this many tokens (default: the tokenizer's limit).
        text_column (`str`, *optional*, defaults to `"text"`): The text column.
        label_column (`str`, *optional*, defaults to `"labels"`): The labels column.
        text_pair_column (`str`, *optional*): A second text column, for text pairs.
        split (`str`, *optional*, defaults to `"train"`): The split name, for error messages.
        keep_text (`bool`, *optional*, defaults to `False`): Keep the raw ``text`` (and ``text_pair``).
        batch_size (`int`, *optional*, defaults to 1000): Rows per tokenizer call.
        require_labels (`bool`, *optional*, defaults to `True`): If `False`, data without a labels
            column gives only the tokenized columns (prediction input).
        label_format (`str`, *optional*, defaults to `"auto"`): See `LabelSpace.encode`.
        window_stride (`int`, *optional*): Instead of truncating, cut a long text into every window of
            `max_length` tokens, neighbouring windows sharing this many tokens; each window is a row
            with its text's labels. Not for text pairs.

    Returns:
        `datasets.Dataset`: ``input_ids``, ``attention_mask``, ``token_type_ids`` (if the
        tokenizer makes them) and ``labels`` (float32 multi-hot lists, when the data has labels).

    Raises:
        ValueError: As `to_rows`, plus unknown label names, wrong vector lengths, values other than 0/1.
        TypeError: As `to_rows`, or labels present but no `label_space`.

    Example:
        >>> ds = to_dataset([("a game", ["games"])], tokenizer, LabelSpace(["games", "sports"]))
        >>> ds[0]["labels"]
        [1.0, 0.0]
    """
    table = _normalise(data, text_column, label_column, text_pair_column, split, require_labels)
    clean = table.columns
    if window_stride is not None:
        if "text_pair" in clean:
            raise ValueError(f"the {split} split has text pairs; sliding windows are for single texts only")
        window_stride = check_window_stride(tokenizer, max_length, window_stride, "window_stride")
    features = _text_features(clean)
    if "labels" in clean:
        if label_space is None:
            raise TypeError(
                f"the {split} split has labels but label_space is None; expected a LabelSpace, "
                "e.g. infer_label_space(train_data) or LabelSpace(names)"
            )
        clean["labels"] = [
            label_space.encode(
                items, row=row, split=split, field=table.label_column, label_format=label_format
            )
            for row, items in zip(table.rows, clean["labels"])
        ]
        features["labels"] = datasets.List(datasets.Value("float32"))
    dataset = datasets.Dataset.from_dict(clean, features=datasets.Features(features))
    raw = [role for role in ("text", "text_pair") if role in clean and not keep_text]
    if window_stride is not None:
        raw = list(dataset.column_names)  # windows change the row count: every column is rebuilt per window
    return dataset.map(
        _tokenize_batch,
        batched=True,
        batch_size=batch_size,
        remove_columns=raw,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "window_stride": window_stride,
            "keep_text": keep_text,
        },
        desc=f"Tokenizing the {split} split",
    )


def infer_label_space(
    *splits: Any,
    label_column: str = "labels",
    text_column: str = "text",
    split_names: Sequence[str] | None = None,
) -> LabelSpace:
    """The sorted union of the label names in one or more splits, the training split first.

    Logs a warning listing labels that appear in a later split but never in the first one
    (a model cannot learn them).

    Args:
        *splits (`Any`): Inputs as `to_rows` accepts them, labelled with names (not 0/1 vectors).
        label_column (`str`, *optional*, defaults to `"labels"`): The labels column.
        text_column (`str`, *optional*, defaults to `"text"`): The text column.
        split_names (`Sequence[str]`, *optional*): Names for messages; defaults to
            ``train``, ``validation``, ``test``, then ``split 3``, ...

    Returns:
        `LabelSpace`: The label names, sorted.

    Raises:
        ValueError: No split given, a split labelled with 0/1 vectors, or as `to_rows`.

    Example:
        >>> infer_label_space([("a", ["y"]), ("b", ["x"])], [("c", ["x"])]).names
        ['x', 'y']
    """
    if not splits:
        raise ValueError("infer_label_space needs at least one split; expected the training data first")
    default_names = ["train", "validation", "test"] + [f"split {i}" for i in range(3, len(splits))]
    names = list(split_names) if split_names is not None else default_names[: len(splits)]
    seen: list[set[str]] = []
    for data, split in zip(splits, names):
        table = _normalise(data, text_column, label_column, None, split, True)
        labels = table.columns["labels"]
        if _check_uniform_labels(table, split) != "names":
            position = next(i for i, items in enumerate(labels) if items)
            raise _bad(
                ValueError,
                split,
                table.rows[position],
                table.label_column,
                "0/1 vectors carry no label names",
                labels[position],
                "label names; or build LabelSpace(names) yourself",
            )
        seen.append({name for items in labels for name in items})
    for split, found in zip(names[1:], seen[1:]):
        unseen = sorted(found - seen[0])
        if unseen:
            logger.warning(
                "labels %s appear in the %s split but never in the %s split; a model cannot learn them",
                unseen,
                split,
                names[0],
            )
    return LabelSpace(sorted(set().union(*seen)))


def sample_labels() -> list[str]:
    """The 131 debtags label names shipped with the sample, in their fixed order.

    Returns:
        `list[str]`: The names from ``sample_data/labels.txt``.

    Example:
        >>> len(sample_labels())
        131
    """
    return load_labels(os.path.join(SAMPLE_DIR, "labels.txt"))


def load_sample(split: Literal["train", "validation"] = "train") -> datasets.Dataset:
    """Load the shipped debtags sample (3,000 train or 1,000 validation rows).

    Args:
        split (`str`, *optional*, defaults to `"train"`): ``"train"`` or ``"validation"``.

    Returns:
        `datasets.Dataset`: Columns ``package``, ``text`` and ``labels`` (lists of label names).

    Raises:
        ValueError: If `split` is not one of the two.

    Example:
        >>> load_sample("validation").num_rows
        1000
    """
    if split not in SAMPLE_FILES:
        raise ValueError(f"split is {split!r}; expected one of {sorted(SAMPLE_FILES)}")
    records = _read_jsonl(Path(SAMPLE_DIR) / SAMPLE_FILES[split], split)
    features = datasets.Features(
        {
            "package": datasets.Value("string"),
            "text": datasets.Value("string"),
            "labels": datasets.List(datasets.Value("string")),
        }
    )
    return datasets.Dataset.from_dict(_columns_from_records(records, split), features=features)
