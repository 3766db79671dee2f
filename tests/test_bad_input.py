"""Bad input across the API, the facade, the CLI and the pipeline: each gets a clear error (or warning) that names
the argument, file or row, raised before anything is trained or written. `docs/bad-input.md` lists them all."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile

import numpy as np
import pytest
import torch
from transformers import AutoModel, pipeline

from mlclf_hub import AutoModelForMultiLabel, MultiLabelConfig
from mlclf_hub.auto import ModelFilesError, load_tokenizer
from mlclf_hub.cli import main
from mlclf_hub.data import to_rows
from mlclf_hub.inference import predict_proba
from mlclf_hub.processing_multilabel import (
    TruncationCounter,
    check_text,
    count_truncated,
    max_positions,
    tokenize_windows,
)
from mlclf_hub.saving import save_model
from mlclf_hub.simple import ClassificationArgs, MultiLabelClassificationArgs, MultiLabelClassificationModel
from mlclf_hub.trainer import MultiLabelTrainer, check_output_dir, train
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args, train_tiny

LONG = " ".join(["the team won", "vote party law", "code chip phone"] * 8)  # 72 words: over 64 positions
TRAINER_LOGGER = "mlclf_hub.trainer"
PIPELINE_LOGGER = "mlclf_hub.pipeline_multilabel"


class TrainingStarted(Exception):
    """Raised by `no_training` where the first training step would run."""


@pytest.fixture
def no_training(monkeypatch):
    """`MultiLabelTrainer.train` raises `TrainingStarted`: whatever `train()` checks first must fail before it."""

    def refuse(self, *args, **kwargs):
        raise TrainingStarted("the first training step was reached")

    monkeypatch.setattr(MultiLabelTrainer, "train", refuse)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny BERT encoder checkpoint (64 positions) with its tokenizer."""
    path = tmp_path_factory.mktemp("bad-encoder") / "encoder"
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny model with a 5-row memory and a 2-token lexical channel."""
    torch.manual_seed(0)
    model = tiny_model(labels=LABELS)
    model.set_knn_memory(torch.randn(5, 32), torch.zeros(5, 3))
    model.set_lexical_model(torch.tensor([9, 5]), torch.ones(2), torch.zeros(2, 3))
    return save_model(model, tmp_path_factory.mktemp("bad-model") / "model", tiny_tokenizer())


def edited_copy(model_dir, tmp_path, **changes):
    """A copy of `model_dir` whose config.json has `changes`."""
    copy = tmp_path / "edited"
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(changes)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps({"text": text, "labels": labels}) + "\n" for text, labels in rows))


def one_line_error(code: int, captured) -> str:
    """The CLI's error: exit code 2, one line on stderr (after any log lines), no traceback."""
    assert code == 2, captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err.strip().splitlines()[-1]


# ---------------------------------------------------------------------------------------------------------------
# Training arguments: refused when they are made, before anything is loaded or written
# ---------------------------------------------------------------------------------------------------------------

BAD_TRAINING_ARGUMENTS = [
    ("learning_rate", -1.0),
    ("learning_rate", 0.0),
    ("learning_rate", math.nan),
    ("head_learning_rate", math.nan),
    ("num_train_epochs", 0),
    ("num_train_epochs", -1.0),
    ("per_device_train_batch_size", 0),
    ("per_device_eval_batch_size", 0),
    ("gradient_accumulation_steps", 0),
    ("weight_decay", -0.1),
    ("max_grad_norm", -1.0),
    ("probe_c", 0.0),
    ("max_pos_weight", 0.0),
    ("focal_gamma", -1.0),
    ("threshold_min_positives", -1),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_TRAINING_ARGUMENTS, ids=[f"{n}={v}" for n, v in BAD_TRAINING_ARGUMENTS]
)
def test_training_arguments_refuse_what_training_would_fail_on(name, value, tmp_path):
    with pytest.raises(ValueError, match=f"^`{name}` must be (a number|an int) >=? "):
        MultiLabelTrainingArguments(output_dir=str(tmp_path / "out"), **{name: value})
    assert not (tmp_path / "out").exists()


def test_zero_epochs_are_fine_when_max_steps_decides(tmp_path):
    args = MultiLabelTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=0, max_steps=3)
    assert args.max_steps == 3


def test_cli_negative_learning_rate_is_one_line_and_nothing_is_written(encoder_dir, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, keyword_rows(8, 1))
    out = tmp_path / "out"
    argv = [
        "train",
        "--model_name_or_path",
        str(encoder_dir),
        "--train_file",
        str(data),
        "--output_dir",
        str(out),
    ]
    code = main([*argv, "--learning_rate", "-1"])
    captured = capsys.readouterr()
    line = one_line_error(code, captured)
    assert len(captured.err.strip().splitlines()) == 1, captured.err  # nothing loaded before the error
    assert line == "mlclf-hub train: error: `learning_rate` must be a number > 0, got -1.0."
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# train(): everything that can be checked is checked before the first training step
# ---------------------------------------------------------------------------------------------------------------


def test_output_dir_that_is_a_file_fails_before_anything_is_loaded(tmp_path, no_training):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    with pytest.raises(ValueError, match=r"`output_dir` '.*afile' is a file; expected a directory"):
        train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(afile)))
    assert afile.read_text() == "keep me"


def test_output_dir_below_a_file_fails_before_anything_is_loaded(tmp_path, no_training):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(
        ValueError, match=r"'.*afile' is a file, not a directory, so the directory cannot be made"
    ):
        train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(tmp_path / "afile" / "model")))


def test_unwritable_output_dir_fails_before_anything_is_loaded(tmp_path, monkeypatch, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: deny it where the check tries, as a read-only mount would
        real = tempfile.TemporaryFile

        def denying(*args, **kwargs):
            if str(kwargs.get("dir")) == str(locked):
                raise PermissionError(13, "Permission denied", str(locked))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", denying)
    try:
        with pytest.raises(
            ValueError, match=r"`output_dir` '.*model': cannot write in '.*locked' \(Permission denied"
        ):
            train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(locked / "model")))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_check_output_dir_creates_nothing(tmp_path):
    check_output_dir(tmp_path / "a" / "b" / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_no_empty_output_dir(tmp_path, no_training):
    with pytest.raises(TrainingStarted):
        train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(tmp_path / "new" / "model")))
    assert list(tmp_path.iterdir()) == []  # the Trainer made new/model at start-up: both are gone


def test_a_failed_run_keeps_an_output_dir_that_was_there(tmp_path, no_training):
    (tmp_path / "model").mkdir()
    with pytest.raises(TrainingStarted):
        train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(tmp_path / "model")))
    assert (tmp_path / "model").is_dir()


def test_cli_output_dir_that_is_a_file_is_one_line_before_training(
    encoder_dir, tmp_path, capsys, no_training
):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, keyword_rows(8, 1))
    (tmp_path / "afile").write_text("keep me")
    argv = ["train", "--model_name_or_path", str(encoder_dir), "--train_file", str(data)]
    code = main([*argv, "--output_dir", str(tmp_path / "afile")])
    line = one_line_error(code, capsys.readouterr())
    assert line.startswith("mlclf-hub train: error: `output_dir` ") and "is a file" in line
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize(
    ("eval_rows", "reason"),
    [
        (
            2,
            "Thresholds will not be tuned: the validation split has 2 rows, too few to tune thresholds on (3)",
        ),
        (
            4,
            "No held-out metrics will be measured: the validation split has 4 rows, too few to cut in two halves",
        ),
    ],
    ids=["2 rows", "4 rows"],
)
def test_a_validation_split_too_small_for_the_threshold_folds_is_said_before_training(
    eval_rows, reason, tmp_path, caplog, no_training
):
    with caplog.at_level(logging.WARNING, logger=TRAINER_LOGGER), pytest.raises(TrainingStarted):
        train_tiny(
            keyword_rows(16, 1), keyword_rows(eval_rows, 2), args=tiny_training_args(str(tmp_path / "o"))
        )
    assert reason in caplog.text


def test_a_validation_split_large_enough_is_not_warned_about(tmp_path, caplog, no_training):
    with caplog.at_level(logging.WARNING, logger=TRAINER_LOGGER), pytest.raises(TrainingStarted):
        train_tiny(keyword_rows(16, 1), keyword_rows(6, 2), args=tiny_training_args(str(tmp_path / "o")))
    assert "validation split" not in caplog.text


def test_a_label_given_without_positive_training_rows_is_warned_about(
    encoder_dir, tmp_path, caplog, no_training
):
    names = [*LABELS, "weather", "arts"]
    with caplog.at_level(logging.WARNING, logger=TRAINER_LOGGER), pytest.raises(TrainingStarted):
        train(encoder_dir, keyword_rows(16, 1), labels=names, args=tiny_training_args(str(tmp_path / "o")))
    assert "2 of the 5 labels given in `labels=` have no positive training row" in caplog.text
    assert "['weather', 'arts']" in caplog.text


def test_labels_found_in_the_training_rows_are_not_warned_about(encoder_dir, tmp_path, caplog, no_training):
    with caplog.at_level(logging.WARNING, logger=TRAINER_LOGGER), pytest.raises(TrainingStarted):
        train(encoder_dir, keyword_rows(16, 1), labels=LABELS, args=tiny_training_args(str(tmp_path / "o")))
    assert "no positive training row" not in caplog.text


def test_a_training_text_longer_than_the_model_reads_fails_before_training(tmp_path, no_training):
    rows = [*keyword_rows(8, 1), (LONG, ["sports"])]
    with pytest.raises(ValueError, match=r"`max_length` is 128 tokens.*up to 74 tokens.*at most 64 tokens"):
        train_tiny(
            rows, args=tiny_training_args(str(tmp_path / "o"))
        )  # max_length 128, tiny BERT 64 positions


def test_short_texts_train_at_a_max_length_above_the_positions(tmp_path, no_training):
    with pytest.raises(TrainingStarted):  # every check passed: training would start
        train_tiny(keyword_rows(8, 1), args=tiny_training_args(str(tmp_path / "o")))


def test_an_encoder_without_tokenizer_files_is_named(encoder_dir, tmp_path, no_training):
    bare = tmp_path / "bare"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(bare)
    with pytest.raises(ModelFilesError, match=r"bare: no tokenizer files \(tokenizer.json, .*config.json"):
        train(bare, keyword_rows(8, 1), args=tiny_training_args(str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_load_tokenizer_names_a_broken_tokenizer_file(tmp_path):
    tiny_tokenizer().save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(
        ModelFilesError, match=r"the tokenizer could not be loaded \(.*\); save the tokenizer there"
    ):
        load_tokenizer(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Loading a model directory
# ---------------------------------------------------------------------------------------------------------------


def test_a_model_dir_without_config_json_is_named(model_dir, tmp_path):
    copy = tmp_path / "no_config"
    shutil.copytree(model_dir, copy)
    (copy / "config.json").unlink()
    with pytest.raises(
        ModelFilesError, match=r"no_config: no config.json in this directory \(it holds .*model"
    ):
        AutoModelForMultiLabel.from_pretrained(copy)


def test_a_missing_model_dir_is_named(tmp_path):
    with pytest.raises(ModelFilesError, match=r"gone: no such directory; expected a model directory"):
        AutoModelForMultiLabel.from_pretrained(tmp_path / "gone")


def test_a_file_as_model_dir_is_named(tmp_path):
    (tmp_path / "model.bin").write_text("x")
    with pytest.raises(ModelFilesError, match=r"model.bin: is a file; expected a model directory"):
        AutoModelForMultiLabel.from_pretrained(tmp_path / "model.bin")


@pytest.mark.parametrize("edited", [7, 3])
def test_an_edited_memory_size_names_knn_memory_size(model_dir, tmp_path, edited):
    copy = edited_copy(model_dir, tmp_path, knn_memory_size=edited)
    with pytest.raises(
        ModelFilesError,
        match=rf"config.json says knn_memory_size={edited} but the weights hold a nearest-neighbour memory of 5 "
        r"rows \(knn_\w+ of shape \[5, \d+\]\).*put back knn_memory_size=5",
    ):
        AutoModelForMultiLabel.from_pretrained(copy)


def test_a_memory_size_edited_to_zero_does_not_silently_drop_the_memory(model_dir, tmp_path):
    copy = edited_copy(model_dir, tmp_path, knn_memory_size=0)
    with pytest.raises(
        ModelFilesError, match=r"knn_memory_size=0 but the weights hold a nearest-neighbour memory"
    ):
        AutoModelForMultiLabel.from_pretrained(copy)


def test_an_edited_lexical_size_names_lexical_vocab_size(model_dir, tmp_path):
    copy = edited_copy(model_dir, tmp_path, lexical_vocab_size=4)
    with pytest.raises(
        ModelFilesError, match=r"lexical_vocab_size=4 but the weights hold a lexical channel of 2 rows"
    ):
        AutoModelForMultiLabel.from_pretrained(copy)


def test_an_unedited_model_loads_with_its_tables(model_dir):
    model = AutoModelForMultiLabel.from_pretrained(model_dir)
    assert model.knn_keys.shape == (5, 32) and model.lexical_vocab.tolist() == [5, 9]


# ---------------------------------------------------------------------------------------------------------------
# Prediction lengths: predict_proba and the pipeline resolve them in processing_multilabel.resolve_preprocessing
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classify(tmp_path_factory):
    torch.manual_seed(0)
    directory = save_model(
        tiny_model(labels=LABELS), tmp_path_factory.mktemp("bad-pipe") / "m", tiny_tokenizer()
    )
    return pipeline("multi-label-classification", model=str(directory))


@pytest.mark.parametrize("max_length", [0, -5, 2])
def test_a_max_length_under_3_is_an_error(max_length, classify):
    with pytest.raises(ValueError, match=rf"`max_length` must be >= 3 tokens, got {max_length}"):
        predict_proba(tiny_model(), tiny_tokenizer(), ["the game"], max_length=max_length)
    with pytest.raises(ValueError, match=rf"`max_length` must be an int >= 3 tokens, got {max_length}"):
        classify("the game", max_length=max_length)


@pytest.mark.parametrize("max_length", [5.0, True, "64"])
def test_a_max_length_that_is_not_an_int_is_an_error(max_length):
    with pytest.raises(TypeError, match=r"`max_length` must be an int or None"):
        predict_proba(tiny_model(), tiny_tokenizer(), ["the game"], max_length=max_length)


@pytest.mark.parametrize("max_length", [65, 1000, 10**30])
def test_a_max_length_above_the_position_table_names_the_limit(max_length, classify):
    limit = "the model reads at most 64 tokens (its position table, `max_position_embeddings`); pass max_length <= 64"
    with pytest.raises(ValueError, match="^" + re.escape(f"`max_length` is {max_length} tokens but {limit}")):
        predict_proba(tiny_model(), tiny_tokenizer(), [LONG], max_length=max_length)
    with pytest.raises(ValueError, match=r"the model reads at most 64 tokens"):
        classify(LONG, max_length=max_length)


def test_roberta_positions_start_after_the_padding_id():
    model, tokenizer = tiny_model("roberta"), tiny_tokenizer()  # 70 positions, pad id 1: 68 tokens
    assert max_positions(model.config) == 68
    assert predict_proba(model, tokenizer, [LONG], max_length=68).shape == (1, 3)
    with pytest.raises(ValueError, match=r"the model reads at most 68 tokens"):
        predict_proba(model, tokenizer, [LONG], max_length=69)


def test_encoders_without_a_position_table_have_no_limit():
    assert max_positions(tiny_model("modernbert").config) is None


def test_the_default_length_of_an_untrained_model_is_within_its_positions():
    model, tokenizer = tiny_model(), tiny_tokenizer()  # the tokenizer's model_max_length is "unlimited"
    default = predict_proba(model, tokenizer, [LONG])  # was 512 tokens: a tensor-size RuntimeError
    torch.testing.assert_close(
        torch.tensor(default), torch.tensor(predict_proba(model, tokenizer, [LONG], max_length=64))
    )


def test_a_saved_length_above_the_positions_reads_at_the_limit():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    model.config.max_length = 128  # train()'s default on an encoder with 64 positions
    at_limit = torch.tensor(predict_proba(model, tokenizer, [LONG], max_length=64))
    torch.testing.assert_close(torch.tensor(predict_proba(model, tokenizer, [LONG])), at_limit)
    # asking for the saved length by name is the saved contract (the facade passes max_seq_length so)
    torch.testing.assert_close(
        torch.tensor(predict_proba(model, tokenizer, [LONG], max_length=128)), at_limit
    )


# ---------------------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------------------


def test_pipeline_of_an_empty_list_is_an_empty_list(classify):
    assert classify([]) == []


@pytest.mark.parametrize(
    "inputs",
    ["team \ud800 won", {"text": "team won", "text_pair": "\udfff"}, ["fine", "team \ud800 won"]],
    ids=["text", "text_pair", "in a list"],
)
def test_pipeline_names_a_lone_surrogate(inputs, classify):
    with pytest.raises(
        ValueError, match=r"a lone surrogate '\\ud[8f]\w\w' at character \d+ cannot be encoded as UTF-8"
    ):
        classify(inputs)


def test_pipeline_warns_once_per_call_with_how_many_texts_were_cut(classify, caplog):
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        classify([LONG, "new chip", LONG])
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert warnings == [
        "2 of 3 texts were longer than max_length=64 tokens and were truncated: only their first 64 tokens were "
        "read. Pass sliding_window=True to read long texts whole (as overlapping windows whose scores are "
        "aggregated)."
    ]


def test_pipeline_over_a_generator_warns_once_when_it_is_done(classify, caplog):
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        results = classify(text for text in [LONG, "new chip", LONG, LONG])
        assert not [r for r in caplog.records if "truncated" in r.getMessage()]  # nothing read yet
        assert len(list(results)) == 4
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("3 of 4 texts were longer than max_length=64")


def test_pipeline_reading_windows_or_short_texts_does_not_warn(classify, caplog):
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        classify([LONG, "new chip"], sliding_window=True)
        classify(["new chip", "the game"])
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_pipeline_pairs_cut_say_pairs_are_never_windowed(classify, caplog):
    with caplog.at_level(logging.WARNING, logger=PIPELINE_LOGGER):
        classify({"text": LONG, "text_pair": "new chip"})
    assert "1 of 1 text pair was longer than max_length=64 tokens" in caplog.text
    assert "Text pairs are never read as windows" in caplog.text


def test_truncation_counter_counts_over_several_chunks():
    counter, tokenizer = TruncationCounter(), tiny_tokenizer()
    for chunk in (["the team won the game", "chip"], ["vote on the new law today", "a b c d e f"]):
        tokenize_windows(tokenizer, chunk, 5, on_truncated=counter)
    assert (counter.cut, counter.texts) == (3, 4)
    windows = TruncationCounter()
    tokenize_windows(tokenizer, ["the team won the game"], 5, sliding_window=True, on_truncated=windows)
    assert windows.message() is None


def test_count_truncated_without_a_fast_tokenizer_reads_the_full_rows_again():
    tokenizer = tiny_tokenizer()
    texts = ["the team won the game", "new chip", "a b c"]  # 7, 4 and 5 tokens with [CLS] and [SEP]
    encoded = tokenizer(texts, truncation=True, max_length=5)
    slow = {"input_ids": encoded["input_ids"]}  # what a slow tokenizer gives: no `encodings`
    assert count_truncated(encoded, tokenizer, texts, 5) == count_truncated(slow, tokenizer, texts, 5) == 1


def test_check_text_names_where_the_surrogate_is():
    with pytest.raises(ValueError, match=r"^row 3: a lone surrogate '\\ud800' at character 4"):
        check_text("team\ud800", "row 3")
    assert check_text("café ✓", "row 0") == "café ✓"


# ---------------------------------------------------------------------------------------------------------------
# The simpletransformers facade and the config
# ---------------------------------------------------------------------------------------------------------------

BAD_FACADE_ARGS = [
    ({"num_train_epochs": "abc"}, "`num_train_epochs` must be a number, got str 'abc'."),
    ({"num_train_epochs": 0}, "`num_train_epochs` must be > 0, got 0."),
    ({"learning_rate": "fast"}, "`learning_rate` must be a number, got str 'fast'."),
    ({"learning_rate": -1e-5}, "`learning_rate` must be > 0, got -1e-05."),
    ({"train_batch_size": 0}, "`train_batch_size` must be >= 1, got 0."),
    ({"train_batch_size": 2.5}, "`train_batch_size` must be an int, got float 2.5."),
    ({"train_batch_size": 8.0}, "`train_batch_size` must be an int, got float 8.0."),
    ({"eval_batch_size": None}, "`eval_batch_size` must be an int, got NoneType None."),
    ({"max_seq_length": "128"}, "`max_seq_length` must be an int, got str '128'."),
    ({"manual_seed": True}, "`manual_seed` must be an int or None, got bool True."),
    ({"weight_decay": math.inf}, "`weight_decay` must be a number, got float inf."),
]


@pytest.mark.parametrize(
    ("values", "message"),
    BAD_FACADE_ARGS,
    ids=[",".join(f"{key}={value!r}" for key, value in values.items()) for values, _ in BAD_FACADE_ARGS],
)
def test_facade_args_refuse_values_that_are_not_numbers_of_their_kind(values, message):
    with pytest.raises(ValueError) as raised:
        MultiLabelClassificationArgs(**values)
    assert str(raised.value) == message
    args = ClassificationArgs()
    with pytest.raises(ValueError):
        args.update_from_dict(values)
    assert args == ClassificationArgs()  # a rejected update changes nothing


def test_facade_args_take_fractional_epochs_and_numpy_ints():
    args = ClassificationArgs(num_train_epochs=1.5, train_batch_size=np.int64(8), manual_seed=None)
    assert (args.num_train_epochs, args.train_batch_size) == (1.5, 8)


@pytest.mark.parametrize("num_labels", [0, -1, 2.5, "3", True])
def test_facade_num_labels_zero_is_an_error(encoder_dir, num_labels):
    with pytest.raises(ValueError, match=r"`num_labels` must be an int >= 1, got"):
        MultiLabelClassificationModel("bert", str(encoder_dir), num_labels=num_labels, use_cuda=False)


def test_a_config_without_labels_is_an_error():
    with pytest.raises(ValueError, match=r"MultiLabelConfig: needs at least one label"):
        MultiLabelConfig(backbone_config=tiny_backbone_config("bert"), id2label={})


# ---------------------------------------------------------------------------------------------------------------
# Data files (data.py): the cases that are handled today
# ---------------------------------------------------------------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,labels\nteam won,sports\n".encode())
    assert to_rows(path)[0] == {"text": "team won", "labels": ["sports"]}


def test_a_csv_with_a_header_only_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,labels\n")
    with pytest.raises(ValueError, match=r"^the train split: no rows; expected at least one row"):
        to_rows(path)


def test_predict_proba_warns_once_per_call_over_every_chunk(caplog):
    model, tokenizer = tiny_model(labels=LABELS), tiny_tokenizer()
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.inference"):
        predict_proba(model, tokenizer, [LONG, "new chip", LONG, LONG], chunk_size=2)
        predict_proba(model, tokenizer, [LONG, "new chip"], sliding_window=True)  # windows: nothing is cut
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("3 of 4 texts were longer than max_length=64")
    assert "sliding_window=True" in warnings[0]


@pytest.mark.parametrize(
    "texts", [["fine", "team \ud800 won"], ("fine" if i == 0 else "\udfff" for i in range(2))]
)
def test_predict_proba_names_the_row_of_a_lone_surrogate(texts):
    with pytest.raises(ValueError, match=r"^row 1, field 'text': a lone surrogate '\\ud[8f]\w\w'"):
        predict_proba(tiny_model(labels=LABELS), tiny_tokenizer(), texts)
