import json
import re

import pytest
from transformers import AutoConfig

import mlclf_hub  # noqa: F401  (registers the Auto classes)
from mlclf_hub import MultiLabelConfig
from tests.tiny_models import tiny_backbone_config


def make_config(**kwargs) -> MultiLabelConfig:
    kwargs.setdefault("id2label", {0: "a", 1: "b", 2: "c"})
    return MultiLabelConfig(backbone_config=tiny_backbone_config("bert"), **kwargs)


def test_defaults_and_derived_fields():
    config = make_config()
    assert config.num_labels == 3
    assert config.labels == ["a", "b", "c"]
    assert config.label2id == {"a": 0, "b": 1, "c": 2}
    assert config.thresholds == [0.5, 0.5, 0.5]
    assert config.problem_type == "multi_label_classification"
    assert config.pooling == "cls"


def test_round_trip_through_json(tmp_path):
    config = make_config(
        thresholds=[0.2, 0.5, 1.0], pooling="mean", pos_weight=[1.0, 2.0, 3.0], focal_gamma=2.0
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "multilabel"
    assert saved["backbone_config"]["model_type"] == "bert"
    assert saved["backbone_config"]["hidden_size"] == 32
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MultiLabelConfig)
    assert loaded.id2label == {0: "a", 1: "b", 2: "c"}
    assert loaded.thresholds == [0.2, 0.5, 1.0]
    assert loaded.pos_weight == [1.0, 2.0, 3.0]
    assert (loaded.pooling, loaded.focal_gamma) == ("mean", 2.0)
    assert loaded.backbone_config.hidden_size == 32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": [0.5, 0.5]}, "`thresholds` needs one value per label (3), got 2."),
        ({"thresholds": [0.5, 1.5, 0.5]}, "`thresholds[1]` (label 'b') must be in [0, 1], got 1.5."),
        ({"thresholds": [-0.1, 0.5, 0.5]}, "`thresholds[0]` (label 'a') must be in [0, 1], got -0.1."),
        ({"thresholds": [float("nan"), 0.5, 0.5]}, "`thresholds[0]` (label 'a') must be in [0, 1], got nan."),
        ({"id2label": {0: "a", 1: "a"}}, "label names must be unique, 'a' appears twice."),
        ({"pooling": "avg"}, "`pooling` must be one of ('cls', 'mean', 'max'), got 'avg'."),
        ({"pos_weight": [1.0]}, "`pos_weight` needs one value per label (3), got 1."),
        ({"pos_weight": [1.0, 0.0, 1.0]}, "`pos_weight` values must be > 0, got 0.0."),
        ({"focal_gamma": -1.0}, "`focal_gamma` must be >= 0, got -1.0."),
        ({"classifier_dropout": 1.0}, "`classifier_dropout` must be in [0, 1), got 1.0."),
        (
            {"problem_type": "single_label_classification"},
            "`problem_type` must be 'multi_label_classification'",
        ),
    ],
)
def test_invalid_fields_name_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_config(**kwargs)


def test_threshold_edges_are_allowed():
    assert make_config(thresholds=[0.0, 1.0, 0.5]).thresholds == [0.0, 1.0, 0.5]
