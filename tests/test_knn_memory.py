"""The nearest-neighbour memory of `MultiLabelModel`: the vote, the logits, saving, and `train()`."""

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from mlclf_hub import AutoModelForMultiLabel, MultiLabelConfig
from mlclf_hub.modeling_multilabel import knn_label_logits
from mlclf_hub.trainer import train
from tests.tiny_models import tiny_backbone_config, tiny_model
from tests.train_script import keyword_rows, tiny_training_args, train_tiny


def _reference_logits(query, keys, values, k, temperature):
    """The same vote written out with numpy, row by row."""
    out = []
    for q in query:
        sims = np.array([q @ key / (np.linalg.norm(q) * np.linalg.norm(key)) for key in keys])
        nearest = np.argsort(-sims)[:k]
        w = np.exp(temperature * sims[nearest])
        votes = (w[:, None] * values[nearest]).sum(0) / w.sum()
        out.append(np.log((votes + 1e-3) / (1 - votes + 1e-3)))
    return np.array(out)


def test_knn_vote_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    keys, query = rng.normal(size=(50, 8)), rng.normal(size=(4, 8))
    values = (rng.random((50, 3)) < 0.3).astype(np.float64)
    unit_keys = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    ours = knn_label_logits(
        torch.tensor(query), torch.tensor(unit_keys), torch.tensor(values), neighbors=7, temperature=5.0
    )
    assert np.allclose(ours.numpy(), _reference_logits(query, keys, values, 7, 5.0), atol=1e-4)
    # more neighbours than rows: every row votes
    everyone = knn_label_logits(torch.tensor(query), torch.tensor(unit_keys), torch.tensor(values), 500, 5.0)
    assert np.allclose(everyone.numpy(), _reference_logits(query, keys, values, 50, 5.0), atol=1e-4)


def _memory(model, rows=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(rows, model.classifier.in_features, generator=generator)
    labels = (torch.rand(rows, model.config.num_labels, generator=generator) < 0.4).float()
    return vectors, labels


def test_memory_adds_weighted_neighbour_log_odds_outside_training_only():
    model = tiny_model(pooling="mean", knn_neighbors=5, knn_weight=0.7, knn_temperature=3.0)
    ids = torch.tensor([[2, 7, 8, 3], [2, 9, 10, 3]])
    head_only = model(input_ids=ids).logits
    model.set_knn_memory(*_memory(model))
    assert model.config.knn_memory_size == 20
    with torch.no_grad():
        pooled = model.pooled_output(input_ids=ids)
        expected = head_only + 0.7 * knn_label_logits(pooled, model.knn_keys, model.knn_values, 5, 3.0)
    assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
    assert not torch.allclose(expected, head_only)
    model.config.knn_weight = 0.0
    assert torch.allclose(model(input_ids=ids).logits, head_only)
    model.config.knn_weight = 0.7
    model.train()  # training: the head alone (same dropout masks from the same seed)
    torch.manual_seed(1)
    training_logits = model(input_ids=ids).logits
    torch.manual_seed(1)
    head = model.classifier(model.dropout(model.pooled_output(input_ids=ids)))
    assert torch.allclose(training_logits, head)
    model.eval().clear_knn_memory()
    assert model.config.knn_memory_size == 0
    assert torch.allclose(model(input_ids=ids).logits, head_only)


def test_memory_is_saved_and_loaded_with_the_weights(tmp_path):
    model = tiny_model(pooling="mean")
    model.set_knn_memory(*_memory(model, rows=13))
    ids = torch.tensor([[2, 7, 8, 3]])
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModelForMultiLabel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.knn_memory_size == 13
    assert torch.equal(loaded.knn_keys, model.knn_keys) and torch.equal(loaded.knn_values, model.knn_values)
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    plain = tiny_model(pooling="mean")
    plain.save_pretrained(tmp_path / "plain")
    assert "knn_keys" not in AutoModelForMultiLabel.from_pretrained(tmp_path / "plain").state_dict()


def test_bad_memory_and_settings_are_refused():
    model = tiny_model()
    vectors, labels = _memory(model)
    with pytest.raises(ValueError, match="knn memory needs vectors"):
        model.set_knn_memory(vectors[:, :3], labels)
    with pytest.raises(ValueError, match="knn memory needs vectors"):
        model.set_knn_memory(vectors, labels[:5])
    for field, value in (
        ("knn_neighbors", 0),
        ("knn_memory_size", -1),
        ("knn_weight", -0.1),
        ("knn_temperature", "2"),
    ):
        with pytest.raises(ValueError, match=f"`{field}` must be"):
            MultiLabelConfig(
                backbone_config=tiny_backbone_config("bert"), id2label={0: "a"}, **{field: value}
            )


def test_train_stores_the_training_rows_and_evaluates_without_a_stale_memory(tmp_path):
    seen_during_training = []

    class MemoryAtEvaluation(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            seen_during_training.append(model.config.knn_memory_size)

    rows, eval_rows = keyword_rows(40, seed=1), keyword_rows(24, seed=2)
    args = tiny_training_args(str(tmp_path / "a"), num_train_epochs=2, eval_strategy="epoch", knn_weight=0.3)
    first = train_tiny(rows, eval_rows, args=args, save=False, callbacks=[MemoryAtEvaluation()])
    assert first.model.config.knn_memory_size == 40
    assert first.model.config.knn_weight == 0.3
    assert seen_during_training == [0, 0]
    # the memory holds the training rows' labels, in row order
    expected = np.array([[label in labels for label in first.label_space.names] for _, labels in rows])
    assert np.array_equal(first.model.knn_values.numpy(), expected)
    # training again clears the old memory first, and ends with one of the new rows
    again = tiny_training_args(
        str(tmp_path / "b"), num_train_epochs=1, eval_strategy="epoch", head_init="keep"
    )
    seen_during_training.clear()
    second = train(
        first.model,
        rows[:16],
        eval_rows,
        labels=first.label_space,
        args=again,
        tokenizer=first.tokenizer,
        save=False,
        callbacks=[MemoryAtEvaluation()],
    )
    assert seen_during_training == [0]
    assert second.model.config.knn_memory_size == 16


def test_no_memory_when_knn_neighbors_is_zero_and_a_capped_one_beyond_knn_max_rows(tmp_path):
    args = tiny_training_args(str(tmp_path / "a"), num_train_epochs=1, knn_neighbors=0)
    result = train_tiny(keyword_rows(16, seed=1), keyword_rows(8, seed=2), args=args, save=False)
    assert result.model.config.knn_memory_size == 0
    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=1, knn_max_rows=10)
    result = train_tiny(keyword_rows(16, seed=1), keyword_rows(8, seed=2), args=args, save=False)
    assert result.model.config.knn_memory_size == 10
    with pytest.raises(ValueError, match="`knn_neighbors`, `knn_max_rows`, `knn_weight` and"):
        tiny_training_args(str(tmp_path / "c"), knn_weight=-1.0)


def test_encoding_for_the_probe_the_memory_and_the_lexical_fit_shows_progress_unless_disabled(
    tmp_path, capsys
):
    rows = keyword_rows(16, seed=1)
    train_tiny(
        rows, args=tiny_training_args(str(tmp_path / "a"), num_train_epochs=1, disable_tqdm=False), save=False
    )
    shown = capsys.readouterr().err
    bars = ("Encoding for the linear probe:", "Encoding the memory:", "Fitting the lexical channel:")
    for bar in bars:  # a tqdm bar reads "label: nn%|..."; log lines say "Fitting the ... on N rows"
        assert bar in shown, bar
    train_tiny(rows, args=tiny_training_args(str(tmp_path / "b"), num_train_epochs=1), save=False)
    shown = capsys.readouterr().err
    assert not [bar for bar in bars if bar in shown]
