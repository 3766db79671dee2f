import json
import os
import textwrap

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from mlclf_hub import AutoModelForMultiLabel, MultiLabelConfig, MultiLabelModel
from tests.clean_process import run_python
from tests.tiny_models import tiny_model, tiny_tokenizer

TEXTS = ["the team won a game", "new law and a vote", "old phone chip"]


def _logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.fixture
def saved_model(tmp_path):
    model = tiny_model(
        "bert", labels=("sports", "politics", "tech"), thresholds=[0.3, 0.5, 0.7], pooling="mean"
    )
    tokenizer = tiny_tokenizer()
    path = tmp_path / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer, path


def test_saved_directory_layout(saved_model):
    _, _, path = saved_model
    files = set(os.listdir(path))
    assert {
        "config.json",
        "model.safetensors",
        "configuration_multilabel.py",
        "modeling_multilabel.py",
    } <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pickle"))]
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_multilabel.MultiLabelConfig",
        "AutoModel": "modeling_multilabel.MultiLabelModel",
        "AutoModelForSequenceClassification": "modeling_multilabel.MultiLabelModel",
    }
    assert config["id2label"] == {"0": "sports", "1": "politics", "2": "tech"}
    assert config["thresholds"] == [0.3, 0.5, 0.7]
    assert config["problem_type"] == "multi_label_classification"


def test_loads_through_registered_auto_classes(saved_model):
    model, tokenizer, path = saved_model
    expected = _logits(model, tokenizer)
    for loader in (AutoModelForMultiLabel, AutoModelForSequenceClassification, AutoModel):
        loaded = loader.from_pretrained(path)
        assert type(loaded) is MultiLabelModel, loader
        assert torch.equal(_logits(loaded, AutoTokenizer.from_pretrained(path)), expected), loader
    assert AutoModelForMultiLabel.from_pretrained(path).config.thresholds == [0.3, 0.5, 0.7]


REMOTE_CODE = textwrap.dedent(
    """
    import sys
    sys.modules["mlclf_hub"] = None  # the package is not importable in this process
    try:
        import mlclf_hub  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("mlclf_hub was importable")
    import numpy as np, torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    path, out = sys.argv[1], sys.argv[2]
    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        logits = model(**tok(sys.argv[3:], padding=True, return_tensors="pt")).logits
    np.save(out, logits.numpy())
    print(type(model).__name__, model.config.thresholds)
    """
)


def remote_code_logits(path, tmp_path) -> tuple[np.ndarray, str]:
    """Logits of `TEXTS` from `path` loaded with `trust_remote_code` in a process without mlclf_hub, and its stdout."""
    out = tmp_path / "logits.npy"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    printed = run_python(REMOTE_CODE, str(path), str(out), *TEXTS, cwd=tmp_path, env=env)
    return np.load(out), printed


def test_loads_with_remote_code_without_the_package(saved_model, tmp_path):
    model, tokenizer, path = saved_model
    logits, printed = remote_code_logits(path, tmp_path)
    assert "MultiLabelModel [0.3, 0.5, 0.7]" in printed
    assert np.array_equal(logits, _logits(model, tokenizer).numpy())


def test_plain_encoder_needs_labels(tmp_path):
    encoder = AutoModel.from_config(tiny_model().config.backbone_config)
    encoder.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"needs a label set: pass `labels=\[\.\.\.\]`"):
        AutoModelForMultiLabel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"`num_labels=3` contradicts `labels` \(2 names\)"):
        AutoModelForMultiLabel.from_pretrained(tmp_path, labels=["a", "b"], num_labels=3)
    with pytest.raises(TypeError, match="`labels` must be a list of label names, got str"):
        AutoModelForMultiLabel.from_pretrained(tmp_path, labels="a,b")
    model = AutoModelForMultiLabel.from_pretrained(tmp_path, num_labels=4)
    assert model.config.labels == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    assert model.config.pooling == "cls"  # not a sentence-transformers checkpoint


def test_trained_model_refuses_contradicting_labels(saved_model):
    _, _, path = saved_model
    with pytest.raises(ValueError, match=r"is a trained model with labels \['sports', 'politics', 'tech'\]"):
        AutoModelForMultiLabel.from_pretrained(path, labels=["x", "y", "z"])
    with pytest.raises(ValueError, match="was trained with pooling='mean'; got pooling='cls'"):
        AutoModelForMultiLabel.from_pretrained(path, pooling="cls")


def test_from_config_and_auto_config():
    config = AutoConfig.for_model(
        "multilabel", backbone_config=tiny_model().config.backbone_config, id2label={0: "x"}
    )
    assert isinstance(config, MultiLabelConfig)
    assert isinstance(AutoModelForMultiLabel.from_config(config), MultiLabelModel)
    with pytest.raises(TypeError, match="from_config expects a MultiLabelConfig"):
        AutoModelForMultiLabel.from_config(config.backbone_config)


@pytest.mark.slow
def test_minilm_encoder_weights_load_unchanged_and_only_head_is_new(minilm_dir, caplog):
    labels = ["devel::library", "role::program", "implemented-in::c"]
    model = AutoModelForMultiLabel.from_pretrained(minilm_dir, labels=labels)
    assert model.config.pooling == "mean"  # sentence-transformers checkpoint
    assert model.config.labels == labels
    checkpoint = safe_open(os.path.join(minilm_dir, "model.safetensors"), "pt")
    own = dict(model.backbone.named_parameters())
    compared = 0
    for name in checkpoint.keys():  # noqa: SIM118  (safe_open is not a dict)
        if name in own:
            assert torch.equal(own[name], checkpoint.get_tensor(name)), name
            compared += 1
    assert compared == len(own)  # every backbone parameter comes from the checkpoint
    assert model.classifier.weight.shape == (3, 384)
    assert model.classifier.weight.abs().max() < 0.2  # freshly initialised, small
