"""`fitting.py` and the one batched forward pass it shares with prediction (`inference.batched_forward`)."""

import functools

import pytest
import torch
from transformers import DataCollatorWithPadding

from mlclf_hub.data import LabelSpace, to_dataset
from mlclf_hub.fitting import fit_after_training, label_matrix, pooled_features
from mlclf_hub.inference import batched_forward
from tests.tiny_models import tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args


def _rows_of_many_lengths():
    # keyword_rows differ in length, so the longest-first batches hold rows out of input order
    return keyword_rows(11, seed=4)


def test_batched_forward_returns_each_row_as_its_own_forward_pass_in_input_order():
    model = tiny_model(labels=LABELS, pooling="mean", classifier_dropout=0.5).train()
    tokenizer = tiny_tokenizer()
    features = [dict(tokenizer(text)) for text, _ in _rows_of_many_lengths()]
    assert len({len(f["input_ids"]) for f in features}) > 2
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    logits = batched_forward(model, features, pad, batch_size=3)
    pooled = batched_forward(model, features, pad, batch_size=4, output="pooled")
    assert model.training  # the pass ran in eval mode (no dropout) and left the mode as it was
    model.eval()
    with torch.no_grad():
        for i, row in enumerate(features):
            alone = pad([row])
            assert torch.allclose(logits[i], model(**alone).logits[0], atol=1e-5), i
            assert torch.allclose(pooled[i], model.pooled_output(**alone)[0], atol=1e-5), i
    assert logits.shape == (len(features), len(LABELS)) and logits.dtype == torch.float32
    with pytest.raises(ValueError, match="`output` must be 'logits' or 'pooled'"):
        batched_forward(model, features, pad, output="hidden")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        batched_forward(model, features, pad, batch_size=0)


def test_pooled_features_of_a_dataset_are_the_batched_pass_over_its_token_columns():
    model = tiny_model(labels=LABELS, pooling="mean")
    tokenizer = tiny_tokenizer()
    rows = _rows_of_many_lengths()
    dataset = to_dataset(rows, tokenizer, LabelSpace(LABELS), max_length=32)
    features = pooled_features(model, dataset, DataCollatorWithPadding(tokenizer), batch_size=2)
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    expected = batched_forward(model, [dict(tokenizer(text)) for text, _ in rows], pad, 5, output="pooled")
    assert torch.allclose(features, expected, atol=1e-5)
    assert label_matrix(dataset).tolist() == [
        [float(name in labels) for name in LABELS] for _, labels in rows
    ]


def test_fit_after_training_takes_its_settings_from_the_arguments(tmp_path):
    tokenizer = tiny_tokenizer()
    dataset = to_dataset(keyword_rows(20, seed=1), tokenizer, LabelSpace(LABELS), max_length=32)
    collator = DataCollatorWithPadding(tokenizer)
    settings = {"knn_neighbors": 7, "knn_weight": 0.2, "knn_temperature": 3.0, "knn_max_rows": 12}
    args = tiny_training_args(str(tmp_path), lexical_weight=0.3, lexical_c=5.0, **settings)
    model = tiny_model(labels=LABELS, pooling="mean")
    fit_after_training(model, dataset, collator, tokenizer, args)
    config = model.config
    assert (config.knn_neighbors, config.knn_weight, config.knn_temperature) == (7, 0.2, 3.0)
    assert config.knn_memory_size == 12 and config.lexical_weight == 0.3 and config.lexical_vocab_size > 0
    special = set(tokenizer.all_special_ids)
    assert not special & set(model.lexical_vocab.tolist())
    # a weight of 0 fits nothing: no memory, no lexical channel
    bare = tiny_model(labels=LABELS, pooling="mean")
    off = tiny_training_args(str(tmp_path), lexical_weight=0.0, knn_weight=0.0)
    fit_after_training(bare, dataset, collator, tokenizer, off)
    assert bare.config.knn_memory_size == 0 and bare.config.lexical_vocab_size == 0


@pytest.mark.parametrize(
    ("setting", "bf16", "native", "expected"),
    [
        (True, False, False, True),
        (False, True, True, False),
        (None, True, False, True),
        (None, False, True, True),
        (None, False, False, False),
    ],
)
def test_bf16_fitting_passes_follow_the_setting_then_bf16_then_the_hardware(
    monkeypatch, tmp_path, setting, bf16, native, expected
):
    import mlclf_hub.fitting as fitting

    monkeypatch.setattr(fitting, "native_bf16", lambda device: native)
    args = tiny_training_args(str(tmp_path), bf16_fitting_passes=setting)
    args.bf16 = bf16  # set after __post_init__, which refuses bf16 on hardware without it
    assert fitting.bf16_fitting_passes(args, torch.device("cpu")) is expected
    # on an accelerator only the setting or bf16 turn it on, not the hardware
    assert fitting.bf16_fitting_passes(args, torch.device("cuda", 0)) is (
        setting if setting is not None else bf16
    )


@pytest.mark.parametrize("setting", [True, False])
def test_train_runs_the_probe_and_memory_passes_in_bf16_and_the_validation_pass_as_the_model_is(
    monkeypatch, tmp_path, setting
):
    import mlclf_hub.fitting as fitting
    from tests.train_script import train_tiny

    calls = []
    original = fitting.batched_forward

    def spy(model, features, pad, batch_size=64, *, output="logits", progress=None, bf16=False):
        calls.append((output, len(features), bf16))
        return original(model, features, pad, batch_size, output=output, progress=progress, bf16=bf16)

    monkeypatch.setattr(fitting, "batched_forward", spy)
    args = tiny_training_args(str(tmp_path), num_train_epochs=1, bf16_fitting_passes=setting)
    result = train_tiny(keyword_rows(24, 1), keyword_rows(20, 2), args=args, save=False)
    # the probe (24 training rows), the memory (24), the validation rows' logits (20)
    assert calls == [("pooled", 24, setting), ("pooled", 24, setting), ("logits", 20, False)]
    assert result.model.config.knn_memory_size == 24
