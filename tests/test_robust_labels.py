"""Labels cells that are strings read the same from a DataFrame as from a CSV file (issue 23).

`pd.read_csv` and `astype(str)` leave a list of label names as the string "['politics']"; a user may write
"sports,politics". Neither may train a label named "sports,politics" or "['politics']".
"""

from __future__ import annotations

import datasets
import pandas as pd
import pytest

from mlclf_hub.data import LabelSpace, infer_label_space, to_dataset, to_rows

TEXTS = ["the team won", "a new law", "new chip", "the vote", "old phone"]
LISTS = [["sports", "politics"], ["politics"], [], ["tech"], ["sports"]]
NAMES = ["politics", "sports", "tech"]


def labels_of(data) -> list[list[str]]:
    return to_rows(data)["labels"][:]


def test_dataframe_string_cells_are_parsed_like_csv_cells(tmp_path):
    cells = ["sports|politics", "['politics']", "[]", '["tech"]', "sports"]
    frame = pd.DataFrame({"text": TEXTS, "labels": cells})
    assert labels_of(frame) == LISTS
    assert infer_label_space(frame).names == NAMES
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    assert labels_of(path) == LISTS  # the file reader reads the same cells the same way


def test_a_frame_written_by_pandas_reads_back_as_it_was(tmp_path):
    frame = pd.DataFrame({"text": TEXTS, "labels": LISTS})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)  # list cells become "['sports', 'politics']"
    assert labels_of(pd.read_csv(path)) == LISTS
    assert labels_of(path) == LISTS
    assert labels_of(frame.astype(str)) == LISTS
    assert labels_of(datasets.Dataset.from_pandas(pd.read_csv(path))) == LISTS  # load_dataset("csv") alike
    space = LabelSpace(NAMES)
    encoded = to_dataset(frame.astype(str), _tokenizer(), space)["labels"]
    assert encoded == [space.encode(labels) for labels in LISTS]


def test_string_vectors_are_vectors():
    frame = pd.DataFrame({"text": TEXTS[:2], "labels": ["[1, 0, 1]", "[0, 0, 0]"]})
    assert labels_of(frame) == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_a_single_name_is_one_label_as_documented():
    frame = pd.DataFrame({"text": TEXTS[:2], "labels": ["sports", "tech"]})
    assert labels_of(frame) == [["sports"], ["tech"]]
    assert labels_of([("a text", "sports")]) == [["sports"]]


@pytest.mark.parametrize("cell", ["sports,politics", "sports, politics", "sports|politics,tech"])
def test_comma_separated_names_are_refused_naming_the_row_and_column(cell, tmp_path):
    frame = pd.DataFrame({"text": TEXTS[:3], "tags": ["sports", "tech", cell]})
    message = r"row 2 of the train split, column 'tags': a labels cell with ',' outside a list"
    with pytest.raises(ValueError, match=message):
        to_rows(frame, label_column="tags")
    with pytest.raises(ValueError, match=message):
        infer_label_space(frame, label_column="tags")
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        to_rows(path, label_column="tags")
    # a name with a comma in it is fine inside a list
    assert labels_of(pd.DataFrame({"text": ["x"], "labels": ['["arts, crafts"]']})) == [["arts, crafts"]]


@pytest.mark.parametrize("cell", ["['a' 'b']", "[games", "['a', ['b']]", "[{'a': 1}]"])
def test_unreadable_list_strings_are_refused_naming_the_row(cell):
    frame = pd.DataFrame({"text": TEXTS[:2], "labels": [["sports"], cell]}, index=[10, 11])
    with pytest.raises(
        ValueError, match=r"row 1 \(index 11\) of the train split, column 'labels': unreadable"
    ):
        to_rows(frame)


def _tokenizer():
    from tests.tiny_models import tiny_tokenizer

    return tiny_tokenizer()
