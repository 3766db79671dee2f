"""One preprocessing contract from training to serving: a model trained at 24 tokens is read at 24 tokens.

`train()` saves its `max_length` (and windows) in the config; `predict_proba`, the pipeline, the CLI and the
simpletransformers facade use it unless told otherwise. Before, they read 512 tokens (the tokenizer's limit,
capped) while thresholds, memory and lexical channel were fitted on texts cut at the training length.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer, pipeline

import mlclf_hub  # noqa: F401  (registers the pipeline)
from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.cli import main
from mlclf_hub.inference import predict, predict_proba
from mlclf_hub.simple import MultiLabelClassificationModel
from tests.train_script import keyword_rows, tiny_training_args, train_tiny

TRAIN_LENGTH = 24
#: Texts of 30-60 tokens (the tiny encoder has 64 positions) and short ones.
TEXTS = [
    "the team won the game " * 8 + "vote on the new law",
    "code for the new chip " * 6 + "the party won the vote " * 3,
    "vote party law",
    "the old phone " * 12 + "team game",
    "a new game",
]


#: Validation rows with long texts (windows matter) and short ones.
VALIDATION = [
    (f"{text} {TEXTS[i % len(TEXTS)]}", labels) for i, (text, labels) in enumerate(keyword_rows(40, 2))
]


def _train(tmp_path, **overrides):
    """Train and save a tiny model at 24 tokens; the reloaded model, its tokenizer, directory and `TrainResult`."""
    args = tiny_training_args(
        str(tmp_path / "model"), max_length=TRAIN_LENGTH, num_train_epochs=2, **overrides
    )
    result = train_tiny(keyword_rows(64, 1), VALIDATION, args=args)
    directory = tmp_path / "model"
    model = AutoModelForMultiLabel.from_pretrained(directory)
    return model, AutoTokenizer.from_pretrained(directory), directory, result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("contract"))


def test_the_training_length_is_saved(trained):
    model, _, _, _ = trained
    assert model.config.max_length == TRAIN_LENGTH
    assert model.config.sliding_window is False


def test_predict_proba_reads_the_training_length_by_default(trained):
    model, tokenizer, _, _ = trained
    default = predict_proba(model, tokenizer, TEXTS)
    np.testing.assert_array_equal(default, predict_proba(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH))
    longer = predict_proba(model, tokenizer, TEXTS, max_length=64)  # an explicit argument still wins
    assert np.abs(longer[:2] - default[:2]).max() > 1e-4  # the long texts read differently past 24 tokens
    np.testing.assert_array_equal(longer[2], default[2])  # a short text is the same either way
    assert predict(model, tokenizer, TEXTS) == predict(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH)


def test_pipeline_reads_the_training_length_by_default(trained):
    model, tokenizer, directory, _ = trained
    classify = pipeline("multi-label-classification", model=str(directory))
    # one text per pass, as the pipeline reads them (padding moves floats by ~1e-7, the memory can amplify it)
    expected = predict_proba(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH, batch_size=1)
    for got in (
        classify(TEXTS, return_all_scores=True),
        classify(TEXTS, return_all_scores=True, max_length=24),
    ):
        scores = np.array(
            [[{d["label"]: d["score"] for d in row}[name] for name in model.config.labels] for row in got]
        )
        np.testing.assert_allclose(scores, expected, atol=1e-6)
    thresholded = classify(TEXTS)
    names = predict(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH)
    assert [sorted(d["label"] for d in row) for row in thresholded] == [sorted(n) for n in names]


def test_cli_predict_reads_the_training_length_by_default(trained, tmp_path, capsys):
    model, tokenizer, directory, _ = trained
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["predict", "--model", str(directory), "--input", str(texts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    expected = predict_proba(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH)
    names = predict(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH)
    assert [line["labels"] for line in lines] == names
    for line, row in zip(lines, expected):
        for name, score in line["scores"].items():
            assert score == pytest.approx(row[model.config.labels.index(name)], abs=1e-4)


def test_facade_reads_the_training_length_by_default(trained):
    model, tokenizer, directory, _ = trained
    facade = MultiLabelClassificationModel("auto", str(directory), use_cuda=False, args={"silent": True})
    assert facade.args.max_seq_length == TRAIN_LENGTH
    _, raw = facade.predict(TEXTS)
    np.testing.assert_allclose(
        raw, predict_proba(model, tokenizer, TEXTS, max_length=TRAIN_LENGTH), atol=1e-6
    )
    chosen = MultiLabelClassificationModel(
        "auto", str(directory), use_cuda=False, args={"silent": True, "max_seq_length": 64}
    )
    _, raw_64 = chosen.predict(TEXTS)  # the user's own max_seq_length wins
    np.testing.assert_allclose(raw_64, predict_proba(model, tokenizer, TEXTS, max_length=64), atol=1e-6)


def test_a_model_trained_on_windows_is_read_through_windows(tmp_path, capsys):
    model, tokenizer, _, result = _train(tmp_path, sliding_window_stride=4)
    assert (model.config.max_length, model.config.sliding_window, model.config.window_stride) == (24, True, 4)
    default = predict_proba(model, tokenizer, TEXTS)
    windows = predict_proba(model, tokenizer, TEXTS, max_length=24, sliding_window=True, stride=4)
    np.testing.assert_array_equal(default, windows)
    # the thresholds were tuned on what prediction gives by default: the validation texts read through windows
    validation_texts = [text for text, _ in VALIDATION]
    tuned_on = result.eval_probabilities
    np.testing.assert_allclose(tuned_on, predict_proba(model, tokenizer, validation_texts), atol=1e-6)
    truncated_validation = predict_proba(model, tokenizer, validation_texts, sliding_window=False)
    assert np.abs(tuned_on - truncated_validation).max() > 1e-4
    truncated = predict_proba(model, tokenizer, TEXTS, sliding_window=False)
    assert np.abs(truncated[:2] - default[:2]).max() > 1e-4
    facade = MultiLabelClassificationModel(
        "auto", str(tmp_path / "model"), use_cuda=False, args={"silent": True}
    )
    np.testing.assert_allclose(facade.predict(TEXTS)[1], default, atol=1e-6)

    classify = pipeline("multi-label-classification", model=str(tmp_path / "model"))
    scores = [{d["label"]: d["score"] for d in row} for row in classify(TEXTS, return_all_scores=True)]
    one_by_one = predict_proba(model, tokenizer, TEXTS, batch_size=1)  # the pipeline's passes: one text each
    np.testing.assert_allclose(
        [[row[n] for n in model.config.labels] for row in scores], one_by_one, atol=1e-6
    )
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    capsys.readouterr()  # the training log
    assert main(["predict", "--model", str(tmp_path / "model"), "--input", str(texts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["labels"] for line in lines] == predict(
        model, tokenizer, TEXTS, sliding_window=True, stride=4
    )


def test_config_refuses_a_bad_contract():
    from mlclf_hub import MultiLabelConfig
    from tests.tiny_models import tiny_backbone_config

    for bad in (
        {"max_length": 2},
        {"window_stride": -1},
        {"window_aggregation": "sum"},
        {"sliding_window": "yes"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MultiLabelConfig(backbone_config=tiny_backbone_config(), id2label={0: "a"}, **bad)
    with pytest.raises(ValueError, match="window_stride"):
        MultiLabelConfig(
            backbone_config=tiny_backbone_config(), id2label={0: "a"}, max_length=16, window_stride=16
        )
