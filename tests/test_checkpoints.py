"""Encoder checkpoints as users bring them: masked-LM, pre-training and classification layouts of every family.

`bert-base-uncased` is stored as `BertForPreTraining` (`bert.` prefix), `roberta-base` as `RobertaForMaskedLM`
(`roberta.`), ModernBERT as `ModernBertForMaskedLM` (`model.`)... Every encoder tensor of such a checkpoint must
land in the backbone unchanged; only the head (and the pooler, which masked-LM checkpoints lack) is new.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.auto import EncoderWeightsError, encoder_key_mapping
from mlclf_hub.simple import MultiLabelClassificationModel
from tests.tiny_models import FAMILIES, tiny_backbone_config, tiny_tokenizer

LABELS = ["sports", "politics", "tech"]
#: Families whose pre-training class differs from the masked-LM one (bert-base-uncased, ELECTRA discriminators).
PRETRAINING_FAMILIES = ("bert", "electra")


def _save_checkpoint(directory: str, auto_class, family: str, **config_kwargs) -> dict[str, torch.Tensor]:
    """Save a random tiny checkpoint of `auto_class` with a tokenizer; return its tensors as stored on disk."""
    torch.manual_seed(0)
    config = tiny_backbone_config(family)
    for key, value in config_kwargs.items():
        setattr(config, key, value)
    model = auto_class.from_config(config)
    model.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return load_file(os.path.join(directory, "model.safetensors"))


def _assert_backbone_is_checkpoint(
    backbone: torch.nn.Module, stored: dict[str, torch.Tensor], family: str
) -> None:
    """Every backbone tensor equals the checkpoint's (bare or under the family prefix); only a missing pooler is new."""
    prefix = type(AutoModel.from_config(tiny_backbone_config(family))).base_model_prefix
    bare = {key.removeprefix(f"{prefix}."): value for key, value in stored.items()}
    compared = 0
    for key, value in backbone.state_dict().items():
        if key not in bare:
            assert key.startswith("pooler.") and not any(k.startswith("pooler.") for k in bare), (
                f"{family}: backbone tensor {key} has no counterpart in the checkpoint"
            )
            continue
        assert torch.equal(value, bare[key]), f"{family}: backbone tensor {key} differs from the checkpoint's"
        compared += 1
    assert compared >= 10


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_lm_checkpoint_loads_every_encoder_tensor(family, tmp_path):
    stored = _save_checkpoint(str(tmp_path), AutoModelForMaskedLM, family)
    assert any(
        "." in key and not key.startswith(("embeddings.", "encoder.")) for key in stored
    )  # a prefix/head
    model = AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)
    _assert_backbone_is_checkpoint(model.backbone, stored, family)
    assert model.config.labels == LABELS


@pytest.mark.parametrize("family", PRETRAINING_FAMILIES)
def test_pretraining_checkpoint_loads_every_encoder_tensor(family, tmp_path):
    stored = _save_checkpoint(str(tmp_path), AutoModelForPreTraining, family)
    model = AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)
    _assert_backbone_is_checkpoint(model.backbone, stored, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_classification_checkpoint_with_another_label_count(family, tmp_path):
    """A `*ForSequenceClassification` with 5 labels: its head is dropped, the encoder kept, the new head has 3."""
    stored = _save_checkpoint(str(tmp_path), AutoModelForSequenceClassification, family, num_labels=5)
    model = AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)
    _assert_backbone_is_checkpoint(model.backbone, stored, family)
    assert model.classifier.weight.shape == (3, model.config.backbone_config.hidden_size)


@pytest.mark.parametrize("layout", ["masked-lm", "classification"])
@pytest.mark.parametrize("family", FAMILIES)
def test_facade_loads_every_encoder_tensor(family, layout, tmp_path):
    auto_class = AutoModelForMaskedLM if layout == "masked-lm" else AutoModelForSequenceClassification
    stored = _save_checkpoint(
        str(tmp_path), auto_class, family, **({"num_labels": 5} if layout != "masked-lm" else {})
    )
    facade = MultiLabelClassificationModel(
        "auto", str(tmp_path), num_labels=3, use_cuda=False, args={"silent": True}
    )
    _assert_backbone_is_checkpoint(facade.model.backbone, stored, family)
    assert facade.model.classifier.out_features == 3


def test_unmatched_checkpoint_raises_naming_keys_and_checkpoint(tmp_path):
    """Weights under a prefix no family uses: an error naming the checkpoint and the missing keys, no random encoder."""
    stored = _save_checkpoint(str(tmp_path), AutoModelForMaskedLM, "bert")
    save_file({f"wrapper.{key}": value for key, value in stored.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(EncoderWeightsError) as caught:
        AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "backbone.embeddings.word_embeddings.weight" in message


def test_partly_matched_checkpoint_raises(tmp_path):
    """One encoder tensor missing is enough for the error (a truncated or hand-edited checkpoint)."""
    stored = _save_checkpoint(str(tmp_path), AutoModel, "roberta")
    dropped = "encoder.layer.1.output.dense.weight"
    save_file({k: v for k, v in stored.items() if k != dropped}, str(tmp_path / "model.safetensors"))
    with pytest.raises(EncoderWeightsError, match=rf"backbone\.{dropped}"):
        AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)


def test_saved_multilabel_model_missing_weights_raises(tmp_path):
    model = AutoModelForMultiLabel.from_pretrained(
        _save_dir(tmp_path / "enc", AutoModelForMaskedLM, "bert"), labels=LABELS
    )
    model.save_pretrained(tmp_path / "trained")
    stored = load_file(str(tmp_path / "trained" / "model.safetensors"))
    save_file(
        {k: v for k, v in stored.items() if not k.startswith("classifier.")},
        str(tmp_path / "trained" / "model.safetensors"),
        metadata={"format": "pt"},
    )
    with pytest.raises(EncoderWeightsError, match=r"classifier\.weight"):
        AutoModelForMultiLabel.from_pretrained(str(tmp_path / "trained"))


def test_sentence_transformers_folder_loads_bare(tmp_path):
    """A sentence-transformers folder (bare `BertModel` plus modules.json): mean pooling, every tensor."""
    stored = _save_checkpoint(str(tmp_path), AutoModel, "bert")
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
    )
    model = AutoModelForMultiLabel.from_pretrained(str(tmp_path), labels=LABELS)
    _assert_backbone_is_checkpoint(model.backbone, stored, "bert")
    assert model.config.pooling == "mean"


def test_key_mapping_uses_the_family_prefix():
    assert encoder_key_mapping(tiny_backbone_config("modernbert"))[r"^model\."] == "backbone."
    assert encoder_key_mapping(tiny_backbone_config("deberta-v2"))[r"^deberta\."] == "backbone."


def _save_dir(path, auto_class, family) -> str:
    path.mkdir()
    _save_checkpoint(str(path), auto_class, family)
    return str(path)


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_model_from_prefixed_checkpoint_saves_and_reloads_in_its_own_layout(family, tmp_path):
    """transformers reverses load-time renamings on save; ours must not be reversed (`backbone.`, never `bert.`)."""
    model = AutoModelForMultiLabel.from_pretrained(
        _save_dir(tmp_path / "enc", AutoModelForMaskedLM, family), labels=LABELS
    )
    model.save_pretrained(tmp_path / "trained")
    keys = load_file(str(tmp_path / "trained" / "model.safetensors"))
    assert all(key.startswith(("backbone.", "classifier.")) for key in keys), sorted(keys)[:3]
    reloaded = AutoModelForMultiLabel.from_pretrained(str(tmp_path / "trained"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key
