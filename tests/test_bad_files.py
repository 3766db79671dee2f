"""Data files users get wrong: each is a ValueError naming the split and the file, never a codec or parser error."""

from __future__ import annotations

import gzip

import pytest

from mlclf_hub.cli import main
from mlclf_hub.data import to_rows

ROW = b'{"text": "the team won", "labels": ["sports"]}\n'


def _write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("latin1.csv", "text,labels\ncaf\xe9,a\n".encode("latin-1"), r"latin1\.csv is not UTF-8 text .*re-save it as UTF-8"),
        ("latin1.jsonl", '{"text": "caf\xe9", "labels": []}\n'.encode("latin-1"), r"latin1\.jsonl is not UTF-8"),
        ("empty.csv", b"", r"empty\.csv is empty; expected a header row"),
        ("extra.csv", b"text,labels\na,b\nc,d,e\n", r"extra\.csv: .*Expected 2 fields in line 3, saw 3; quote a field"),
        ("cut.jsonl.gz", gzip.compress(ROW * 50)[:40], r"cut\.jsonl\.gz is not a complete gzip file"),
        ("fake.jsonl.gz", ROW, r"fake\.jsonl\.gz is not a complete gzip file"),
    ],
)  # fmt: skip
def test_a_bad_file_is_a_value_error_naming_the_split_and_the_file(tmp_path, name, data, message):
    path = _write(tmp_path / name, data)
    with pytest.raises(ValueError, match=rf"^the train split: {message}"):
        to_rows(path, split="train")


def test_byte_order_marks_are_read_past_in_jsonl_and_csv(tmp_path):
    jsonl = _write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + ROW)
    csv = _write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,labels\nthe team won,sports\n")
    for path in (jsonl, csv):
        rows = to_rows(path, split="train")
        assert list(rows["text"]) == ["the team won"] and list(rows["labels"]) == [["sports"]]


@pytest.mark.parametrize(
    "rows", [[("a\ud800b", ["x"])], [{"text": "ok", "labels": []}, {"text": "\udfff", "labels": []}]]
)
def test_a_lone_surrogate_in_a_text_names_the_row(rows):
    with pytest.raises(ValueError, match=r"row \d of the train split, column 'text': a lone surrogate"):
        to_rows(rows, split="train")


def test_the_cli_reads_a_truncated_gzip_as_one_line_and_exit_2(tmp_path, capsys):
    from transformers import AutoModel

    from tests.tiny_models import tiny_backbone_config, tiny_tokenizer

    encoder = tmp_path / "encoder"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    path = _write(tmp_path / "cut.jsonl.gz", gzip.compress(ROW * 50)[:40])
    argv = [
        "train",
        "--model_name_or_path",
        str(encoder),
        "--train_file",
        path,
        "--output_dir",
        str(tmp_path / "out"),
    ]
    capsys.readouterr()  # the encoder's save above
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cut.jsonl.gz is not a complete gzip file" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_csv_record_cut_short_by_a_lone_carriage_return_is_refused_not_read_as_no_labels(tmp_path):
    """pandas' `to_csv` leaves a lone `\\r` in a text unquoted; read back, the record ends there."""
    import pandas as pd

    path = tmp_path / "cr.csv"
    pd.DataFrame({"text": ["the team\rwon", "a vote"], "labels": ["sports", "politics"]}).to_csv(
        path, index=False
    )
    with pytest.raises(ValueError, match=r"^the train split: line 2 of cr\.csv has 1 field, the header 2"):
        to_rows(str(path), split="train")
    pd.DataFrame({"text": ["the team\nwon"], "labels": ["sports"]}).to_csv(path, index=False)  # quoted: fine
    assert list(to_rows(str(path), split="train")["labels"]) == [["sports"]]
