"""Model cards and push_to_hub, round-tripped through the local Hub-compatible server (tests/hub_server.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData, hf_hub_download
from transformers import AutoModelForSequenceClassification

from mlclf_hub import AutoModelForMultiLabel, push_to_hub
from mlclf_hub.hub import (
    CARD_METRICS,
    DEFAULT_WIDGET_TEXT,
    HubPushError,
    MultiLabelModelCardData,
    format_megabytes,
    format_metric,
    generate_model_card,
)
from mlclf_hub.metrics import multilabel_metrics
from tests.conftest import HUB_TEST_TOKEN
from tests.tiny_models import tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args, train_tiny

pytestmark = pytest.mark.hub

TEXTS = ["the team won the game", "vote on the new law", "new code for the old phone chip", "a"]
MODEL_FILES = {
    ".gitattributes",
    "README.md",
    "config.json",
    "model.safetensors",
    "configuration_multilabel.py",
    "modeling_multilabel.py",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for 2 epochs on keyword data and saved (with its card) by `train()`."""
    out = tmp_path_factory.mktemp("trained") / "model"
    args = tiny_training_args(str(out), num_train_epochs=2)
    card_data = MultiLabelModelCardData(
        language="en", license="apache-2.0", dataset_name="keyword topics", dataset_description="Toy rows."
    )
    result = train_tiny(
        keyword_rows(80, seed=1),
        keyword_rows(40, seed=2),
        args=args,
        card_data=card_data,
    )
    return result


def logits_of(model, tokenizer, texts=TEXTS) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(**tokenizer(texts, return_tensors="pt", padding=True)).logits.numpy()


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file (and the set of paths, directories included) under `directory`."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in sorted(directory.rglob("*"))
    }


# --------------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------------


def test_card_parses_validates_and_holds_the_real_metrics(trained):
    readme = Path(trained.output_dir) / "README.md"
    card = ModelCard.load(readme)
    data = card.data.to_dict()
    ModelCardData(**data)  # the metadata validates (model-index parsed into eval_results)
    assert data["pipeline_tag"] == "text-classification"
    assert data["library_name"] == "transformers"
    assert {"mlclf_hub", "multi-label-classification"} <= set(data["tags"])
    assert data["language"] == "en" and data["license"] == "apache-2.0"
    # no validation row on a public card unless asked: the neutral default, in the widget and the snippets
    assert data["widget"] == [{"text": DEFAULT_WIDGET_TEXT}]
    assert json.dumps(DEFAULT_WIDGET_TEXT) in card.text
    assert "model-index" in readme.read_text().split("---")[1]

    metrics, heldout = trained.eval_metrics, trained.heldout_metrics
    results = {r.metric_name: r for r in card.data.eval_results}
    assert len(results) == len(CARD_METRICS)
    for key, name, metric_type, _ in CARD_METRICS:
        # the model-index carries the held-out figures, named as such (LRAP and ROC AUC read no threshold)
        index_name = name if key in ("lrap", "roc_auc_macro") else f"{name}, cross-fitted"
        assert results[index_name].metric_type == metric_type
        assert results[index_name].metric_value == round(heldout[key], 4)
        assert results[index_name].task_type == "text-classification"
        assert f"| {name} | {format_metric(heldout[key])} | {format_metric(metrics[key])} |" in card.text
    loss = format_metric(metrics["eval_loss"])
    assert f"| Validation loss | {loss} | {loss} |" in card.text
    thresholds = trained.model.config.thresholds
    for name, threshold in zip(LABELS, thresholds):
        m, h = metrics["per_label"][name], heldout["per_label"][name]
        values = (threshold, m["precision"], m["recall"], m["f1"], h["f1"], m["support"])
        row = " | ".join(format_metric(v) for v in values)
        assert f"| `{name}` | {row} |" in card.text
        assert f"| `{name}` | {format_metric(threshold)} |" in card.text  # labels-and-thresholds table
    assert "- **Training rows:** 80" in card.text and "- **Validation rows:** 40" in card.text
    assert "- num_train_epochs: `2`" in card.text  # a non-default hyperparameter
    assert "Toy rows." in card.text
    assert "measured at thresholds" not in card.text  # metrics are at the saved thresholds


NUM = r"\d+\.\d{4}"
CARD_PATTERN = re.compile(
    r"""---
language: en
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
tags:
- mlclf_hub
- text-classification
- multi-label-classification
- custom_code
metrics:
(- \w+\n)+widget:
- text: Type a text here to see which labels it gets\.
model-index:
- name: multi-label text classifier
  results:
  - task:
      type: text-classification
.*?
---

# multi-label text classifier

A multi-label text classifier trained with the `mlclf_hub` library: each of its
3 labels is an independent yes/no decision .*?

## Model description

- \*\*Model type:\*\* encoder with a multi-label classification head .*?
- \*\*Base model:\*\* <!-- unknown: set `base_model` in the card data -->
- \*\*Backbone:\*\* `bert`
- \*\*Pooling:\*\* `cls`
- \*\*Nearest-neighbour memory:\*\* 80 training rows stored with the weights; the logits add 0.5 × the label log-odds of the 30 most similar rows
- \*\*Lexical channel:\*\* a logistic regression on TF-IDF bags of \d+ tokens, fitted on the training rows; the logits add 0.5 × its scores
- \*\*Parameters:\*\* \d{1,3}(,\d{3})*
- \*\*Language:\*\* en
- \*\*License:\*\* apache-2.0

### Labels and thresholds

\| Label \| Threshold \|
\|:---\| ---: \|
(\| `\w+` \| NUM \|\n){3}
### Data stored with the weights

Besides the network's weights, `model.safetensors` holds two tables fitted on the training rows after fine-tuning, published with the weights:

- \*\*Nearest-neighbour memory\*\* \(`knn_keys`, `knn_values`\): 80 training-row vectors of 32 dimensions \(`float(16|32)`, [\d.]+ MB\), .*?
- \*\*Lexical table\*\* \(`lexical_vocab`, `lexical_idf`, `lexical_coef`\): \d+ tokens × 3 labels \([\d.]+ MB\), .*?

Both come from the training texts themselves: .*? call `model.clear_knn_memory\(\)` and `model.clear_lexical_model\(\)`, tune the thresholds again .*?

## How to use

.*?AutoModelForMultiLabel.from_pretrained\("path/to/model"\).*?trust_remote_code=True\).*?"""
    r"""pipeline\("multi-label-classification", model="path/to/model"\).*?

## Training data

- \*\*Dataset:\*\* keyword topics
- \*\*Training rows:\*\* 80
- \*\*Validation rows:\*\* 40

Toy rows.

## Training procedure

### Training hyperparameters

Non-default hyperparameters \(compared with `MultiLabelTrainingArguments\(\)`\):

(- \w+: `[^`\n]+`\n)+
<details><summary>All hyperparameters</summary>

(- \w+: `[^`\n]*`\n)+
</details>

### Training log

\| epoch \| step \| eval_loss \| f1_micro \| f1_macro \| lrap \|
.*?
The evaluations in this log are the head's alone, at 0.5: the nearest-neighbour memory and the lexical channel are built after training.

## Evaluation results

Measured on the 40 validation rows of keyword topics, at the thresholds above.
The thresholds were tuned on these same rows, so two figures are given:

- \*\*Held out: thresholds tuned on one half, scored on the other \(cross-fitted\).\*\* .*? and the one in the `model-index`.
- \*\*Tuned and scored on the validation rows \(in-sample\).\*\* .*?

Label ranking average precision, ROC AUC and the loss read the scores, not the thresholds: the two columns agree on them.

\| Metric \| Held out \(cross-fitted\) \| In-sample \(tuned\) \|
\|:---\| ---: \| ---: \|
(\| [\w ()]+ \| NUM \| NUM \|\n){11}
### Per label

\| Label \| Threshold \| Precision \| Recall \| F1 \| F1 held out \(cross-fitted\) \| Support \|
.*?
(\| `\w+` \| NUM \| NUM \| NUM \| NUM \| NUM \| \d+ \|\n){3}
## Intended uses and limitations

.*?
## Framework versions

- python: [\d.]+
- mlclf_hub: [\w.]+
- transformers: [\w.+]+
(- \w+: [\w.+]+\n)*""".replace("NUM", NUM),
    flags=re.DOTALL,
)


def card_table(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (cells stripped) of the first markdown table under `heading` in the card."""
    lines = text[text.index(f"\n{heading}\n") + len(heading) + 2 :].splitlines()
    table = []
    for line in lines:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif table or line.startswith("#"):
            break
    assert len(table) >= 2 and set("".join(table[1])) <= set(":-"), f"no table under {heading!r}"
    return table[0], table[2:]


def test_card_matches_the_pattern(trained):
    text = (Path(trained.output_dir) / "README.md").read_text()
    assert CARD_PATTERN.fullmatch(text), text  # the structure: sections, order, wording


def assert_card_reports(readme: Path, config, metrics: dict, heldout: dict, rows: list) -> None:
    """The card's tables and model-index, cell by cell, against the model's `config`, the in-sample `metrics`,
    the `heldout` ones (both `multilabel_metrics(..., per_label=True)`, `metrics` with `eval_loss`) and the
    validation `rows` (`(text, label names)`)."""
    text = readme.read_text()
    names = [config.id2label[i] for i in range(config.num_labels)]

    # labels and thresholds: the model's labels, in id order, with its thresholds
    header, table = card_table(text, "### Labels and thresholds")
    assert header == ["Label", "Threshold"]
    assert table == [[f"`{name}`", format_metric(t)] for name, t in zip(names, config.thresholds)]

    # evaluation results: held out, then in-sample, each metric's own figure; the loss reads no threshold
    header, table = card_table(text, "## Evaluation results")
    assert header == ["Metric", "Held out (cross-fitted)", "In-sample (tuned)"]
    loss = format_metric(metrics["eval_loss"])
    assert table == [
        *(
            [name, format_metric(heldout[key]), format_metric(metrics[key])]
            for key, name, _, _ in CARD_METRICS
        ),
        ["Validation loss", loss, loss],
    ]

    # the model-index: the held-out figures, one per card metric
    results = ModelCard.load(readme).data.eval_results
    assert {result.metric_name: result.metric_value for result in results} == {
        name if key in ("lrap", "roc_auc_macro") else f"{name}, cross-fitted": round(heldout[key], 4)
        for key, name, _, _ in CARD_METRICS
    }

    # per label: each label's figures, and supports that count the validation rows' positives
    header, table = card_table(text, "### Per label")
    assert header[0] == "Label" and header[-1] == "Support"
    assert [row[0] for row in table] == [f"`{name}`" for name in names]
    for row, name, threshold in zip(table, names, config.thresholds):
        m, h = metrics["per_label"][name], heldout["per_label"][name]
        values = [threshold, m["precision"], m["recall"], m["f1"], h["f1"], m["support"]]
        assert row[1:] == [format_metric(v) for v in values], name
    positives = {name: sum(name in labels for _, labels in rows) for name in names}
    assert {name: int(row[-1]) for name, row in zip(names, table)} == positives
    assert sum(int(row[-1]) for row in table) == sum(len(labels) for _, labels in rows)


def test_card_tables_hold_the_models_labels_and_the_measured_metrics(trained):
    readme = Path(trained.output_dir) / "README.md"
    saved = AutoModelForMultiLabel.from_pretrained(trained.output_dir).config
    validation_rows = keyword_rows(40, seed=2)  # the `trained` fixture's validation rows
    assert_card_reports(readme, saved, trained.eval_metrics, trained.heldout_metrics, validation_rows)
    assert {r.dataset_name for r in ModelCard.load(readme).data.eval_results} == {"keyword topics"}


def test_card_puts_each_figure_in_its_own_cell(tmp_path):
    """Held-out and in-sample figures, and each label's threshold, differ here: a swap shows."""
    rng = np.random.default_rng(0)
    rows = keyword_rows(40, seed=2)
    y_true = np.array([[int(name in labels) for name in LABELS] for _, labels in rows])
    probs = np.clip(0.6 * y_true + 0.5 * rng.random(y_true.shape), 0, 1)
    model = tiny_model(labels=LABELS, thresholds=[0.45, 0.6, 0.75])
    metrics = multilabel_metrics(y_true, probs, model.config.thresholds, LABELS, per_label=True)
    heldout = multilabel_metrics(y_true, probs, [0.7, 0.4, 0.55], LABELS, per_label=True)
    threshold_keys = [key for key, *_ in CARD_METRICS if key not in ("lrap", "roc_auc_macro")]
    assert all(metrics[key] != heldout[key] for key in threshold_keys)  # the columns can be told apart
    card_data = MultiLabelModelCardData(dataset_name="keyword topics")
    card_data.set_eval_metrics({**metrics, "eval_loss": 0.25}, model.config.thresholds, tuned=True)
    card_data.set_heldout_metrics(heldout)
    readme = tmp_path / "README.md"
    readme.write_text(str(generate_model_card(model, card_data)), encoding="utf-8")
    assert_card_reports(readme, model.config, {**metrics, "eval_loss": 0.25}, heldout, rows)


def test_card_without_training_comments_unknown_facts():
    card = generate_model_card(tiny_model(labels=LABELS))
    assert "<!-- no evaluation results" in card.text
    assert "<!-- unknown: set `license` in the card data -->" in card.text
    assert "model-index" not in str(card)
    assert "- **Nearest-neighbour memory:** none\n" in card.text
    assert "- **Lexical channel:** none\n" in card.text
    ModelCardData(**card.data.to_dict())


# --------------------------------------------------------------------------------------------------------------
# push_to_hub
# --------------------------------------------------------------------------------------------------------------

ROUND_TRIP = """
import json, sys
import numpy as np, torch
repo, out, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

sys.modules["mlclf_hub"] = None  # 2. plain transformers + remote code, mlclf_hub not importable
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
tokenizer = AutoTokenizer.from_pretrained(repo)
def logits(model):
    with torch.no_grad():
        return model.eval()(**tokenizer(texts, return_tensors="pt", padding=True)).logits.numpy()
model = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
np.save(out + "/remote.npy", logits(model))
stock = pipeline("text-classification", model=repo, top_k=None, trust_remote_code=True)(texts)

del sys.modules["mlclf_hub"]  # 1. mlclf_hub's own Auto class, and its pipeline
import mlclf_hub
np.save(out + "/mlclf.npy", logits(mlclf_hub.AutoModelForMultiLabel.from_pretrained(repo)))
ours = pipeline("multi-label-classification", model=repo)(texts)
json.dump({"stock": stock, "ours": ours}, open(out + "/pipelines.json", "w"))
"""


def test_round_trip_through_the_local_hub(trained, hub_env, tmp_path):
    server = hub_env
    info = push_to_hub(trained.model, "ns/tiny-mlclf", tokenizer=trained.tokenizer, endpoint=server.endpoint)
    assert info.oid == server.head("ns/tiny-mlclf")
    files = server.files("ns/tiny-mlclf")
    assert set(files) >= MODEL_FILES
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    local_card = (Path(trained.output_dir) / "README.md").read_text()
    pushed_card = files["README.md"].decode()
    assert 'from_pretrained("ns/tiny-mlclf")' in pushed_card  # the card names the repo
    results = pushed_card.split("## Evaluation results")[1]
    assert results == local_card.split("## Evaluation results")[1]  # the same measured numbers

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(ROUND_TRIP),
            "ns/tiny-mlclf",
            str(tmp_path),
            json.dumps(TEXTS),
        ],
        cwd=tmp_path,
        env=os.environ.copy(),  # hub_env: HF_ENDPOINT = the server, empty HF_HOME and modules cache
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    local = logits_of(trained.model, trained.tokenizer)
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), local)
    np.testing.assert_array_equal(np.load(tmp_path / "mlclf.npy"), local)
    # 3. registered classes, no remote code (in this process, where mlclf_hub is imported)
    registered = AutoModelForSequenceClassification.from_pretrained("ns/tiny-mlclf")
    np.testing.assert_array_equal(logits_of(registered, trained.tokenizer), local)

    outputs = json.loads((tmp_path / "pipelines.json").read_text())
    probs = 1 / (1 + np.exp(-logits_of(trained.model, trained.tokenizer).astype(np.float64)))
    thresholds = trained.model.config.thresholds
    for row, stock, ours in zip(probs, outputs["stock"], outputs["ours"]):
        by_name = {r["label"]: r["score"] for r in stock}
        np.testing.assert_allclose([by_name[name] for name in LABELS], row, atol=1e-6)
        assert {r["label"] for r in ours} == {
            name for j, name in enumerate(LABELS) if row[j] >= thresholds[j]
        }


def test_push_options_reach_the_server(trained, hub_server):
    info = push_to_hub(
        trained.model,
        "ns/options",
        tokenizer=trained.tokenizer,
        private=True,
        revision="dev",
        commit_message="first version",
        token="hf_explicit_token",
        endpoint=hub_server.endpoint,
    )
    repo = hub_server.repos["ns/options"]
    assert repo.private
    assert hub_server.last_token == "hf_explicit_token"
    assert set(hub_server.files("ns/options", "dev")) >= MODEL_FILES
    assert set(hub_server.files("ns/options", "main")) == {".gitattributes"}  # only the branch got the commit
    assert info.oid == hub_server.head("ns/options", "dev")
    assert repo.commits[info.oid].title == "first version"


def test_push_reads_the_token_from_the_environment(trained, hub_env):
    push_to_hub(trained.model, "ns/env-token", tokenizer=trained.tokenizer, endpoint=hub_env.endpoint)
    assert hub_env.last_token == HUB_TEST_TOKEN


def test_model_method_pushes_with_the_card(trained, hub_server):
    info = trained.model.push_to_hub("ns/method", tokenizer=trained.tokenizer, endpoint=hub_server.endpoint)
    files = hub_server.files("ns/method", "main")
    assert set(files) >= MODEL_FILES
    assert info.oid == hub_server.head("ns/method", "main")
    assert "mlclf_hub" in files["README.md"].decode()


def test_malformed_repo_id_is_refused_before_any_request(trained, hub_server):
    with pytest.raises(
        ValueError, match=re.escape("`repo_id` must be 'name' or 'namespace/name', got 'a/b/c'.")
    ):
        push_to_hub(trained.model, "a/b/c", endpoint=hub_server.endpoint)
    assert hub_server.request_log == []


@pytest.mark.parametrize(
    ("failure", "stage"),
    [("server_down", "creating the repo"), ("commit_500", "committing"), ("drop_commit", "committing")],
)
def test_failed_push_says_why_and_leaves_the_local_model_untouched(
    trained, hub_server, hub_fast_retry, failure, stage
):
    directory = Path(trained.output_dir)
    model = AutoModelForMultiLabel.from_pretrained(directory)  # loaded from the directory it must not touch
    before = snapshot(directory)
    if failure == "server_down":
        hub_server.stop()
    else:
        hub_server.fail_next(failure, count=None)
    with pytest.raises(HubPushError, match=rf"^push to ns/broken failed while {stage}: ") as caught:
        push_to_hub(model, "ns/broken", endpoint=hub_server.endpoint, token="hf_x")
    assert caught.value.stage == stage and caught.value.__cause__ is not None
    assert snapshot(directory) == before
    if failure != "server_down":
        assert set(hub_server.files("ns/broken")) == {".gitattributes"}  # nothing was committed
        hub_server.clear_failures()
        # the same call then succeeds, with the tokenizer and the card saved next to the model
        push_to_hub(model, "ns/broken", endpoint=hub_server.endpoint, token="hf_x")
        files = hub_server.files("ns/broken")
        assert set(files) >= MODEL_FILES
        assert files["README.md"] == (directory / "README.md").read_bytes()
        assert snapshot(directory) == before


def test_simpletransformers_facade_writes_the_card_and_pushes(tmp_path, hub_server):
    import pandas as pd
    from transformers import AutoModel

    from mlclf_hub.simple import MultiLabelClassificationModel
    from tests.tiny_models import tiny_backbone_config

    encoder = tmp_path / "encoder"
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    rows = [(text, [int(name in labels) for name in LABELS]) for text, labels in keyword_rows(24, seed=3)]
    frame = pd.DataFrame(rows, columns=["text", "labels"])
    out = tmp_path / "out"
    args = {"output_dir": str(out), "silent": True, "train_batch_size": 8, "num_train_epochs": 1}
    model = MultiLabelClassificationModel("bert", str(encoder), num_labels=3, args=args, use_cuda=False)
    model.train_model(frame, eval_df=frame)
    card = ModelCard.load(out / "README.md")
    assert "measured at thresholds" not in card.text  # metrics at the thresholds the facade tuned and saved
    # the facade tunes its own thresholds: the card holds its held-out (cross-fitted) figures, in the model-index too
    assert {r.metric_name for r in card.data.eval_results} >= {
        "F1 (micro), cross-fitted",
        "F1 (macro), cross-fitted",
    }
    assert "Held out (cross-fitted)" in card.text and "In-sample (tuned)" in card.text
    info = model.push_to_hub("ns/facade", endpoint=hub_server.endpoint, token="hf_x", commit_message="facade")
    files = hub_server.files("ns/facade")
    assert set(files) >= MODEL_FILES | {"model_args.json"}
    assert b'from_pretrained("ns/facade")' in files["README.md"]
    assert hub_server.repos["ns/facade"].commits[info.oid].title == "facade"


# --------------------------------------------------------------------------------------------------------------
# Held-out figures (issue #17)
# --------------------------------------------------------------------------------------------------------------


def test_train_reports_cross_fitted_metrics_next_to_the_in_sample_ones(trained):
    from mlclf_hub.thresholds import cross_fitted_metrics

    y_true = np.array([[int(label in labels) for label in LABELS] for _, labels in keyword_rows(40, seed=2)])
    expected = cross_fitted_metrics(
        y_true, trained.eval_probabilities, label_names=LABELS, per_label=True, min_positives=5, seed=0
    )
    assert trained.heldout_metrics == expected
    assert trained.heldout_skipped is None
    assert trained.heldout_metrics["num_samples"] == trained.eval_metrics["num_samples"] == 40
    # the in-sample figures stay as they were: tuned and scored on all the validation rows
    in_sample = multilabel_metrics(y_true, trained.eval_probabilities, trained.model.config.thresholds)
    assert trained.eval_metrics["f1_micro"] == in_sample["f1_micro"]
    assert trained.card_data.heldout_metrics["f1_micro"] == expected["f1_micro"]


@pytest.mark.parametrize(
    ("eval_rows", "reason"),
    [(4, "the validation split has 4 rows, too few to cut in two halves of 3"), (2, "too few to tune")],
)
def test_a_validation_split_too_small_to_cut_gives_in_sample_figures_only(
    tmp_path, caplog, eval_rows, reason
):
    args = tiny_training_args(str(tmp_path / "out"), num_train_epochs=1)
    with caplog.at_level("WARNING", logger="mlclf_hub.trainer"):
        result = train_tiny(keyword_rows(40, seed=1), keyword_rows(eval_rows, seed=2), args=args)
    assert result.heldout_metrics is None
    assert reason in result.heldout_skipped
    assert reason in caplog.text
    card = ModelCard.load(Path(result.output_dir) / "README.md")
    names = {r.metric_name for r in card.data.eval_results}
    if eval_rows == 4:  # thresholds tuned on the 4 rows: in-sample figures, named and explained as such
        assert "F1 (micro), in-sample" in names
        assert "tuned and scored on the validation rows (in-sample)" in card.text
        assert f"There are no held-out figures ({result.heldout_skipped})" in card.text
        assert "| Metric | In-sample (tuned) |" in card.text
    else:  # too few to tune at all: the thresholds stay at 0.5
        assert result.model.config.thresholds == [0.5] * len(LABELS)
        assert "F1 (micro)" in names
        assert "The thresholds were not tuned on these rows" in card.text
    assert "cross-fitted" not in card.text


def test_untuned_thresholds_are_not_called_in_sample(tmp_path):
    args = tiny_training_args(str(tmp_path / "out"), num_train_epochs=1, tune_thresholds=False)
    result = train_tiny(keyword_rows(40, seed=1), keyword_rows(20, seed=2), args=args)
    assert result.heldout_metrics is None and "tune_thresholds=False" in result.heldout_skipped
    text = (Path(result.output_dir) / "README.md").read_text()
    assert "The thresholds were not tuned on these rows" in text
    assert "| Metric | Value |" in text and "cross-fitted" not in text
    assert "tuned and scored on the validation rows" not in text


def test_card_without_tables_says_it_carries_only_weights():
    card = generate_model_card(tiny_model(labels=LABELS))
    assert "Nothing but the network's weights: no nearest-neighbour memory and no lexical table" in card.text
    assert "clear_knn_memory" not in card.text


def test_card_states_the_tables_it_carries(trained):
    model = trained.model
    text = (Path(trained.output_dir) / "README.md").read_text()
    keys_mb = model.knn_keys.numel() * model.knn_keys.element_size() / 1e6
    dtype = str(model.knn_keys.dtype).removeprefix("torch.")
    assert (
        f"{model.config.knn_memory_size} training-row vectors of 32 dimensions (`{dtype}`, "
        f"{format_megabytes(keys_mb)} MB)" in text
    )
    tables = (model.lexical_vocab, model.lexical_idf, model.lexical_coef)
    lexical_mb = format_megabytes(sum(t.numel() * t.element_size() for t in tables) / 1e6)
    assert f"{model.config.lexical_vocab_size} tokens × 3 labels ({lexical_mb} MB)" in text
    assert "a training text can be approximately recovered from its vector" in text
    assert "`model.clear_knn_memory()` and `model.clear_lexical_model()`, tune the thresholds again" in text


def test_every_link_of_the_card_points_to_the_hub():
    data = MultiLabelModelCardData(base_model="ns/encoder", dataset_name="d", dataset_id="ns/data")
    text = str(generate_model_card(tiny_model(labels=LABELS), data))
    links = re.findall(r"https?://[^\s)\"'>]+", text)
    assert sorted(links) == ["https://huggingface.co/datasets/ns/data", "https://huggingface.co/ns/encoder"]
    assert "github.com" not in (Path(__file__).parents[1] / "model_card_template.md").read_text()
    local = MultiLabelModelCardData(dataset_name="d", dataset_id="/data/train.jsonl")
    card = generate_model_card(tiny_model(labels=LABELS), local)
    assert "huggingface.co/datasets" not in card.text and "datasets" not in card.data.to_dict()


# --------------------------------------------------------------------------------------------------------------
# No local path leaves the machine
# --------------------------------------------------------------------------------------------------------------


def test_save_pretrained_keeps_hub_ids_and_drops_local_paths(tmp_path):
    model = tiny_model(labels=LABELS)
    backbone = model.config.backbone_config
    cases = (("ns/encoder", "ns/encoder"), ("bert-base-uncased", "bert-base-uncased"), (str(tmp_path), ""))
    for name, saved in cases:
        backbone._name_or_path = name
        model.config._name_or_path = name
        model.save_pretrained(tmp_path / "out")
        config = json.loads((tmp_path / "out" / "config.json").read_text())
        assert config["backbone_config"]["_name_or_path"] == saved
        assert config.get("_name_or_path", "") in ("", saved)
        assert backbone._name_or_path == name and model.config._name_or_path == name  # memory restored


def test_no_local_path_is_uploaded(tmp_path, hub_env):
    import tempfile

    from transformers import AutoModel

    from tests.tiny_models import tiny_backbone_config

    encoder = tmp_path / "encoder"
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    tokenizer_config = json.loads((encoder / "tokenizer_config.json").read_text())
    tokenizer_config["vocab_dir"] = str(encoder)  # an unknown key that transformers carries along
    (encoder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    out = tmp_path / "out"
    args = tiny_training_args(str(out), num_train_epochs=1, project=str(tmp_path / "runs"))
    from mlclf_hub import train

    result = train(str(encoder), keyword_rows(40, seed=1), keyword_rows(20, seed=2), labels=LABELS, args=args)
    push_to_hub(result.model, "ns/private-paths", tokenizer=result.tokenizer, endpoint=hub_env.endpoint)

    files = hub_env.files("ns/private-paths")
    assert set(files) >= MODEL_FILES
    places = [tmp_path, out, encoder, os.path.expanduser("~"), sys.prefix, tempfile.gettempdir()]
    needles = [str(n) for n in places if len(str(n)) > 1]
    for name, data in files.items():
        for needle in needles:
            assert needle.encode() not in data, (name, needle)
    config = json.loads(files["config.json"])
    assert config["backbone_config"]["_name_or_path"] == ""
    assert config["thresholds"] == result.model.config.thresholds
    assert "- project: `'<local path>'`" in files["README.md"].decode()
    assert "vocab_dir" not in json.loads(files["tokenizer_config.json"])
    assert result.model.config.backbone_config._name_or_path == str(encoder)  # the model in memory keeps it


# --------------------------------------------------------------------------------------------------------------
# push_to_hub takes transformers' keywords
# --------------------------------------------------------------------------------------------------------------


def test_push_to_hub_takes_every_keyword_of_transformers():
    import inspect

    from transformers.utils.hub import PushToHubMixin

    from mlclf_hub.hub import push_to_hub as hub_push

    ours = inspect.signature(hub_push).parameters
    theirs = inspect.signature(PushToHubMixin.push_to_hub).parameters
    for name, parameter in theirs.items():
        if name == "self":
            continue
        assert name in ours, name
        assert ours[name].default == parameter.default, name


def test_transformers_keywords_reach_the_hub(trained, hub_server):
    model = trained.model
    info = model.push_to_hub(
        "ns/keywords",
        commit_message="first version",
        commit_description="the long story",
        private=True,
        token="hf_keyword_token",
        revision="dev",
        max_shard_size="30KB",
        tags=["debtags", "mlclf_hub"],
        tokenizer=trained.tokenizer,
        endpoint=hub_server.endpoint,
    )
    repo = hub_server.repos["ns/keywords"]
    commit = repo.commits[info.oid]
    assert (commit.title, commit.message) == ("first version", "the long story")
    assert repo.private and hub_server.last_token == "hf_keyword_token"
    assert info.oid == hub_server.head("ns/keywords", "dev")
    assert set(hub_server.files("ns/keywords", "main")) == {".gitattributes"}
    files = hub_server.files("ns/keywords", "dev")
    shards = sorted(name for name in files if name.endswith(".safetensors"))
    assert len(shards) > 1 and all(len(files[name]) <= 60_000 for name in shards), shards
    assert "model.safetensors.index.json" in files
    tags = ModelCard(files["README.md"].decode()).data.tags
    assert tags.count("mlclf_hub") == 1 and tags[-1] == "debtags"
    with pytest.raises(TypeError, match="`tags` must be a list of strings"):
        model.push_to_hub("ns/keywords", tags="debtags", endpoint=hub_server.endpoint)


def test_tags_reach_a_readme_taken_as_it_is(trained, hub_server):
    model = AutoModelForMultiLabel.from_pretrained(trained.output_dir)  # no card data: its README.md goes
    model.push_to_hub("ns/tagged", tags=["extra-tag"], endpoint=hub_server.endpoint, token="hf_x")
    card = ModelCard(hub_server.files("ns/tagged")["README.md"].decode())
    assert card.data.tags[-1] == "extra-tag"
    local = ModelCard.load(Path(trained.output_dir) / "README.md")
    assert card.text == local.text


def test_create_pr_opens_a_pull_request_and_leaves_the_branch(trained, hub_server):
    """`create_pr=True` commits to refs/pr/N (tests/hub_server.py serves pull requests); main stays as it was."""
    first = push_to_hub(
        trained.model, "ns/pr", tokenizer=trained.tokenizer, endpoint=hub_server.endpoint, token="hf_x"
    )
    trained.model.config.thresholds = [0.25] * trained.model.config.num_labels
    try:
        info = push_to_hub(
            trained.model,
            "ns/pr",
            create_pr=True,
            tokenizer=trained.tokenizer,
            endpoint=hub_server.endpoint,
            token="hf_x",
        )
    finally:
        trained.model.config.thresholds = json.loads(hub_server.files("ns/pr")["config.json"])["thresholds"]
    assert info.pr_url == f"{hub_server.endpoint}/ns/pr/discussions/1" and info.pr_num == 1
    assert hub_server.head("ns/pr") == first.oid  # main untouched
    config = hf_hub_download(
        "ns/pr", "config.json", revision="refs/pr/1", endpoint=hub_server.endpoint, token="hf_x"
    )
    assert json.loads(Path(config).read_text())["thresholds"] == [0.25] * trained.model.config.num_labels


# --------------------------------------------------------------------------------------------------------------
# train(push_to_hub=True)
# --------------------------------------------------------------------------------------------------------------


def test_train_with_push_to_hub_pushes_once_with_our_card(tmp_path, hub_env):
    args = tiny_training_args(
        str(tmp_path / "out"),
        num_train_epochs=2,
        save_strategy="epoch",  # checkpoints, which Trainer itself would push
        push_to_hub=True,
        hub_model_id="ns/x",
        hub_token="hf_train_token",
        hub_private_repo=True,
    )
    result = train_tiny(keyword_rows(40, seed=1), keyword_rows(20, seed=2), args=args)
    repo = hub_env.repos["ns/x"]
    ours = [c for c in repo.commits.values() if c.title != "initial commit"]
    assert len(ours) == 1 and result.hub_commit.oid == ours[0].oid == hub_env.head("ns/x")
    assert repo.private and hub_env.last_token == "hf_train_token"
    files = hub_env.files("ns/x")
    assert set(files) >= MODEL_FILES
    assert not any(name.startswith(("checkpoint-", "last-checkpoint")) for name in files)
    card = files["README.md"].decode()
    assert "trained with the `mlclf_hub` library" in card and "## Data stored with the weights" in card
    assert 'from_pretrained("ns/x")' in card
    local = (Path(result.output_dir) / "README.md").read_text()
    assert card.split("## Evaluation results")[1] == local.split("## Evaluation results")[1]
    assert json.loads(files["config.json"])["thresholds"] == result.model.config.thresholds
    assert args.push_to_hub and not result.trainer.args.push_to_hub  # the caller's args are left as they were


def test_train_pushes_to_the_output_dirs_name_by_default(tmp_path, hub_env):
    args = tiny_training_args(str(tmp_path / "my-model"), num_train_epochs=1, push_to_hub=True)
    result = train_tiny(keyword_rows(24, seed=1), args=args, save=False)
    assert result.output_dir is None
    assert "test-user/my-model" in hub_env.repos  # the server's user, as for create_repo("my-model")
    assert set(hub_env.files("test-user/my-model")) >= MODEL_FILES


@pytest.mark.parametrize("case", ["malformed id", "server down"])
def test_train_with_push_to_hub_fails_before_training(case, tmp_path, hub_env, hub_fast_retry):
    """A repo that cannot be created ends the run at once, not after training (nothing is trained or saved)."""
    from mlclf_hub.hub import HubPushError

    repo_id = "ns/bad/id" if case == "malformed id" else "ns/unreachable"
    if case == "server down":
        hub_env.stop()
    args = tiny_training_args(
        str(tmp_path / "out"), num_train_epochs=1, push_to_hub=True, hub_model_id=repo_id
    )
    with pytest.raises(ValueError if case == "malformed id" else HubPushError, match="repo"):
        train_tiny(keyword_rows(24, seed=1), args=args)
    assert not (tmp_path / "out").exists()


def test_cli_train_push_to_hub_pushes_the_final_model(tmp_path, hub_env, capsys):
    from transformers import AutoModel

    from mlclf_hub.cli import main
    from tests.tiny_models import tiny_backbone_config

    encoder = tmp_path / "encoder"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(
        "".join(json.dumps({"text": t, "labels": y}) + "\n" for t, y in keyword_rows(40, seed=1)),
        encoding="utf-8",
    )
    argv = ["train", "--model_name_or_path", str(encoder), "--train_file", str(train_file)]
    argv += [
        "--output_dir",
        str(tmp_path / "out"),
        "--num_train_epochs",
        "1",
        "--use_cpu",
        "--disable_tqdm",
        "true",
    ]
    assert main([*argv, "--push_to_hub", "--hub_model_id", "ns/from-cli"]) == 0
    files = hub_env.files("ns/from-cli")
    assert set(files) >= MODEL_FILES
    assert json.loads(files["config.json"])["max_length"] == 128
    assert b'from_pretrained("ns/from-cli")' in files["README.md"]


def test_card_shows_a_validation_row_only_when_asked(tmp_path):
    rows = keyword_rows(40, seed=2)
    for asked in (False, True):
        args = tiny_training_args(str(tmp_path / f"asked-{asked}"), num_train_epochs=1)
        card_data = MultiLabelModelCardData(widget_from_validation=asked)
        result = train_tiny(keyword_rows(40, seed=1), rows, args=args, card_data=card_data)
        widget = ModelCard.load(Path(result.output_dir) / "README.md").data.to_dict()["widget"]
        assert (widget[0]["text"] == rows[0][0]) is asked
        assert (widget[0]["text"] == DEFAULT_WIDGET_TEXT) is not asked
    chosen = MultiLabelModelCardData(widget_text="my own example", widget_from_validation=True)
    result = train_tiny(
        keyword_rows(40, seed=1), rows, args=tiny_training_args(str(tmp_path / "own")), card_data=chosen
    )
    assert ModelCard.load(Path(result.output_dir) / "README.md").data.to_dict()["widget"] == [
        {"text": "my own example"}
    ]
