"""Tests for mlclf_hub.data: LabelSpace, every input kind, tokenized output and every rejection."""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
from types import SimpleNamespace

import datasets
import numpy as np
import pandas as pd
import pytest

from mlclf_hub import data
from mlclf_hub.data import (
    DataFileNotFoundError,
    LabelSpace,
    infer_label_space,
    load_labels,
    load_sample,
    sample_labels,
    to_dataset,
    to_rows,
)

NAMES = ["games", "politics", "sports"]
TEXTS = ["the team won a game", "new law and a vote", "old phone chip"]
LABEL_NAMES = [["sports", "games"], ["politics"], []]
VECTORS = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


@pytest.fixture
def space() -> LabelSpace:
    return LabelSpace(NAMES)


# ---------------------------------------------------------------------------------------------
# LabelSpace
# ---------------------------------------------------------------------------------------------


def test_label_space_properties(space):
    assert space.names == NAMES
    assert space.num_labels == len(space) == 3
    assert space.label2id == {"games": 0, "politics": 1, "sports": 2}
    assert space.id2label == {0: "games", 1: "politics", 2: "sports"}
    assert space == LabelSpace(list(NAMES)) and space != LabelSpace(["a"])


def test_label_space_rejects_duplicates_and_empty():
    with pytest.raises(ValueError, match=r"duplicate label name 'b' at positions 1 and 2"):
        LabelSpace(["a", "b", "b"])
    with pytest.raises(ValueError, match="at least one label"):
        LabelSpace([])
    with pytest.raises(TypeError, match="list of label names"):
        LabelSpace("abc")
    with pytest.raises(TypeError, match="position 1"):
        LabelSpace(["a", 3])


def test_label_space_from_label_lists_and_config():
    assert LabelSpace.from_label_lists([["b", "a"], [], "c", ("a",)]).names == ["a", "b", "c"]
    config = SimpleNamespace(id2label={"2": "z", "0": "x", "1": "y"})
    assert LabelSpace.from_config(config).names == ["x", "y", "z"]
    with pytest.raises(ValueError, match=r"ids 0\.\.1"):
        LabelSpace.from_config(SimpleNamespace(id2label={0: "x", 5: "y"}))


def test_label_space_from_transformers_config():
    from transformers import BertConfig

    config = BertConfig(id2label={0: "x", 1: "y"})
    assert LabelSpace.from_config(config).names == ["x", "y"]


@pytest.mark.parametrize(
    "labels",
    [
        ["sports", "games"],
        ("games", "sports"),
        {"sports", "games"},
        np.array(["games", "sports"]),
        [1, 0, 1],
        [True, False, True],
        [1.0, 0.0, 1.0],
        np.array([1, 0, 1]),
        np.array([1.0, 0.0, 1.0], dtype=np.float32),
        pd.Series(["games", "sports"]).to_numpy(),
    ],
)
def test_encode_names_and_vectors(space, labels):
    assert space.encode(labels) == [1.0, 0.0, 1.0]


def test_encode_single_name_empty_and_indices(space):
    assert space.encode("politics") == [0.0, 1.0, 0.0]
    assert space.encode([]) == [0.0, 0.0, 0.0]
    assert space.encode(np.array([], dtype=object)) == [0.0, 0.0, 0.0]
    assert space.encode([2, 0], label_format="indices") == [1.0, 0.0, 1.0]
    assert space.encode([np.int64(1)], label_format="indices") == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("names", [["games"], ["politics", "sports"], [], NAMES])
def test_encode_decode_round_trip(space, names):
    vector = space.encode(names)
    assert space.decode(vector) == sorted(names)
    assert space.encode(space.decode(vector)) == vector


def test_decode_thresholds(space):
    probs = np.array([0.5, 0.49, 0.2])
    assert space.decode(probs) == ["games"]
    assert space.decode(probs, threshold=0.0) == NAMES
    assert space.decode(probs, threshold=[0.6, 0.4, 0.2]) == ["politics", "sports"]
    with pytest.raises(ValueError, match=r"shape \(2,\).*expected 3 values"):
        space.decode([1, 0])


def test_encode_errors(space):
    with pytest.raises(ValueError, match=r"row 4 of the dev split, column 'tags': unknown label.*'sprots'"):
        space.encode(["sprots"], row=4, split="dev", field="tags")
    with pytest.raises(ValueError, match=r"did you mean 'sports'\?"):
        space.encode(["sprots"])
    with pytest.raises(ValueError, match=r"\['games', 'politics', 'sports'\]$"):
        space.encode(["zzzzzz"])
    with pytest.raises(ValueError, match=r"vector of length 2.*length 3"):
        space.encode([0, 1])
    with pytest.raises(ValueError, match=r"value 2 at position 1"):
        space.encode([0, 2, 1])
    with pytest.raises(ValueError, match=r"value 0.5 at position 0"):
        space.encode([0.5, 0, 1])
    with pytest.raises(ValueError, match=r"NaN at position 2"):
        space.encode([0, 1, math.nan])
    with pytest.raises(TypeError, match=r"mix names"):
        space.encode(["games", 1, 0])
    with pytest.raises(ValueError, match=r"label id out of range.*got 3"):
        space.encode([3], label_format="indices")
    with pytest.raises(ValueError, match=r"missing labels"):
        space.encode(None)
    with pytest.raises(TypeError, match=r"labels of type int"):
        space.encode(7)


def test_load_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("b\n\na\n", encoding="utf-8")
    assert load_labels(path) == ["b", "a"]
    with pytest.raises(DataFileNotFoundError, match=r"nope\.txt"):
        load_labels(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------------
# Every input kind gives the same rows
# ---------------------------------------------------------------------------------------------


def _write_jsonl(path, records, compress=False):
    text = "".join(json.dumps(record) + "\n" for record in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _records():
    return [{"text": t, "labels": labels} for t, labels in zip(TEXTS, LABEL_NAMES)]


def _json(path):
    path.write_text(json.dumps(_records()), encoding="utf-8")
    return path


def _parquet(path):
    pd.DataFrame({"text": TEXTS, "labels": LABEL_NAMES}).to_parquet(path)
    return path


def _csv(path, cells, sep=","):
    pd.DataFrame({"text": TEXTS, "labels": cells}).to_csv(path, sep=sep, index=False)
    return path


INPUTS = {
    "dataframe": lambda tmp: pd.DataFrame({"text": TEXTS, "labels": LABEL_NAMES}),
    "dataframe_vectors": lambda tmp: pd.DataFrame({"text": TEXTS, "labels": VECTORS}),
    "headerless_dataframe": lambda tmp: pd.DataFrame(list(zip(TEXTS, [[1, 0, 1], [0, 1, 0], [0, 0, 0]]))),
    "tuples": lambda tmp: list(zip(TEXTS, LABEL_NAMES)),
    "dicts": lambda tmp: _records(),
    "dict_of_columns": lambda tmp: {"text": TEXTS, "labels": LABEL_NAMES},
    "jsonl": lambda tmp: _write_jsonl(tmp / "d.jsonl", _records()),
    "jsonl_gz": lambda tmp: str(_write_jsonl(tmp / "d.jsonl.gz", _records(), compress=True)),
    "json": lambda tmp: _json(tmp / "d.json"),
    "csv_json_lists": lambda tmp: _csv(tmp / "d.csv", [json.dumps(x) for x in LABEL_NAMES]),
    "csv_json_vectors": lambda tmp: _csv(tmp / "d.csv", ["[1, 0, 1]", "[0, 1, 0]", "[0, 0, 0]"]),
    "csv_pipes": lambda tmp: _csv(tmp / "d.csv", ["sports|games", "politics", ""]),
    "csv_gz": lambda tmp: _csv(tmp / "d.csv.gz", ["sports | games", "politics", ""]),
    "tsv": lambda tmp: _csv(tmp / "d.tsv", ["sports|games", "politics", ""], sep="\t"),
    "parquet": lambda tmp: _parquet(tmp / "d.parquet"),
    "dataset": lambda tmp: datasets.Dataset.from_dict({"text": TEXTS, "labels": LABEL_NAMES}),
}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_input_kind(kind, tmp_path, space, tiny_tokenizer):
    source = INPUTS[kind](tmp_path)
    rows = to_rows(source)
    assert rows["text"][:] == TEXTS
    encoded = to_dataset(source, tiny_tokenizer, space, keep_text=True)
    assert encoded["text"][:] == TEXTS
    assert encoded.with_format("numpy")["labels"][:].tolist() == VECTORS


def test_to_rows_features():
    names = to_rows(list(zip(TEXTS, LABEL_NAMES)))
    assert names.features["labels"] == datasets.List(datasets.Value("string"))
    assert names[0] == {"text": TEXTS[0], "labels": ["sports", "games"]}
    vectors = to_rows(pd.DataFrame({"text": TEXTS, "labels": [[1, 0], [True, False], []]}))
    assert vectors.features["labels"] == datasets.List(datasets.Value("float32"))
    assert vectors["labels"][:] == [[1.0, 0.0], [1.0, 0.0], []]
    with pytest.raises(
        TypeError, match=r"row 1 of the train split, column 'labels'.*row 0 holds label names"
    ):
        to_rows([("a", ["x"]), ("b", [0, 1])])


def test_dataset_with_class_label_ids(space, tiny_tokenizer):
    features = datasets.Features(
        {"text": datasets.Value("string"), "labels": datasets.List(datasets.ClassLabel(names=NAMES))}
    )
    ids = [[2, 0], [1], []]
    source = datasets.Dataset.from_dict({"text": TEXTS, "labels": ids}, features=features)
    assert to_rows(source)["labels"][:] == [["sports", "games"], ["politics"], []]
    assert to_dataset(source, tiny_tokenizer, space).with_format("numpy")["labels"][:].tolist() == VECTORS


def test_headerless_numpy_int_column_names(space, tiny_tokenizer):
    frame = pd.DataFrame(list(zip(TEXTS, LABEL_NAMES)), columns=pd.Index([0, 1], dtype="int64"))
    assert to_rows(frame)["labels"][:] == LABEL_NAMES
    with pytest.raises(ValueError, match=r"columns of different lengths \{'text': 3, 'labels': 2\}"):
        to_rows({"text": TEXTS, "labels": LABEL_NAMES[:2]})


def test_other_column_names(space, tiny_tokenizer):
    frame = pd.DataFrame({"body": TEXTS, "tags": LABEL_NAMES, "id": [1, 2, 3]})
    encoded = to_dataset(frame, tiny_tokenizer, space, text_column="body", label_column="tags")
    assert encoded.with_format("numpy")["labels"][:].tolist() == VECTORS
    assert "id" not in encoded.column_names


def test_text_pairs(space, tiny_tokenizer):
    frame = pd.DataFrame({"text": TEXTS, "second": ["a game", "a vote", "a chip"], "labels": LABEL_NAMES})
    encoded = to_dataset(frame, tiny_tokenizer, space, text_pair_column="second")
    assert encoded[0]["token_type_ids"] == [0] * 7 + [1] * 3
    assert tiny_tokenizer.decode(encoded[0]["input_ids"]) == "[CLS] the team won a game [SEP] a game [SEP]"
    triples = [(t, "a game", labels) for t, labels in zip(TEXTS, LABEL_NAMES)]
    assert to_dataset(triples, tiny_tokenizer, space)[0]["input_ids"] == encoded[0]["input_ids"]
    assert to_rows(triples).column_names == ["text", "text_pair", "labels"]


# ---------------------------------------------------------------------------------------------
# Tokenized output
# ---------------------------------------------------------------------------------------------


def test_tokenized_output(space, tiny_tokenizer):
    encoded = to_dataset(list(zip(TEXTS, LABEL_NAMES)), tiny_tokenizer, space)
    assert encoded.column_names == ["labels", "input_ids", "token_type_ids", "attention_mask"]
    assert encoded.features["labels"] == datasets.List(datasets.Value("float32"))
    labels = encoded.with_format("numpy")["labels"][:]
    assert labels.dtype == np.float32 and labels.shape == (3, 3)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    assert lengths == [7, 7, 5], "texts are not padded"
    pad = tiny_tokenizer.pad_token_id
    assert all(pad not in ids for ids in encoded["input_ids"])
    assert all(set(mask) == {1} for mask in encoded["attention_mask"])
    assert tiny_tokenizer.unk_token_id not in encoded[0]["input_ids"]


def test_truncation_and_batch_collation(space, tiny_tokenizer):
    from transformers import DataCollatorWithPadding

    encoded = to_dataset(list(zip(TEXTS, LABEL_NAMES)), tiny_tokenizer, space, max_length=4, batch_size=2)
    assert [len(ids) for ids in encoded["input_ids"]] == [4, 4, 4]
    batch = DataCollatorWithPadding(tiny_tokenizer)([encoded[i] for i in range(3)])
    assert tuple(batch["labels"].shape) == (3, 3) and str(batch["labels"].dtype) == "torch.float32"


def test_sliding_windows_cover_long_texts_and_repeat_their_labels(space, tiny_tokenizer):
    long_text = " ".join(["game"] * 20 + ["vote"])  # 21 tokens + 2 special
    rows = [(long_text, ["sports"]), ("vote", ["politics"])]
    encoded = to_dataset(rows, tiny_tokenizer, space, max_length=10, window_stride=2, keep_text=True)
    windows = [ids for ids, text in zip(encoded["input_ids"], encoded["text"]) if text == long_text]
    assert len(windows) > 2 and all(len(ids) <= 10 for ids in windows)
    vote = tiny_tokenizer.convert_tokens_to_ids("vote")
    assert vote in windows[-1] and vote not in windows[0]  # the end of the text is read
    assert encoded["labels"][: len(windows)] == [space.encode(["sports"])] * len(windows)
    assert encoded["labels"][-1] == space.encode(["politics"]) and encoded["text"][-1] == "vote"
    truncated = to_dataset(rows, tiny_tokenizer, space, max_length=10)
    assert truncated.num_rows == 2 and vote not in truncated[0]["input_ids"]
    with pytest.raises(ValueError, match="sliding windows are for single texts only"):
        pair = [{"text": "a", "text_b": "b", "labels": ["sports"]}]
        to_dataset(pair, tiny_tokenizer, space, text_pair_column="text_b", window_stride=2)
    for bad in (-1, 8, 2.5):  # windows of 10 tokens hold 8 text tokens: they can share at most 7
        with pytest.raises(
            ValueError, match="`window_stride` must be an int >= 0 and under the 8 text tokens"
        ):
            to_dataset(rows, tiny_tokenizer, space, max_length=10, window_stride=bad)
    assert to_dataset(rows, tiny_tokenizer, space, max_length=10, window_stride=7).num_rows > 2


def test_prediction_input_without_labels(tiny_tokenizer):
    encoded = to_dataset(TEXTS, tiny_tokenizer, None, require_labels=False)
    assert encoded.column_names == ["input_ids", "token_type_ids", "attention_mask"]
    frame = pd.DataFrame({"text": TEXTS})
    assert to_dataset(frame, tiny_tokenizer, None, require_labels=False).num_rows == 3
    with pytest.raises(ValueError, match=r"no labels column 'labels'; found columns \['text'\]"):
        to_dataset(frame, tiny_tokenizer, None)
    with pytest.raises(TypeError, match=r"label_space is None"):
        to_dataset(list(zip(TEXTS, LABEL_NAMES)), tiny_tokenizer, None)


def test_indices_label_format(space, tiny_tokenizer):
    rows = list(zip(TEXTS, [[2, 0], [1], []]))
    encoded = to_dataset(rows, tiny_tokenizer, space, label_format="indices")
    assert encoded.with_format("numpy")["labels"][:].tolist() == VECTORS


# ---------------------------------------------------------------------------------------------
# Rejections name the split, row, column, value and what was expected
# ---------------------------------------------------------------------------------------------

GOOD = [("the game", ["games"]), ("a vote", ["politics"])]

BAD_ROWS = [
    (
        [*GOOD, (None, ["games"])],
        ValueError,
        r"row 2 of the train split, column 'text': missing text: got None",
    ),
    ([*GOOD, (math.nan, ["games"])], ValueError, r"row 2 .*'text': missing text: got nan"),
    ([*GOOD, (42, ["games"])], TypeError, r"row 2 .*'text': text of type int: got 42; expected a string"),
    ([*GOOD, ("", ["games"])], ValueError, r"row 2 .*'text': empty or whitespace-only text: got ''"),
    ([*GOOD, (" \n\t", ["games"])], ValueError, r"row 2 .*'text': empty or whitespace-only text"),
    (
        [*GOOD, ("ok", ["sprots"])],
        ValueError,
        r"row 2 .*'labels': unknown label: got 'sprots'.*did you mean 'sports'",
    ),
    ([*GOOD, ("ok", None)], ValueError, r"row 2 .*'labels': missing labels"),
    ([*GOOD, ("ok", 3.5)], TypeError, r"row 2 .*'labels': labels of type float"),
    ([("a", [1, 0, 0]), ("b", [0, 1])], ValueError, r"row 1 .*'labels': vector of length 2: got \[0, 1\]"),
    ([("a", [1, 0, 0]), ("b", [0, 1, 5])], ValueError, r"row 1 .*'labels': value 5 at position 2"),
    ([("a", [1, 0, 0]), ("b", [0, math.nan, 1])], ValueError, r"row 1 .*'labels': NaN at position 1"),
    (
        [("a", ["games"]), ("b", "c", "d", "e")],
        TypeError,
        r"row 1 of the train split: a row unlike the first",
    ),
]


@pytest.mark.parametrize("rows, error, pattern", BAD_ROWS)
def test_bad_rows(rows, error, pattern, space, tiny_tokenizer):
    with pytest.raises(error, match=pattern):
        to_dataset(rows, tiny_tokenizer, space)


def test_long_values_are_shortened(space):
    with pytest.raises(ValueError) as info:
        space.encode(["x" * 500], row=0)
    assert "x" * 61 not in str(info.value) and "..." in str(info.value)


def test_split_name_and_dataframe_index_in_message(space, tiny_tokenizer):
    frame = pd.DataFrame({"text": ["a game", "a vote"], "labels": [["games"], ["sprots"]]}, index=[10, 11])
    pattern = r"row 1 \(index 11\) of the validation split, column 'labels': unknown label"
    with pytest.raises(ValueError, match=pattern):
        to_dataset(frame, tiny_tokenizer, space, split="validation")


def test_missing_label_column(space, tiny_tokenizer):
    frame = pd.DataFrame({"text": ["a"], "tags": [["games"]], "Label": [["games"]]})
    pattern = r"the train split: no labels column 'labels'; found columns \['Label', 'tags', 'text'\]"
    with pytest.raises(ValueError, match=pattern):
        to_dataset(frame, tiny_tokenizer, space)
    with pytest.raises(ValueError, match=r"no text column 'body'"):
        to_rows(frame, text_column="body")


@pytest.mark.parametrize("empty", [[], pd.DataFrame({"text": [], "labels": []}), {"text": []}])
def test_empty_input(empty, space, tiny_tokenizer):
    with pytest.raises(ValueError, match=r"the test split: no rows"):
        to_dataset(empty, tiny_tokenizer, space, split="test")


def test_files_rejected(tmp_path, space, tiny_tokenizer):
    with pytest.raises(ValueError, match=r"unsupported file suffix '.xlsx'.*expected one of .csv"):
        to_rows(tmp_path / "data.xlsx")
    with pytest.raises(ValueError, match=r"not found") as info:
        to_rows(str(tmp_path / "missing.jsonl"))
    assert isinstance(info.value, FileNotFoundError)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "labels": []}\n\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 1 of the train split: invalid JSON on line 3"):
        to_rows(bad_json)
    bad_csv = _csv(tmp_path / "bad.csv", ['["games"]', "[games", "politics"])
    with pytest.raises(
        ValueError, match=r"row 1 of the train split, column 'labels': unreadable labels cell"
    ):
        to_rows(bad_csv)
    blank_csv = _csv(tmp_path / "blank.csv", ["games", "games", "games"])
    frame = pd.read_csv(blank_csv)
    frame.loc[2, "text"] = ""
    frame.to_csv(blank_csv, index=False)
    with pytest.raises(ValueError, match=r"row 2 of the train split, column 'text': empty"):
        to_dataset(blank_csv, tiny_tokenizer, space)


def test_dataset_dict_rejected():
    splits = datasets.DatasetDict(
        {name: datasets.Dataset.from_dict({"text": ["a"]}) for name in ("train", "test")}
    )
    with pytest.raises(TypeError, match=re.escape("DatasetDict with splits ['test', 'train']")):
        to_rows(splits)
    with pytest.raises(TypeError, match="unsupported input of type int"):
        to_rows(5)


def test_nothing_built_or_written_when_rejected(tmp_path, space, tiny_tokenizer, monkeypatch):
    source = _write_jsonl(tmp_path / "d.jsonl", [*_records(), {"text": "a", "labels": ["sprots"]}])
    before = sorted(os.listdir(tmp_path))

    def refuse(*args, **kwargs):
        raise AssertionError("a Dataset was built before the input was validated")

    monkeypatch.setattr(datasets.Dataset, "from_dict", refuse)
    monkeypatch.setattr(datasets.Dataset, "map", refuse)
    with pytest.raises(ValueError, match=r"row 3 of the train split, column 'labels': unknown label"):
        to_dataset(source, tiny_tokenizer, space)
    assert sorted(os.listdir(tmp_path)) == before


# ---------------------------------------------------------------------------------------------
# infer_label_space and the shipped sample
# ---------------------------------------------------------------------------------------------


def test_infer_label_space_warns_about_labels_missing_from_train(caplog):
    train = [("a", ["y", "x"]), ("b", [])]
    validation = pd.DataFrame({"text": ["c"], "labels": [["w", "x"]]})
    with caplog.at_level(logging.WARNING, logger=data.logger.name):
        space = infer_label_space(train, validation)
    assert space.names == ["w", "x", "y"]
    assert "labels ['w'] appear in the validation split but never in the train split" in caplog.text
    with pytest.raises(ValueError, match=r"row 0 of the train split, column 'labels': 0/1 vectors"):
        infer_label_space([("a", [0, 1])])


def test_load_sample():
    labels = sample_labels()
    assert len(labels) == 131 == len(set(labels))
    train, validation = load_sample(), load_sample("validation")
    assert (train.num_rows, validation.num_rows) == (3000, 1000)
    assert train.column_names == ["package", "text", "labels"]
    known = set(labels)
    for split in (train, validation):
        assert all(set(row) <= known for row in split["labels"])
    assert not set(train["package"]) & set(validation["package"])
    with pytest.raises(ValueError, match=r"expected one of \['train', 'validation'\]"):
        load_sample("test")


def test_sample_files_are_reproducible_gzip():
    for name in data.SAMPLE_FILES.values():
        with open(os.path.join(data.SAMPLE_DIR, name), "rb") as f:
            header = f.read(8)
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    total = sum(os.path.getsize(os.path.join(data.SAMPLE_DIR, n)) for n in os.listdir(data.SAMPLE_DIR))
    assert total < 1_000_000  # "well under 1 MB" (DESIGN.md)


def test_sample_tokenizes(tiny_tokenizer):
    space = LabelSpace(sample_labels())
    encoded = to_dataset(load_sample("validation"), tiny_tokenizer, space, max_length=32)
    labels = encoded.with_format("numpy")["labels"][:]
    assert labels.shape == (1000, 131) and labels.dtype == np.float32
    assert 2.0 < labels.sum(axis=1).mean() < 5.0


# ---------------------------------------------------------------------------------------------
# Each split is validated once: what to_rows returns is recognised, not checked again
# ---------------------------------------------------------------------------------------------


def _count_text_checks(monkeypatch) -> list[str]:
    """Patch the check every text cell goes through; the list gets the split of each call."""
    calls: list[str] = []
    check = data._check_text

    def counting(value, split, row, column):
        calls.append(split)
        return check(value, split, row, column)

    monkeypatch.setattr(data, "_check_text", counting)
    return calls


def _unrecognised(rows: datasets.Dataset) -> datasets.Dataset:
    """The same rows, features and order as a `to_rows` output, built anew: validated as raw input."""
    return datasets.Dataset.from_dict(rows.to_dict(), features=rows.features)


def test_to_rows_output_is_validated_once(monkeypatch, space, tiny_tokenizer):
    calls = _count_text_checks(monkeypatch)
    train_rows = to_rows(list(zip(TEXTS, LABEL_NAMES)))  # what train() does with each split
    eval_rows = to_rows(GOOD, split="validation")
    assert calls == ["train"] * 3 + ["validation"] * 2
    assert infer_label_space(train_rows, eval_rows) == space
    train_set = to_dataset(train_rows, tiny_tokenizer, space)
    to_dataset(eval_rows, tiny_tokenizer, space, split="validation")
    to_rows(train_rows)
    subsets = [
        train_rows.select([2, 0]),
        train_rows.shuffle(seed=0),
        train_rows.filter(lambda row: row["labels"]),
    ]
    subsets += list(train_rows.train_test_split(test_size=1, seed=0).values())
    for subset in subsets:  # row subsets stay recognised
        to_dataset(subset, tiny_tokenizer, space, max_length=6, window_stride=1)
    assert calls == ["train"] * 3 + ["validation"] * 2  # no text checked twice
    assert train_set.to_dict() == to_dataset(_unrecognised(train_rows), tiny_tokenizer, space).to_dict()
    assert len(calls) == 8  # the rebuilt rows were checked


def test_changed_rows_are_validated_again(monkeypatch, space, tiny_tokenizer):
    rows = to_rows(list(zip(TEXTS, LABEL_NAMES)))
    calls = _count_text_checks(monkeypatch)
    to_dataset(rows.map(lambda row: row), tiny_tokenizer, space)  # a map writes new data: checked again
    assert calls == ["train"] * 3
    blank = rows.map(lambda row: {"text": " "})
    for call in (to_rows, infer_label_space, lambda rows: to_dataset(rows, tiny_tokenizer, space)):
        with pytest.raises(
            ValueError, match=r"row 0 of the train split, column 'text': empty or whitespace-only text"
        ):
            call(blank)
    tags = rows.rename_column("labels", "tags")
    encoded = to_dataset(tags, tiny_tokenizer, space, label_column="tags")
    assert encoded.with_format("numpy")["labels"][:].tolist() == VECTORS


PAIRS = [(text, "a game", labels) for text, labels in zip(TEXTS, LABEL_NAMES)]
SAME_AS_RAW = {
    "names": (list(zip(TEXTS, LABEL_NAMES)), {"keep_text": True}),
    "vectors": (list(zip(TEXTS, VECTORS)), {}),
    "pairs": (PAIRS, {"text_pair_column": "text_pair"}),
    "pairs, pair column not asked for": (PAIRS, {}),
    "windows": (list(zip(TEXTS, LABEL_NAMES)), {"max_length": 5, "window_stride": 1, "keep_text": True}),
}


@pytest.mark.parametrize("case", sorted(SAME_AS_RAW))
def test_to_rows_output_encodes_as_raw_rows_do(case, space, tiny_tokenizer):
    source, kwargs = SAME_AS_RAW[case]
    rows = to_rows(source)
    assert (
        data._validated_label_kind(rows) is not None
        and data._validated_label_kind(_unrecognised(rows)) is None
    )
    expected = to_dataset(_unrecognised(rows), tiny_tokenizer, space, **kwargs)
    assert to_dataset(rows, tiny_tokenizer, space, **kwargs).to_dict() == expected.to_dict()


REJECTED_ALIKE = {
    "unknown label": lambda rows, tok: to_dataset(rows, tok, LabelSpace(["games", "politics"]), split="test"),
    "other column names": lambda rows, tok: to_dataset(rows, tok, LabelSpace(NAMES), label_column="tags"),
    "no label space": lambda rows, tok: to_dataset(rows, tok, None),
    "labels required": lambda rows, tok: to_dataset(rows.remove_columns("labels"), tok, LabelSpace(NAMES)),
    "vectors carry no names": lambda rows, tok: infer_label_space(rows.select([1, 0])),
    "no rows": lambda rows, tok: to_dataset(rows.select([]), tok, LabelSpace(NAMES)),
}


@pytest.mark.parametrize("case", sorted(REJECTED_ALIKE))
def test_to_rows_output_is_rejected_as_raw_rows_are(case, tiny_tokenizer):
    source = list(zip(TEXTS, VECTORS)) if case == "vectors carry no names" else list(zip(TEXTS, LABEL_NAMES))
    rows = to_rows(source)
    errors = []
    for candidate in (rows, _unrecognised(rows)):
        with pytest.raises((ValueError, TypeError)) as info:
            REJECTED_ALIKE[case](candidate, tiny_tokenizer)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


# ---------------------------------------------------------------------------------------------
# One windowing helper: the tokenizer says how many tokens of a window are special
# ---------------------------------------------------------------------------------------------


def _sep_only_tokenizer():
    """A word-level tokenizer over the tiny vocabulary that adds one special token per text (``... [SEP]``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from tests.tiny_models import WORDS

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A [SEP]", pair="$A [SEP] $B:1 [SEP]:1", special_tokens=[("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]"
    )


def test_training_and_prediction_windows_share_the_tokenizers_stride_bound(space, tiny_tokenizer):
    from mlclf_hub.inference import tokenize_windows
    from tests.tiny_models import WORDS

    text = " ".join(WORDS)  # 13 one-token words
    sep_only = _sep_only_tokenizer()
    assert sep_only.num_special_tokens_to_add(pair=False) == 1
    for tokenizer, text_tokens in ((sep_only, 9), (tiny_tokenizer, 8)):  # windows of 10 tokens
        widest = text_tokens - 1  # neighbours share at most all but one text token
        training = to_dataset([(text, ["sports"])], tokenizer, space, max_length=10, window_stride=widest)
        windows, owner = tokenize_windows(tokenizer, [text], 10, stride=widest, sliding_window=True)
        assert training["input_ids"] == [window["input_ids"] for window in windows]
        assert len(windows) == 13 - text_tokens + 1 and owner.tolist() == [0] * len(windows)
        with pytest.raises(
            ValueError, match=rf"`window_stride` must be an int >= 0 and under the {text_tokens}"
        ):
            to_dataset([(text, ["sports"])], tokenizer, space, max_length=10, window_stride=text_tokens)
        with pytest.raises(ValueError, match=rf"`stride` .* must be in \[0, {widest}\], got {text_tokens}"):
            tokenize_windows(tokenizer, [text], 10, stride=text_tokens, sliding_window=True)


@pytest.mark.parametrize("added", ["concatenate_datasets", "add_item", "add_column"])
def test_rows_added_to_validated_rows_are_validated_again(added):
    """These keep the first table's field metadata: the marker must not vouch for the rows or columns they add."""
    import datasets as hf_datasets

    good = to_rows([("a game", ["games"]), ("vote", ["politics"])])
    if added == "concatenate_datasets":
        bad = hf_datasets.Dataset.from_dict({"text": [""], "labels": [["games"]]}, features=good.features)
        changed, row, column = hf_datasets.concatenate_datasets([good, bad]), 2, "text"
    elif added == "add_item":
        changed, row, column = good.add_item({"text": "  ", "labels": ["games"]}), 2, "text"
    else:
        changed, row, column = good.add_column("text_pair", ["fine", " "]), 1, "text_pair"
    with pytest.raises(ValueError, match=rf"row {row} of the train split, column '{column}': empty"):
        to_rows(changed, text_pair_column="text_pair" if column == "text_pair" else None)
