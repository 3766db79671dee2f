"""The simpletransformers facade: the seed snippet, return types, and one test per upstream bug fixed.

Each `test_bug_*` fails on simpletransformers 0.70.8's behaviour (documented in docs/simpletransformers.md).
Tiny random encoders keep the file fast; the real all-MiniLM-L6-v2 runs only in the `slow` test.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from mlclf_hub.inference import predict_proba
from mlclf_hub.simple import (
    FIELD_NOTES,
    ClassificationArgs,
    InputExample,
    MultiLabelClassificationArgs,
    MultiLabelClassificationModel,
    fields_markdown,
    to_training_arguments,
)
from tests.tiny_models import WORDS, tiny_backbone_config, tiny_tokenizer

# simpletransformers 0.70.8 defaults that differ here on purpose (see the docs).
CHANGED_DEFAULTS = {"do_lower_case": (False, None), "threshold": (0.5, None)}
OURS = {
    "sliding_window_aggregation",
    "tune_thresholds",
    "pooling",
    "head_init",
    "head_learning_rate",
    "knn_neighbors",
    "use_peft",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "peft_config",
    "knn_weight",
    "lexical_weight",
}

TRAIN = [["the game team", [1, 0, 0]], ["vote party law", [0, 1, 1]], ["code chip phone", [1, 0, 1]]]
EVAL = [["the team won", [1, 0, 0]], ["new law", [0, 0, 1]], ["old game", [1, 0, 0]]]
NAMED = [
    ("the game team won", ["sports"]),
    ("vote party law", ["politics"]),
    ("code chip phone", ["tech"]),
    ("new phone law", ["politics", "tech"]),
]


def _frame(rows):
    df = pd.DataFrame(rows)
    df.columns = ["text", "labels"]
    return df


def _encoder_dir(path: Path, family: str) -> str:
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config(family)).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)  # vocab ids < 99, fine for a tiny RoBERTa too
    return str(path)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> str:
    return _encoder_dir(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory) -> str:
    return _encoder_dir(tmp_path_factory.mktemp("tiny-roberta"), "roberta")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _model(path: str, tmp_path: Path, num_labels: int | None = None, **args) -> MultiLabelClassificationModel:
    base = {"output_dir": str(tmp_path / "out"), "silent": True, "train_batch_size": 2}
    return MultiLabelClassificationModel(
        "bert", path, num_labels=num_labels, args={**base, **args}, use_cuda=False
    )


@pytest.fixture(scope="module")
def trained(bert_dir, tmp_path_factory) -> tuple[MultiLabelClassificationModel, str]:
    """A model trained on label names with eval data (thresholds tuned), and its output dir."""
    out = tmp_path_factory.mktemp("trained") / "model"
    model = _model(bert_dir, out.parent, max_seq_length=32, num_train_epochs=2)
    model.train_model(pd.DataFrame(NAMED, columns=["text", "labels"]), eval_df=NAMED, output_dir=str(out))
    return model, str(out)


def _check_seed_outputs(out) -> None:
    global_step, training_details, result, model_outputs, wrong, predictions, raw_outputs = out
    assert isinstance(global_step, int) and global_step >= 1
    assert isinstance(training_details, float) and np.isfinite(training_details)
    assert {"LRAP", "eval_loss", "f1_micro", "f1_macro", "hamming_loss"} <= set(result)
    assert all(isinstance(result[k], float) for k in ("LRAP", "eval_loss", "f1_micro"))
    assert isinstance(model_outputs, np.ndarray) and model_outputs.shape == (3, 3)
    assert model_outputs.dtype == np.float64 and ((model_outputs >= 0) & (model_outputs <= 1)).all()
    assert isinstance(wrong, list) and all(isinstance(w, InputExample) for w in wrong)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (1, 3)
    assert np.issubdtype(predictions.dtype, np.integer) and set(np.unique(predictions)) <= {0, 1}
    assert (
        isinstance(raw_outputs, np.ndarray)
        and raw_outputs.shape == (1, 3)
        and raw_outputs.dtype == np.float64
    )


def _run_seed(model_type: str, model_name: str):
    """The documented multi-label seed snippet; only the import and the model name are changed."""
    from mlclf_hub.simple import ClassificationArgs, MultiLabelClassificationModel

    train_data = [
        ["Aragorn", [1, 0, 0]],
        ["Frodo", [0, 1, 1]],
        ["Gimli", [1, 0, 1]],
    ]
    train_df = pd.DataFrame(train_data)
    train_df.columns = ["text", "labels"]
    eval_data = [
        ["Legolas", [1, 0, 0]],
        ["Merry", [0, 0, 1]],
        ["Eomer", [1, 0, 0]],
    ]
    eval_df = pd.DataFrame(eval_data)
    eval_df.columns = ["text", "labels"]
    model_args = ClassificationArgs(num_train_epochs=1)
    model = MultiLabelClassificationModel(model_type, model_name, num_labels=3, args=model_args)
    global_step, training_details = model.train_model(train_df)
    result, model_outputs, wrong_predictions = model.eval_model(eval_df)
    predictions, raw_outputs = model.predict(["Sam"])
    return model, (
        global_step,
        training_details,
        result,
        model_outputs,
        wrong_predictions,
        predictions,
        raw_outputs,
    )


def test_seed_snippet_tiny_roberta(roberta_dir, tmp_path, monkeypatch, no_cuda):
    monkeypatch.chdir(tmp_path)
    model, out = _run_seed("roberta", roberta_dir)
    _check_seed_outputs(out)
    assert model.args.num_train_epochs == 1 and isinstance(model.args, MultiLabelClassificationArgs)
    assert out[0] == 1  # 3 rows, batch 8, one epoch: ClassificationArgs honoured
    saved = os.listdir(tmp_path / "outputs")
    assert {"config.json", "model.safetensors", "model_args.json", "eval_results.txt"} <= set(saved)


@pytest.mark.slow
def test_seed_snippet_minilm(minilm_dir, tmp_path, monkeypatch, no_cuda):
    monkeypatch.chdir(tmp_path)
    model, out = _run_seed("bert", minilm_dir)
    _check_seed_outputs(out)
    assert model.config.pooling == "mean"  # a sentence-transformers checkpoint
    reloaded = MultiLabelClassificationModel("bert", "outputs/", use_cuda=False)
    np.testing.assert_allclose(reloaded.predict(["Sam"])[1], out[-1], atol=1e-5)


@pytest.mark.slow
def test_bug_upstream_settings_on_debtags_do_not_collapse_to_no_label(minilm_dir, tmp_path, no_cuda):
    """Upstream, lr 1e-4 / batch 16 on debtags predicts no label at all (its head learns the label
    frequencies). Here the same settings start from a linear-probe head and predict labels."""
    from mlclf_hub.data import load_sample, sample_labels
    from mlclf_hub.metrics import multilabel_metrics

    labels = sample_labels()
    train = load_sample("train").select(range(240))
    valid = load_sample("validation").select(range(120))
    frame = pd.DataFrame({"text": train["text"], "labels": train["labels"]})
    args = {"learning_rate": 1e-4, "train_batch_size": 16, "num_train_epochs": 1, "max_seq_length": 128}
    args.update({"output_dir": str(tmp_path / "out"), "labels_list": labels, "tune_thresholds": False})
    model = MultiLabelClassificationModel(
        "bert", minilm_dir, num_labels=len(labels), args=args, use_cuda=False
    )
    model.train_model(frame)
    predictions, probabilities = model.predict(list(valid["text"]))
    assert predictions.sum(axis=1).mean() >= 1.0  # at least one label per text on average at 0.5
    y_true = np.array([[name in row for name in labels] for row in valid["labels"]], dtype=int)
    assert multilabel_metrics(y_true, probabilities)["f1_micro"] > 0.3


# ---------------------------------------------------------------------------------------------------------------
# Args
# ---------------------------------------------------------------------------------------------------------------


def test_args_have_every_upstream_field_with_its_default():
    ml, clf = MultiLabelClassificationArgs(), ClassificationArgs()
    names = [f.name for f in dataclasses.fields(ml)]
    assert len(names) == 103 + len(OURS) and not hasattr(clf, "threshold")
    assert set(names) == set(FIELD_NOTES)
    assert (ml.model_class, clf.model_class) == ("MultiLabelClassificationModel", "ClassificationModel")
    assert (ml.num_train_epochs, ml.learning_rate, ml.train_batch_size, ml.eval_batch_size) == (
        1,
        4e-5,
        8,
        100,
    )
    assert (ml.max_seq_length, ml.output_dir, ml.stride, ml.adam_betas) == (
        128,
        "outputs/",
        0.8,
        (0.9, 0.999),
    )
    for name, (_, ours) in CHANGED_DEFAULTS.items():
        assert getattr(ml, name) == ours
    for f in dataclasses.fields(ml):
        assert f.metadata["help"].startswith("[")  # `[kind] note`, shown by HfArgumentParser


def test_unknown_args_key_is_an_error_naming_it(bert_dir, tmp_path):
    with pytest.raises(ValueError, match=r"\['num_train_epoch'\].*did you mean 'num_train_epochs'"):
        ClassificationArgs().update_from_dict({"num_train_epoch": 2})
    with pytest.raises(ValueError, match="bogus_key"):
        _model(bert_dir, tmp_path, bogus_key=1)
    with pytest.raises(TypeError, match="is not a Python dict"):
        ClassificationArgs().update_from_dict([("a", 1)])


def test_unsupported_and_invalid_args_raise():
    with pytest.raises(ValueError, match=r"lazy_loading=True.*not supported"):
        ClassificationArgs(lazy_loading=True)
    with pytest.raises(ValueError, match="custom_parameter_groups"):
        ClassificationArgs().update_from_dict({"custom_parameter_groups": [{"params": ["x"], "lr": 1}]})
    with pytest.raises(ValueError, match="optimizer"):
        ClassificationArgs(optimizer="SGD")
    with pytest.raises(ValueError, match="threshold"):
        MultiLabelClassificationArgs(threshold=1.5)
    args = ClassificationArgs()
    with pytest.raises(ValueError):
        args.update_from_dict({"num_train_epochs": 5, "scheduler": "nope"})
    assert args.num_train_epochs == 1  # a rejected update changes nothing


def test_ignored_fields_are_accepted_and_warned_once(bert_dir, tmp_path, caplog):
    logging.Logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.simple"):
        for _ in range(2):
            _model(bert_dir, tmp_path, n_gpu=2, use_multiprocessing=False)
    messages = [r.getMessage() for r in caplog.records if "has no effect here" in r.getMessage()]
    assert sum("`n_gpu=2`" in m for m in messages) == 1
    assert sum("`use_multiprocessing=False`" in m for m in messages) == 1
    assert not any("process_count" in m for m in messages)  # defaults never warn


def test_to_training_arguments_mapping():
    args = MultiLabelClassificationArgs(
        num_train_epochs=3,
        learning_rate=1e-4,
        train_batch_size=4,
        eval_batch_size=16,
        adam_betas=(0.8, 0.9),
        warmup_steps=0,
        warmup_ratio=0.1,
        scheduler="polynomial_decay_schedule_with_warmup",
        optimizer="Adafactor",
        evaluate_during_training=True,
        evaluate_during_training_steps=5,
        use_early_stopping=True,
        early_stopping_metric="LRAP",
        early_stopping_metric_minimize=False,
        early_stopping_delta=0.01,
        max_seq_length=64,
        manual_seed=0,
        fp16=True,
        loss_type="focal",
        loss_args={"gamma": 1.5},
    )
    targs = to_training_arguments(args, output_dir="somewhere", use_cpu=True, pos_weight=[1.0, 2.0])
    assert (targs.output_dir, targs.num_train_epochs, targs.learning_rate) == ("somewhere", 3, 1e-4)
    assert (targs.per_device_train_batch_size, targs.per_device_eval_batch_size) == (4, 16)
    assert (targs.adam_beta1, targs.adam_beta2, targs.warmup_steps) == (0.8, 0.9, 0.1)
    assert targs.lr_scheduler_type.value == "polynomial" and targs.lr_scheduler_kwargs["power"] == 1.0
    assert targs.optim.value == "adafactor"
    assert (targs.eval_strategy.value, targs.eval_steps, targs.save_strategy.value, targs.save_steps) == (
        "steps",
        5,
        "steps",
        5,
    )
    assert targs.load_best_model_at_end and targs.metric_for_best_model == "lrap" and targs.greater_is_better
    assert (targs.early_stopping_patience, targs.early_stopping_threshold) == (3, 0.01)
    assert (targs.max_length, targs.seed, targs.fp16, targs.focal_gamma) == (64, 0, False, 1.5)
    assert targs.pos_weight == [1.0, 2.0] and targs.save_total_limit is None
    assert targs.tune_thresholds is True  # train() tunes the thresholds; the facade has no tuner of its own
    assert to_training_arguments(MultiLabelClassificationArgs(tune_thresholds=False)).tune_thresholds is False

    plain = to_training_arguments(MultiLabelClassificationArgs(save_steps=0, no_save=False))
    assert (plain.eval_strategy.value, plain.save_strategy.value, plain.early_stopping_patience) == (
        "no",
        "epoch",
        None,
    )
    assert (
        plain.warmup_steps == 0.06 and plain.weight_decay == 0.0 and plain.lr_scheduler_type.value == "linear"
    )
    assert to_training_arguments(MultiLabelClassificationArgs(no_save=True)).save_strategy.value == "no"
    with pytest.raises(ValueError, match="early_stopping_metric='f1'"):
        to_training_arguments(
            MultiLabelClassificationArgs(evaluate_during_training=True, early_stopping_metric="f1")
        )


def test_args_save_load_and_reload_restore_them(trained, tmp_path, caplog):
    _, out = trained
    saved = json.loads((Path(out) / "model_args.json").read_text())
    assert saved["max_seq_length"] == 32 and saved["labels_list"] == ["politics", "sports", "tech"]
    logging.Logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.simple"):
        reloaded = MultiLabelClassificationModel("bert", out, use_cuda=False)
    assert "has no effect" not in caplog.text  # tuples survive the JSON round trip
    assert reloaded.args.adam_betas == (0.9, 0.999)
    assert reloaded.args.max_seq_length == 32 and reloaded.labels == ["politics", "sports", "tech"]
    assert reloaded.args.model_name == out
    args = ClassificationArgs(not_saved_args=["output_dir"])
    args.save(tmp_path)
    assert "output_dir" not in json.loads((tmp_path / "model_args.json").read_text())


# ---------------------------------------------------------------------------------------------------------------
# Construction: model types, devices, tokenizer
# ---------------------------------------------------------------------------------------------------------------


def test_model_types(bert_dir, tmp_path, caplog):
    with pytest.raises(ValueError, match="Unknown model_type 'gpt9'"):
        MultiLabelClassificationModel("gpt9", bert_dir, num_labels=2, use_cuda=False)
    assert MultiLabelClassificationModel("auto", bert_dir, num_labels=2, use_cuda=False).num_labels == 2
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.simple"):
        model = MultiLabelClassificationModel("deberta-v2", bert_dir, num_labels=2, use_cuda=False)
    assert model.model.backbone.config.model_type == "bert"
    assert "checkpoint is a 'bert' encoder" in caplog.text


def test_bug_use_cuda_without_gpu_warns_and_runs_on_cpu(bert_dir, no_cuda, caplog):
    # simpletransformers: ValueError("'use_cuda' set to True when cuda is unavailable...").
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.simple"):
        model = MultiLabelClassificationModel("bert", bert_dir, num_labels=3, use_cuda=True)
    assert "CUDA is not available" in caplog.text
    assert model.device.type == "cpu" and model.args.fp16 is False
    assert model.predict(["the game"])[0].shape == (1, 3)


def test_bug_do_lower_case_keeps_the_checkpoint_tokenizer(bert_dir):
    # simpletransformers passes do_lower_case=False by default and overrides a lowercasing tokenizer.
    model = MultiLabelClassificationModel("bert", bert_dir, num_labels=3, use_cuda=False)
    upper, lower = (
        model.tokenizer("THE GAME Team")["input_ids"],
        model.tokenizer("the game team")["input_ids"],
    )
    assert upper == lower and model.tokenizer.unk_token_id not in upper
    np.testing.assert_allclose(model.predict(["THE GAME"])[1], model.predict(["the game"])[1])
    cased = MultiLabelClassificationModel(
        "bert", bert_dir, num_labels=3, args={"do_lower_case": False}, use_cuda=False
    )
    assert cased.tokenizer("THE")["input_ids"][1] == cased.tokenizer.unk_token_id  # set explicitly: honoured


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def test_bug_output_dir_argument_receives_the_model(bert_dir, tmp_path):
    # simpletransformers #657: the final model went to args.output_dir, not to train_model(output_dir=...).
    model = _model(bert_dir, tmp_path, output_dir=str(tmp_path / "from_args"), save_steps=1)
    model.train_model(_frame(TRAIN), output_dir=str(tmp_path / "from_call"))
    saved = set(os.listdir(tmp_path / "from_call"))
    assert {"config.json", "model.safetensors", "model_args.json", "tokenizer.json"} <= saved
    assert {"checkpoint-1", "checkpoint-2"} <= saved  # save_steps=1: checkpoints kept next to the final model
    assert not (tmp_path / "from_args").exists()


def test_no_save_writes_no_model(bert_dir, tmp_path):
    model = _model(bert_dir, tmp_path, no_save=True, save_steps=1)
    model.train_model(_frame(TRAIN))
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_overwrite_output_dir(bert_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    model = _model(bert_dir, tmp_path)
    with pytest.raises(ValueError, match=r"already exists and is not empty\. Set overwrite_output_dir"):
        model.train_model(_frame(TRAIN), output_dir=str(out))
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    model.train_model(_frame(TRAIN), output_dir=str(out), args={"overwrite_output_dir": True})
    assert (out / "config.json").exists() and (
        out / "notes.txt"
    ).read_text() == "keep me"  # files overwritten, not wiped


def test_bug_multi_hot_labels_then_predict_without_worker_pools_or_hang(bert_dir, tmp_path):
    # simpletransformers: use_multiprocessing=False crashes on multi-hot labels (torch.tensor(..., long) on a
    # datasets 5 column); with it on, predict right after train_model hangs in the tokenization pool (#1591).
    def timeout(signum, frame):
        raise TimeoutError("predict after train_model hung")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(120)
    try:
        for multiprocessing_on in (False, True):
            model = _model(
                bert_dir, tmp_path, use_multiprocessing=multiprocessing_on, overwrite_output_dir=True
            )
            model.train_model(
                _frame([["the game", [1, 1, 0]], ["vote law", [0, 1, 1]], ["new code", [1, 1, 1]]])
            )
            predictions, raw = model.predict(["the game", "vote"])
            assert predictions.shape == raw.shape == (2, 3)
            assert multiprocessing.active_children() == []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _count_facade_reads(monkeypatch) -> list[dict]:
    """The keyword arguments of each `predict_proba` call the facade makes."""
    import mlclf_hub.simple.model as facade

    reads = []

    def counted(*args, **kwargs):
        reads.append(kwargs)
        return predict_proba(*args, **kwargs)

    monkeypatch.setattr(facade, "predict_proba", counted)
    return reads


def test_evaluate_during_training_details_checkpoints_and_best_model(bert_dir, tmp_path, monkeypatch):
    reads = _count_facade_reads(monkeypatch)
    seen = []

    def exact(y_true, y_pred):
        seen.append(np.unique(np.concatenate([np.unique(y_true), np.unique(y_pred)])))
        return float((y_true == y_pred).all(axis=1).mean())

    model = _model(
        bert_dir,
        tmp_path,
        evaluate_during_training=True,
        evaluate_during_training_steps=1,
        num_train_epochs=2,
    )
    with pytest.raises(ValueError, match="eval_df is not specified"):
        model.train_model(_frame(TRAIN))
    global_step, details = model.train_model(_frame(TRAIN), eval_df=_frame(EVAL), exact=exact)
    assert global_step == 4  # 2 batches x 2 epochs
    assert list(details)[:5] == ["global_step", "train_loss", "LRAP", "exact", "eval_loss"]
    assert details["global_step"] == [1, 2, 3, 4]  # epoch-end evaluations are not duplicated
    assert all(len(values) == 4 for values in details.values()) and "f1_micro" in details
    assert all(set(values) <= {0, 1} for values in seen)  # metric functions get 0/1 predictions
    # ... from the Trainer's own evaluation pass: no second inference per evaluation, same figures
    assert reads == [] and details["exact"] == details["subset_accuracy"]
    out = tmp_path / "out"
    csv = pd.read_csv(out / "training_progress_scores.csv")
    assert list(csv["global_step"]) == [1, 2, 3, 4]
    assert {"checkpoint-1", "checkpoint-4", "best_model", "eval_results.txt"} <= set(os.listdir(out))
    assert (out / "best_model" / "config.json").exists()


def test_early_stopping(bert_dir, tmp_path):
    model = _model(
        bert_dir,
        tmp_path,
        evaluate_during_training=True,
        evaluate_during_training_steps=1,
        num_train_epochs=3,
        use_early_stopping=True,
        early_stopping_patience=1,
        early_stopping_delta=10.0,  # nothing counts as an improvement
    )
    global_step, details = model.train_model(_frame(TRAIN), eval_df=_frame(EVAL))
    assert global_step == 2 < 6 and details["global_step"] == [1, 2]


def test_thresholds_tuned_on_eval_df_saved_and_explicit_threshold_wins(bert_dir, tmp_path, monkeypatch):
    import mlclf_hub.trainer
    from mlclf_hub.thresholds import ThresholdResult

    calls = []

    def fake_tune(y_true, probs, **kwargs):
        calls.append(probs.shape)
        return ThresholdResult(global_threshold=0.0, thresholds=[0.0, 1.0, 0.0])

    monkeypatch.setattr(mlclf_hub.trainer, "tune_thresholds", fake_tune)
    model = _model(bert_dir, tmp_path, num_train_epochs=1)
    model.train_model(_frame(TRAIN), eval_df=_frame(EVAL))
    # train() tunes once, on eval_df (3 rows), also when the facade does not evaluate during training
    assert calls == [(3, 3)] and model.config.thresholds == [0.0, 1.0, 0.0]
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["thresholds"] == [0.0, 1.0, 0.0]
    predictions, raw = model.predict(["the game"])
    assert predictions.tolist() == [[1, int(raw[0, 1] >= 1.0), 1]]  # tuned thresholds used by default
    model.args.threshold = 0.5  # set explicitly: wins, even at upstream's default value
    assert model.predict(["the game"])[0].tolist() == (raw >= 0.5).astype(int).tolist()
    model.train_model(
        _frame(TRAIN), eval_df=_frame(EVAL), args={"tune_thresholds": False, "overwrite_output_dir": True}
    )
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------------------------
# Evaluation and prediction
# ---------------------------------------------------------------------------------------------------------------


def test_eval_model_results_file_and_types(trained, tmp_path):
    model, _ = trained
    result, outputs, wrong = model.eval_model(NAMED, output_dir=str(tmp_path / "ev"))
    assert outputs.shape == (4, 3) and outputs.dtype == np.float64
    assert list(result)[:2] == ["LRAP", "eval_loss"] and {"f1_micro", "subset_accuracy"} <= set(result)
    truth = np.array([[name in labels for name in model.labels] for _, labels in NAMED], dtype=int)
    # the figures of these outputs: sklearn's LRAP, the mean binary cross-entropy (no pos_weight, no focal term)
    from sklearn.metrics import label_ranking_average_precision_score

    assert result["LRAP"] == pytest.approx(label_ranking_average_precision_score(truth, outputs), abs=1e-9)
    bce = -np.mean(truth * np.log(outputs) + (1 - truth) * np.log(1 - outputs))
    assert result["eval_loss"] == pytest.approx(bce, rel=1e-6)
    lines = (tmp_path / "ev" / "eval_results.txt").read_text().splitlines()
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == sorted(result) and f"LRAP = {result['LRAP']}" in lines
    predictions = model.predict([text for text, _ in NAMED])[0]
    assert [w.guid for w in wrong] == np.flatnonzero((predictions != truth).any(axis=1)).tolist()
    assert all(w.label == NAMED[w.guid][1] and w.text_a == NAMED[w.guid][0] for w in wrong)
    assert model.results["LRAP"] == result["LRAP"]


def test_bug_metric_functions_get_binary_predictions(trained, tmp_path):
    # simpletransformers #125 #916 #1033: kwargs metrics got probabilities, so sklearn's f1/accuracy raised.
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    model, _ = trained
    got = {}

    def spy(y_true, y_pred):
        got["y_true"], got["y_pred"] = y_true, y_pred
        return 0.0

    result, _, _ = model.eval_model(
        NAMED,
        output_dir=str(tmp_path),
        f1=lambda y, p: f1_score(y, p, average="micro", zero_division=0),
        acc=accuracy_score,
        spy=spy,
        prob_auc=lambda y, p: roc_auc_score(y, p, average="micro"),
    )
    assert set(np.unique(got["y_pred"])) <= {0, 1} and np.issubdtype(got["y_pred"].dtype, np.integer)
    assert got["y_true"].shape == got["y_pred"].shape == (4, 3)
    assert result["f1"] == pytest.approx(result["f1_micro"])
    # they read the true labels and the predictions at the model's thresholds, nothing else
    truth = np.array([[name in labels for name in model.labels] for _, labels in NAMED], dtype=int)
    predictions = model.predict([text for text, _ in NAMED])[0]
    assert got["y_true"].tolist() == truth.tolist() and got["y_pred"].tolist() == predictions.tolist()
    assert result["acc"] == pytest.approx(accuracy_score(truth, predictions))
    assert result["prob_auc"] == pytest.approx(roc_auc_score(truth, predictions, average="micro"))
    assert list(result)[:6] == ["LRAP", "f1", "acc", "spy", "prob_auc", "eval_loss"]


def test_bug_per_call_and_per_label_thresholds(trained):
    # simpletransformers #252 #1562: predict has no threshold parameter (only args.threshold).
    model, _ = trained
    texts = ["the game", "vote law"]
    _, raw = model.predict(texts)
    assert model.predict(texts, threshold=0.0)[0].tolist() == [[1, 1, 1]] * 2  # 0 allowed: p >= 0
    per_label = [0.0, 1.0, 0.0]
    assert (
        model.predict(texts, threshold=per_label)[0].tolist()
        == (raw >= np.array(per_label)).astype(int).tolist()
    )
    model.args.threshold = 0.0
    try:
        assert model.predict(texts)[0].all()
        assert model.predict(texts, threshold=1.0)[0].sum() == (raw >= 1.0).sum()  # per call beats args
    finally:
        model.args.threshold = None
    with pytest.raises(ValueError, match=r"one per label|3"):
        model.predict(texts, threshold=[0.5, 0.5])


def test_labels_as_names_and_headerless_frames(trained, bert_dir, tmp_path):
    model, _ = trained
    assert model.labels == ["politics", "sports", "tech"] == model.args.labels_list
    assert model.args.labels_map == {"politics": 0, "sports": 1, "tech": 2}
    headerless = pd.DataFrame([[text, labels] for text, labels in NAMED])  # columns 0, 1
    _, outputs, _ = model.eval_model(headerless, output_dir=str(tmp_path))
    assert outputs.shape == (4, 3)
    with pytest.raises(ValueError, match="unknown label"):
        model.eval_model([("the game", ["sprots"])], output_dir=str(tmp_path))
    fixed = _model(bert_dir, tmp_path, labels_list=["b", "a"])
    assert fixed.labels == ["b", "a"]


def test_text_pairs(bert_dir, tmp_path):
    pairs = pd.DataFrame(
        {
            "text_a": ["the game", "vote", "code"],
            "text_b": ["team won", "party law", "chip phone"],
            "labels": [[1, 0], [0, 1], [1, 1]],
        }
    )
    model = _model(bert_dir, tmp_path)
    model.train_model(pairs, eval_df=pairs)
    assert model.num_labels == 2
    _, outputs, wrong = model.eval_model(pairs, output_dir=str(tmp_path))
    assert outputs.shape == (3, 2) and all(w.text_b == pairs.text_b[w.guid] for w in wrong)
    predictions, raw = model.predict([["the game", "team won"], ["vote", "law"]])
    assert predictions.shape == raw.shape == (2, 2)
    np.testing.assert_allclose(raw[0], outputs[0], atol=1e-6)
    model.args.sliding_window = True
    with pytest.raises(ValueError, match="sliding window"):
        model.predict([["the game", "team won"]])


@pytest.mark.parametrize("aggregation", ["max", "mean"])
def test_bug_sliding_window_eval_and_predict(bert_dir, tmp_path, aggregation):
    # simpletransformers #562: eval raised TypeError and predict returned argmax class ids per document.
    model = _model(bert_dir, tmp_path, num_labels=3, max_seq_length=8, stride=0.8, sliding_window=True)
    model.args.sliding_window_aggregation = aggregation
    words = WORDS[:12]  # one token each; windows of 8 - 2 = 6 tokens, step int(8 * 0.8) = 6: two windows
    long_text, short_text = " ".join(words), "the game"
    predictions, raw = model.predict([long_text, short_text])
    assert predictions.shape == raw.shape == (2, 3) and set(np.unique(predictions)) <= {0, 1}
    model.args.sliding_window = False
    _, windows = model.predict([" ".join(words[:6]), " ".join(words[6:]), short_text])
    expected = windows[:2].max(axis=0) if aggregation == "max" else windows[:2].mean(axis=0)
    np.testing.assert_allclose(raw[0], expected, atol=1e-6)
    np.testing.assert_allclose(raw[1], windows[2], atol=1e-6)
    model.args.sliding_window = True
    result, outputs, wrong = model.eval_model(
        [(long_text, [1, 0, 1]), (short_text, [0, 1, 0])], output_dir=str(tmp_path)
    )
    np.testing.assert_allclose(outputs, raw, atol=1e-6)
    assert {"LRAP", "eval_loss", "f1_micro"} <= set(result) and isinstance(wrong, list)


def test_sliding_window_metric_functions_read_windows_once_per_eval(bert_dir, tmp_path, monkeypatch):
    # The Trainer evaluates one truncated input per text; metric functions get the window scores predict gives.
    reads = _count_facade_reads(monkeypatch)
    rows = [(" ".join(WORDS[:12]), [1, 0, 1]), ("the game", [0, 1, 0]), ("vote law", [1, 0, 0])]
    model = _model(
        bert_dir,
        tmp_path,
        max_seq_length=8,
        sliding_window=True,
        evaluate_during_training=True,
        evaluate_during_training_steps=1,
    )
    _, details = model.train_model(rows, eval_df=rows, exact=lambda y, p: float((y == p).all(axis=1).mean()))
    assert len(details["global_step"]) == len(details["exact"]) == len(reads) >= 2
    assert all(read["sliding_window"] and read["stride"] == model._window_overlap() for read in reads)


def test_sliding_window_training_reads_every_window(bert_dir, tmp_path):
    # simpletransformers trains on every window of a long text; training on the truncated text would never
    # see a label's words past max_seq_length.
    long_rows = [
        (" ".join([*WORDS[:12], "vote"]), [0, 1, 0]),
        ("the game team", [1, 0, 0]),
        ("chip", [0, 0, 1]),
    ]
    counts = {}
    for sliding_window in (False, True):
        model = _model(
            bert_dir, tmp_path / str(sliding_window), max_seq_length=8, sliding_window=sliding_window
        )
        model.train_model(long_rows)
        counts[sliding_window] = model.model.config.knn_memory_size  # the memory holds one row per window
    assert counts[False] == 3 and counts[True] > 3


def test_docs_table_lists_every_field_and_method():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "simpletransformers.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ")]
    for name in FIELD_NOTES:
        assert any(f"| `{name}`" in row for row in rows), name
    for method in (
        "train_model(",
        "eval_model(",
        "predict(",
        "save_model(",
        "save_model_args(",
        "get_named_parameters(",
    ):
        assert any(f"`{method}" in row for row in rows), method
    for issue in ("#657", "#125", "#916", "#1033", "#252", "#1562", "#562"):
        assert issue in doc


def test_docs_field_tables_are_generated_from_the_field_table(tmp_path, monkeypatch):
    from mlclf_hub.simple.args import DOCS_BEGIN, DOCS_END, update_docs, with_generated_fields

    doc = (Path(__file__).resolve().parents[1] / "docs" / "simpletransformers.md").read_text()
    section = doc[doc.index(DOCS_BEGIN) + len(DOCS_BEGIN) + 1 : doc.index(DOCS_END)]
    assert section == fields_markdown(), "the docs tables differ: run `python -m mlclf_hub.simple`"
    page = tmp_path / "page.md"
    page.write_text(doc.replace(section, "| a stale row |\n"))
    assert update_docs(page, check=True) and "a stale row" in page.read_text()  # check writes nothing
    assert update_docs(page) and page.read_text() == doc and not update_docs(page)
    monkeypatch.setitem(FIELD_NOTES, "onnx", ("ignored", "a new note."))
    assert "| `onnx` ² | `False` | ignored, warned once | a new note. |" in fields_markdown()
    with pytest.raises(ValueError, match="BEGIN generated"):
        with_generated_fields("a page without the markers")
