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
from huggingface_hub import ModelCard, ModelCardData
from transformers import AutoModelForSequenceClassification

from mlclf_hub import AutoModelForMultiLabel, push_to_hub
from mlclf_hub.hub import (
    CARD_METRICS,
    HubPushError,
    MultiLabelModelCardData,
    format_metric,
    generate_model_card,
)
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
    assert data["widget"] and data["widget"][0]["text"]
    assert "model-index" in readme.read_text().split("---")[1]

    metrics = trained.eval_metrics
    results = {r.metric_name: r for r in card.data.eval_results}
    for key, name, metric_type, _ in CARD_METRICS:
        assert results[name].metric_type == metric_type
        assert results[name].metric_value == round(metrics[key], 4)
        assert results[name].task_type == "text-classification"
        assert f"| {name} | {format_metric(metrics[key])} |" in card.text
    assert f"| Validation loss | {format_metric(metrics['eval_loss'])} |" in card.text
    thresholds = trained.model.config.thresholds
    for name, threshold in zip(LABELS, thresholds):
        m = metrics["per_label"][name]
        row = " | ".join(
            format_metric(v) for v in (threshold, m["precision"], m["recall"], m["f1"], m["support"])
        )
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
- text: [a-z ]+
model-index:
- name: multi-label text classifier
  results:
  - task:
      type: text-classification
.*?
---

# multi-label text classifier

A multi-label text classifier trained with \[mlclf_hub\]\(https://github.com/mlclf-hub/mlclf_hub\): each of its
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

Measured on the validation data of keyword topics, at the thresholds above.

\| Metric \| Value \|
\|:---\| ---: \|
(\| [\w ()]+ \| NUM \|\n){11}
### Per label

\| Label \| Threshold \| Precision \| Recall \| F1 \| Support \|
.*?
(\| `\w+` \| NUM \| NUM \| NUM \| NUM \| \d+ \|\n){3}
## Intended uses and limitations

.*?
## Framework versions

- python: [\d.]+
- mlclf_hub: [\w.]+
- transformers: [\w.+]+
(- \w+: [\w.+]+\n)*""".replace("NUM", NUM),
    flags=re.DOTALL,
)


def test_card_matches_the_pattern(trained):
    text = (Path(trained.output_dir) / "README.md").read_text()
    assert CARD_PATTERN.fullmatch(text), text


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
    assert {r.metric_name for r in card.data.eval_results} >= {"F1 (micro)", "F1 (macro)"}
    info = model.push_to_hub("ns/facade", endpoint=hub_server.endpoint, token="hf_x", commit_message="facade")
    files = hub_server.files("ns/facade")
    assert set(files) >= MODEL_FILES | {"model_args.json"}
    assert b'from_pretrained("ns/facade")' in files["README.md"]
    assert hub_server.repos["ns/facade"].commits[info.oid].title == "facade"
