import contextlib
import io
import json
import logging as std_logging

import pytest
from transformers import AutoModel
from transformers.utils import logging

from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.cli import _setup_logging, main
from tests.tiny_models import tiny_backbone_config, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows


@pytest.fixture
def encoder_dir(tmp_path):
    path = tmp_path / "encoder"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for text, labels in rows:
            handle.write(json.dumps({"text": text, "labels": labels}) + "\n")
    return path


def test_train_predict_evaluate(tmp_path, encoder_dir, capsys):
    train_file = write_jsonl(tmp_path / "train.jsonl", keyword_rows(80, 1))
    val_file = write_jsonl(tmp_path / "val.jsonl", keyword_rows(30, 2))
    out = tmp_path / "model"
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(encoder_dir),
            "--train_file",
            str(train_file),
            "--validation_file",
            str(val_file),
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "2",
            "--learning_rate",
            "0.005",
            "--use_cpu",
            "--disable_tqdm",
            "true",
            "--save_strategy",
            "no",
            "--threshold_min_positives",
            "5",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "| f1_micro |" in printed and "Thresholds: global" in printed
    model = AutoModelForMultiLabel.from_pretrained(out)
    assert sorted(model.config.labels) == sorted(LABELS)

    texts = tmp_path / "texts.txt"
    texts.write_text("team won the game\nvote law\n")
    assert main(["predict", "--model", str(out), "--input", str(texts), "--threshold", "0.0"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["team won the game", "vote law"]
    assert all(sorted(line["labels"]) == sorted(LABELS) for line in lines)  # threshold 0: every label

    assert main(["evaluate", "--model", str(out), "--input", str(val_file)]) == 0
    assert "| lrap |" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, encoder_dir, capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": "ok", "labels": ["sports"]})
        + "\n"
        + json.dumps({"text": "", "labels": []})
        + "\n"
    )
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(encoder_dir),
            "--train_file",
            str(bad),
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mlclf-hub train: error:") and "row 1" in err
    assert not (tmp_path / "o").exists()
    assert main(["predict", "--model", str(encoder_dir), "--input", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_log_lines_follow_a_swapped_stderr():
    """In-process runs (tests, notebooks) swap and close `sys.stderr`; the CLI's log lines must follow it."""
    _setup_logging()
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        logging.get_logger("mlclf_hub.trainer").info("one")
    first.close()  # what pytest does to a captured stream
    with contextlib.redirect_stderr(second):
        logging.get_logger("mlclf_hub.trainer").info("two")
    assert second.getvalue() == "[mlclf_hub] two\n"
    assert len(std_logging.getLogger("mlclf_hub").handlers) == 1
    _setup_logging()  # a second run adds no second handler
    assert len(std_logging.getLogger("mlclf_hub").handlers) == 1
