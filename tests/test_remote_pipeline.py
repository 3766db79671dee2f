"""The pipeline travels with the model: `pipeline(model=..., trust_remote_code=True)` answers where `mlclf_hub` is not
installed, with the label names above the tuned thresholds and the scores of `mlclf_hub`'s own `predict`.

Each check runs the pipeline in a subprocess that cannot import `mlclf_hub` (`sys.modules["mlclf_hub"] = None`),
with an empty modules cache, on a pushed repo (the local Hub server) or a saved directory.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

import mlclf_hub
from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.configuration_multilabel import REMOTE_CODE_TASK
from mlclf_hub.inference import predict, predict_proba
from mlclf_hub.pipeline import TASK, MultiLabelClassificationPipeline
from mlclf_hub.simple import MultiLabelClassificationModel
from tests.clean_process import run_python
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args, train_tiny

TRAIN_LENGTH = 24
LONG = "the team won the game " * 8 + "vote on the new law"  # 45 tokens: the politics words lie past 24
TEXTS = ["the team won the game", "vote on the new law", "new code for the old phone chip", LONG, "a"]
PAIR = ("vote on the new law", "the team won the game")
PIPELINE_FILES = {"pipeline_multilabel.py", "processing_multilabel.py"}
CUSTOM_PIPELINES = {
    TASK: {
        "impl": "pipeline_multilabel.MultiLabelClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "tf": [],
        "type": "text",
    }
}

REMOTE = """
import json, sys
sys.modules["mlclf_hub"] = None  # not importable: the saved remote code must suffice
from transformers import pipeline
model, calls, short = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
classify = pipeline(model=model, trust_remote_code=True)  # no task: the one in config.json's custom_pipelines
stock = pipeline("text-classification", model=model, top_k=None, trust_remote_code=True)
print(json.dumps({
    "classes": [type(classify).__module__, type(classify).__name__, classify.task, type(classify.model).__module__],
    "calls": [classify(inputs, **kwargs) for inputs, kwargs in calls],
    "stock": [type(stock).__name__, stock(short)],
}))
"""


def run_remote(model_ref: str, calls: list, short: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run `REMOTE` on `model_ref` in a fresh process without `mlclf_hub`; its JSON output."""
    out = run_python(REMOTE, model_ref, json.dumps(calls), json.dumps(short), cwd=cwd, env=env)
    return json.loads(out.strip().splitlines()[-1])


def offline_env(tmp_path: Path) -> dict[str, str]:
    """This environment, offline, with an empty HF_HOME and modules cache."""
    home = tmp_path / "hf-home"
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_MODULES_CACHE": str(home / "modules"),
    }


def assert_labels(result: list[dict], probs: np.ndarray, chosen: list[str], names: list[str]) -> None:
    """`result` holds exactly the labels `chosen`, with their `probs` (1e-6; columns: `names`), highest first."""
    assert sorted(r["label"] for r in result) == sorted(chosen)
    np.testing.assert_allclose(
        [r["score"] for r in result], [probs[names.index(r["label"])] for r in result], rtol=0, atol=1e-6
    )
    assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)


def check_answers(out: dict, model, tokenizer, predict_fn, thresholds: list[float]) -> None:
    """The remote pipeline's answers to `standard_calls` equal `mlclf_hub`'s own `predict` / `predict_proba`.

    `predict_fn(texts, text_pairs=None, thresholds=None)` gives the label names of `mlclf_hub`'s own predict.
    The pipeline reads one text per forward pass; `predict_proba` is asked to do the same (`batch_size=1`):
    padding a text to a batch's longest changes float summation order by about 1e-7, which the memory's
    softmax (temperature 20) can lift past the 1e-6 this test demands.
    """
    module, name, task, model_module = out["classes"]
    assert (name, task) == ("MultiLabelClassificationPipeline", TASK)
    assert module.startswith("transformers_modules") and model_module.startswith("transformers_modules")
    default, per_label, every, pair, pair_every = out["calls"]
    names = model.config.labels
    probs = predict_proba(model, tokenizer, TEXTS, batch_size=1)
    for row, labels, result in zip(probs, predict_fn(TEXTS), default):
        assert_labels(result, row, labels, names)
    for row, labels, result in zip(probs, predict_fn(TEXTS, thresholds=thresholds), per_label):
        assert_labels(result, row, labels, names)
    for row, result in zip(probs, every):  # top_k=None: every label, whatever its threshold
        assert_labels(result, row, names, names)
    pair_probs = predict_proba(model, tokenizer, [PAIR[0]], text_pairs=[PAIR[1]], batch_size=1)[0]
    assert_labels(pair, pair_probs, predict_fn([PAIR[0]], text_pairs=[PAIR[1]])[0], names)
    assert_labels(pair_every, pair_probs, names, names)
    assert np.abs(pair_probs - probs[1]).max() > 1e-6  # the second text was read
    kind, stock = out["stock"]  # the stock pipeline still gives a sigmoid score for every label
    assert kind == "TextClassificationPipeline"
    for row, result in zip(predict_proba(model, tokenizer, TEXTS[:3], batch_size=1), stock):
        assert_labels(result, row, names, names)


def standard_calls(thresholds: list[float]) -> list:
    pair = {"text": PAIR[0], "text_pair": PAIR[1]}
    return [
        [TEXTS, {}],
        [TEXTS, {"threshold": thresholds}],
        [TEXTS, {"top_k": None}],
        [pair, {}],
        [pair, {"top_k": None}],
    ]


def per_label_thresholds(model, tokenizer) -> list[float]:
    """Thresholds unlike the tuned ones: the first label always, the second never, the third for 2 of 5 texts.

    The third lies halfway between two scores, never on one (a 1e-8 difference must not flip a label).
    """
    third = np.sort(predict_proba(model, tokenizer, TEXTS)[:, 2])
    return [0.0, 1.0, float(third[2] + third[3]) / 2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny keyword model trained at 24 tokens by `train()`, saved with its card."""
    out = tmp_path_factory.mktemp("remote-pipeline") / "model"
    args = tiny_training_args(str(out), max_length=TRAIN_LENGTH, num_train_epochs=3)
    return train_tiny(keyword_rows(96, 1), keyword_rows(40, 2), args=args)


@pytest.mark.hub
def test_pushed_model_answers_without_mlclf_hub(trained, hub_env, tmp_path):
    model, tokenizer = trained.model, trained.tokenizer
    assert model.config.max_length == TRAIN_LENGTH
    long_at_64 = predict_proba(model, tokenizer, [LONG], max_length=64)[0]
    assert np.abs(long_at_64 - predict_proba(model, tokenizer, [LONG])[0]).max() > 1e-4  # 24 tokens matter
    mlclf_hub.push_to_hub(model, "ns/remote-pipeline", tokenizer=tokenizer, endpoint=hub_env.endpoint)
    files = hub_env.files("ns/remote-pipeline")
    assert set(files) >= PIPELINE_FILES
    assert json.loads(files["config.json"])["custom_pipelines"] == CUSTOM_PIPELINES
    assert b"mlclf_hub" not in b"".join(
        line
        for name in PIPELINE_FILES
        for line in files[name].splitlines()
        if line.lstrip().startswith(b"from")
    )

    thresholds = per_label_thresholds(model, tokenizer)
    env = os.environ.copy()  # hub_env: HF_ENDPOINT = the server, an empty HF_HOME and modules cache
    out = run_remote("ns/remote-pipeline", standard_calls(thresholds), TEXTS[:3], tmp_path, env)

    def own_predict(texts, text_pairs=None, thresholds=None):
        return predict(model, tokenizer, texts, text_pairs=text_pairs, thresholds=thresholds, batch_size=1)

    check_answers(out, model, tokenizer, own_predict, thresholds)
    print("remote pipeline, one text:", json.dumps(out["calls"][0][3]))

    # the card's first snippet is this pipeline, and it runs as written where mlclf_hub is not installed
    card = files["README.md"].decode()
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert 'pipeline(model="ns/remote-pipeline", trust_remote_code=True)' in snippet
    script = 'import sys\nsys.modules["mlclf_hub"] = None\n' + snippet
    script += "print(classify(" + json.dumps(TEXTS[0]) + ", top_k=None))\n"
    printed = run_python(script, cwd=tmp_path, env=env)
    assert len(ast.literal_eval(printed.strip().splitlines()[-1])) == model.config.num_labels


def _encoder_dir(path: Path) -> str:
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def test_directory_saved_by_the_facade_answers_without_mlclf_hub(tmp_path):
    args = {
        "output_dir": str(tmp_path / "out"),
        "silent": True,
        "train_batch_size": 8,
        "max_seq_length": TRAIN_LENGTH,
        "num_train_epochs": 3,
        "learning_rate": 5e-3,
        "manual_seed": 0,
        "eval_batch_size": 1,  # one text per forward pass, as the pipeline (see check_answers)
    }
    facade = MultiLabelClassificationModel(
        "bert", _encoder_dir(tmp_path / "encoder"), args=args, use_cuda=False
    )
    frame = pd.DataFrame(keyword_rows(96, 1), columns=["text", "labels"])
    facade.train_model(frame, eval_df=pd.DataFrame(keyword_rows(40, 2), columns=["text", "labels"]))
    saved = tmp_path / "saved"
    facade.save_model(str(saved))
    assert set(os.listdir(saved)) >= PIPELINE_FILES
    assert json.loads((saved / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINES
    model, tokenizer = facade.model, facade.tokenizer
    assert sorted(model.config.labels) == sorted(LABELS) and model.config.max_length == TRAIN_LENGTH

    thresholds = per_label_thresholds(model, tokenizer)
    out = run_remote(str(saved), standard_calls(thresholds), TEXTS[:3], tmp_path, offline_env(tmp_path))

    def facade_predict(texts, text_pairs=None, thresholds=None):
        inputs = texts if text_pairs is None else [[a, b] for a, b in zip(texts, text_pairs)]
        predictions, raw = facade.predict(inputs, threshold=thresholds)
        np.testing.assert_allclose(
            raw, predict_proba(model, tokenizer, texts, text_pairs=text_pairs, batch_size=1), atol=1e-12
        )
        return [[model.config.labels[j] for j in np.flatnonzero(row)] for row in predictions]

    check_answers(out, model, tokenizer, facade_predict, thresholds)


def test_a_model_trained_on_windows_is_read_through_windows(tmp_path):
    args = tiny_training_args(
        str(tmp_path / "model"), max_length=16, sliding_window_stride=4, num_train_epochs=2
    )
    rows = keyword_rows(96, 1)
    long_rows = [  # three rows in one text (up to 36 words): several windows of 16 tokens
        (
            " ".join(text for text, _ in rows[i : i + 3]),
            sorted({name for _, names in rows[i : i + 3] for name in names}),
        )
        for i in range(0, len(rows), 3)
    ]
    train_tiny(rows + long_rows, keyword_rows(40, 2), args=args)
    directory = tmp_path / "model"
    model, tokenizer = (
        AutoModelForMultiLabel.from_pretrained(directory),
        AutoTokenizer.from_pretrained(directory),
    )
    assert (model.config.sliding_window, model.config.window_stride, model.config.max_length) == (True, 4, 16)
    texts = [LONG, " ".join(["code chip phone"] * 4 + ["the team won"] * 4), TEXTS[0]]
    probs = predict_proba(model, tokenizer, texts)  # windows: the saved contract
    truncated = predict_proba(model, tokenizer, texts, sliding_window=False)
    assert np.abs(probs[:2] - truncated[:2]).max() > 1e-4  # the windows past the first 16 tokens count

    calls = [[texts, {"top_k": None}], [texts, {"top_k": None, "batch_size": 4}], [texts, {}]]
    out = run_remote(str(directory), calls, TEXTS[:3], tmp_path, offline_env(tmp_path))
    assert out["classes"][1:3] == ["MultiLabelClassificationPipeline", TASK]
    every, batched, default = out["calls"]
    names = model.config.labels
    for row, labels, a, b, c in zip(probs, predict(model, tokenizer, texts), every, batched, default):
        assert_labels(a, row, names, names)
        assert_labels(b, row, names, names)  # windows of several texts in one padded batch
        assert_labels(c, row, labels, names)


# ---------------------------------------------------------------------------------------------------------------
# With mlclf_hub imported (no subprocess)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model, tokenizer = tiny_model(labels=LABELS), tiny_tokenizer()
    directory = tmp_path_factory.mktemp("saved") / "model"
    mlclf_hub.save_model(model, directory, tokenizer)
    return model, tokenizer, directory


def test_installed_and_saved_pipelines_live_side_by_side(saved, tmp_path):
    model, _, directory = saved
    assert not hasattr(model.config, "custom_pipelines")  # written into config.json only
    installed = pipeline(TASK, model=str(directory))  # the registered class, no remote code
    assert type(installed) is MultiLabelClassificationPipeline
    loaded = installed.model.config.custom_pipelines
    assert loaded == {REMOTE_CODE_TASK.format(task=TASK): CUSTOM_PIPELINES[TASK]}
    remote = pipeline(model=str(directory), trust_remote_code=True)  # no task: the saved pipeline
    assert type(remote).__module__.startswith("transformers_modules")
    assert installed(TEXTS, top_k=None) == remote(TEXTS, top_k=None)
    installed.model.save_pretrained(tmp_path / "again")  # a loaded model saves the entry under its task again
    assert (
        json.loads((tmp_path / "again" / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINES
    )
    assert installed.model.config.custom_pipelines == loaded


def test_top_k_none_threshold_and_pair_inputs_are_checked(saved):
    model, tokenizer, directory = saved
    classify = pipeline(TASK, model=str(directory))
    probs = predict_proba(model, tokenizer, TEXTS)
    for row, result in zip(probs, classify(TEXTS, top_k=None)):
        assert_labels(result, row, list(LABELS), list(LABELS))
    assert [len(r) for r in classify(TEXTS, top_k=None, threshold=1.0)] == [3] * len(TEXTS)
    assert classify(TEXTS, threshold=1.0) == [[]] * len(TEXTS)
    assert [len(r) for r in classify(TEXTS, top_k=2, threshold=0.0)] == [2] * len(TEXTS)
    with pytest.raises(ValueError, match=r"`threshold` has 2 values but the model has 3 labels"):
        classify(TEXTS, threshold=[0.1, 0.2])
    with pytest.raises(
        ValueError, match=r"`threshold\[1\]` \(label 'politics'\) must be in \[0, 1\], got 1.5"
    ):
        classify(TEXTS, threshold=[0.1, 1.5, 0.2])
    with pytest.raises(TypeError, match=r"`threshold` must be a float"):
        classify(TEXTS, threshold=True)
    with pytest.raises(TypeError, match=r"`threshold` must be a float in \[0, 1\] or one float per label"):
        classify(TEXTS, threshold="0.5")  # a string is not one threshold per character
    assert classify([]) == [] and classify(()) == []  # as predict([]): nothing in, nothing out
    with pytest.raises(
        ValueError, match=r"keys 'text' and \(optionally\) 'text_pair', got the keys \['pair', 'text'\]"
    ):
        classify({"text": "a", "pair": "b"})
    with pytest.raises(TypeError, match=r"field 'text_pair': expected a string, got int"):
        classify({"text": "a", "text_pair": 3})
    with pytest.raises(ValueError, match=r"windowing does not apply to text pairs"):
        classify({"text": "a", "text_pair": "b"}, sliding_window=True)


RESAVE = """
import json, os, sys
sys.modules["mlclf_hub"] = None  # remote code only, as in Colab without the package
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
source, target, text = sys.argv[1], sys.argv[2], sys.argv[3]
model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=True)
model.config.thresholds = [0.0] * model.config.num_labels  # a user's change, saved again
model.save_pretrained(target)
AutoTokenizer.from_pretrained(source, trust_remote_code=True).save_pretrained(target)
classify = pipeline(model=target, trust_remote_code=True)
print(json.dumps({"files": sorted(os.listdir(target)), "labels": [r["label"] for r in classify(text)]}))
"""


def test_a_model_saved_again_without_mlclf_hub_keeps_its_pipeline(saved, tmp_path):
    """Remote code re-saving: the pipeline's files come along (config.json names them), so the copy still answers."""
    _, _, directory = saved
    target = tmp_path / "resaved"
    printed = run_python(
        RESAVE, str(directory), str(target), TEXTS[0], cwd=tmp_path, env=offline_env(tmp_path)
    )
    out = json.loads(printed.strip().splitlines()[-1])
    assert set(out["files"]) >= PIPELINE_FILES
    assert sorted(out["labels"]) == sorted(
        LABELS
    )  # threshold 0: every label, read through the copied pipeline
    assert json.loads((target / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINES
