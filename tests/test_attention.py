"""`attention_dropout`: the dropout on attention probabilities while `train()` fine-tunes, and nothing after."""

import json
import logging

import pytest
import torch
from transformers import TrainerCallback

from mlclf_hub.attention import attention_dropout
from tests.test_trainer import tiny_args
from tests.tiny_models import FAMILIES, tiny_model
from tests.train_script import keyword_rows, train_tiny


def _inputs(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 18, (4, 12), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _two_training_passes(model) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = _inputs()
    with torch.no_grad():
        return model(**inputs).logits, model(**inputs).logits


def _without_dropout(model):
    """`model` with every `nn.Dropout` at p=0 (the attention wrapper's dropout is then the only one)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _model_dropping_attention_only(p: float):
    """A tiny BERT model in training mode whose only dropout is `p` on the attention probabilities."""
    model = _without_dropout(tiny_model().train())
    for name, module in model.named_modules():
        if name.endswith("attention.self.dropout") and isinstance(module, torch.nn.Dropout):
            module.p = p
    return model


class _ImplementationRecorder(TrainerCallback):
    """The backbone's attention implementation at the start of every training step."""

    def __init__(self):
        self.seen = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.seen.append(model.backbone.config._attn_implementation)


def test_zero_turns_off_the_configs_attention_dropout_and_the_config_comes_back():
    torch.manual_seed(0)
    model = _model_dropping_attention_only(0.5)
    first, second = _two_training_passes(model)
    assert not torch.allclose(first, second)  # the config's dropout draws a new mask each pass
    with attention_dropout(model, 0.0) as applied:
        assert applied
        first, second = _two_training_passes(model)
        assert torch.equal(first, second)
        model.eval()
        with torch.no_grad():
            at_eval = model(**_inputs()).logits
        assert torch.allclose(at_eval, first, atol=1e-6)  # no dropout at all is what eval mode computes
        model.train()
    assert model.backbone.config._attn_implementation == "sdpa"
    first, second = _two_training_passes(model)
    assert not torch.allclose(first, second)


def test_a_value_above_zero_drops_where_the_config_does_not_and_only_in_training_mode():
    torch.manual_seed(0)
    model = _model_dropping_attention_only(0.0)
    with attention_dropout(model, 0.5):
        first, second = _two_training_passes(model)
        assert not torch.allclose(first, second)
        model.eval()
        assert torch.equal(*_two_training_passes(model))


def test_none_changes_nothing_and_eager_attention_is_left_as_it_is(caplog):
    model = _model_dropping_attention_only(0.5)
    with attention_dropout(model, None) as applied:
        assert not applied and model.backbone.config._attn_implementation == "sdpa"
    model.backbone.set_attn_implementation("eager")
    with (
        caplog.at_level(logging.INFO, logger="mlclf_hub.attention"),
        attention_dropout(model, 0.0) as applied,
    ):
        assert not applied
        assert not torch.allclose(*_two_training_passes(model))
    assert "does not apply" in caplog.text and "eager" in caplog.text


def test_the_implementation_comes_back_when_training_fails():
    model = tiny_model()
    with pytest.raises(RuntimeError, match="boom"), attention_dropout(model, 0.0):
        raise RuntimeError("boom")
    assert model.backbone.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_tiny_family_either_drops_attention_with_it_or_says_it_does_not(family):
    torch.manual_seed(0)
    model = _without_dropout(tiny_model(family).train())
    with attention_dropout(model, 0.5) as applied:
        first, second = _two_training_passes(model)
        assert torch.allclose(first, second) is not applied
    assert not model.backbone.config._attn_implementation.startswith("mlclf_hub_")


def test_train_uses_it_while_training_and_saves_the_encoders_config(tmp_path):
    recorder = _ImplementationRecorder()
    assert tiny_model().config.backbone_config.attention_probs_dropout_prob == 0.1
    result = train_tiny(
        keyword_rows(16, 1),
        args=tiny_args(tmp_path, num_train_epochs=1),
        callbacks=[recorder],
    )
    assert recorder.seen and set(recorder.seen) == {"mlclf_hub_sdpa_attention_dropout_0"}
    assert result.model.backbone.config._attn_implementation == "sdpa"
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["backbone_config"]["attention_probs_dropout_prob"] == 0.1
    assert "attention_dropout_0" not in (tmp_path / "out" / "config.json").read_text()


def test_train_with_none_keeps_the_configs_attention_dropout(tmp_path):
    recorder = _ImplementationRecorder()
    train_tiny(
        keyword_rows(16, 1),
        args=tiny_args(tmp_path, num_train_epochs=1, attention_dropout=None),
        callbacks=[recorder],
        save=False,
    )
    assert recorder.seen and set(recorder.seen) == {"sdpa"}


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), True])
def test_bad_values_are_refused_when_the_arguments_are_made(tmp_path, value):
    with pytest.raises(ValueError, match="attention_dropout"):
        tiny_args(tmp_path, attention_dropout=value)


def test_the_command_line_takes_a_value(tmp_path):
    from transformers import HfArgumentParser

    from mlclf_hub import MultiLabelTrainingArguments

    parser = HfArgumentParser((MultiLabelTrainingArguments,))
    out = ["--output_dir", str(tmp_path / "o")]
    assert parser.parse_args_into_dataclasses(args=out)[0].attention_dropout == 0.0
    assert (
        parser.parse_args_into_dataclasses(args=[*out, "--attention_dropout", "0.1"])[0].attention_dropout
        == 0.1
    )
