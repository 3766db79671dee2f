"""The nearest-neighbour memory of `MultiLabelModel`: the vote, the logits, saving, and `train()`."""

import copy
import json
import logging

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, TrainerCallback

from mlclf_hub import AutoModelForMultiLabel, MultiLabelConfig, predict_proba, push_to_hub, tune_thresholds
from mlclf_hub.data import LabelSpace, to_dataset
from mlclf_hub.fitting import build_knn_memory
from mlclf_hub.metrics import multilabel_metrics
from mlclf_hub.modeling_multilabel import knn_label_logits
from mlclf_hub.thresholds import cross_fitted_metrics
from mlclf_hub.trainer import train
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.test_auto import _logits, remote_code_logits
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args, train_tiny


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


def test_no_memory_at_knn_weight_or_knn_max_rows_zero_and_a_capped_one_beyond_knn_max_rows(tmp_path):
    for off in ({"knn_weight": 0.0}, {"knn_max_rows": 0}):
        args = tiny_training_args(str(tmp_path / "a"), num_train_epochs=1, **off)
        result = train_tiny(keyword_rows(16, seed=1), keyword_rows(8, seed=2), args=args, save=False)
        assert result.model.config.knn_memory_size == 0, off
        assert result.model.knn_keys.shape[0] == 0, off
    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=1, knn_max_rows=10)
    result = train_tiny(keyword_rows(16, seed=1), keyword_rows(8, seed=2), args=args, save=False)
    assert result.model.config.knn_memory_size == 10
    with pytest.raises(ValueError, match="`knn_max_rows`, `knn_weight` and `knn_temperature` must be >= 0"):
        tiny_training_args(str(tmp_path / "c"), knn_weight=-1.0)
    # `knn_neighbors` means what it means in the config: neighbours looked up, at least one
    with pytest.raises(ValueError, match="`knn_neighbors` must be >= 1, got 0; knn_weight=0 turns the"):
        tiny_training_args(str(tmp_path / "c"), knn_neighbors=0)
    with pytest.raises(ValueError, match="`knn_neighbors` must be an int >= 1"):
        MultiLabelConfig(backbone_config=tiny_backbone_config("bert"), id2label={0: "a"}, knn_neighbors=0)


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


def test_the_search_over_chunks_of_keys_finds_the_same_neighbours_as_one_pass():
    rng = np.random.default_rng(3)
    keys = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(50, 8))), dim=-1)
    query = torch.tensor(rng.normal(size=(4, 8)))
    values = torch.tensor(rng.random((50, 3)) < 0.3)
    whole = knn_label_logits(query, keys, values, neighbors=7, temperature=5.0)
    for chunk_rows in (1, 6, 7, 49, 50):
        chunked = knn_label_logits(query, keys, values, neighbors=7, temperature=5.0, chunk_rows=chunk_rows)
        assert torch.allclose(chunked, whole, atol=1e-6), chunk_rows
    # float16 keys: the same search in float32 over the rounded keys
    rounded = knn_label_logits(query, keys.half(), values, 7, 5.0, chunk_rows=6)
    assert torch.allclose(rounded, knn_label_logits(query, keys.half().double(), values, 7, 5.0), atol=1e-6)


def test_float16_keys_take_half_the_bytes_and_score_within_a_tolerance_of_float32_keys():
    wide = tiny_model(pooling="mean", knn_neighbors=10, knn_temperature=20.0)
    vectors, labels = _memory(wide, rows=300)
    wide.set_knn_memory(vectors, labels, key_dtype="float32")
    half = copy.deepcopy(wide)
    half.set_knn_memory(vectors, labels)  # the default
    assert half.knn_keys.dtype == torch.float16 and half.config.knn_key_dtype == "float16"
    assert wide.knn_keys.dtype == torch.float32 and wide.config.knn_key_dtype == "float32"
    assert half.knn_keys.nbytes * 2 == wide.knn_keys.nbytes
    assert torch.equal(half.knn_values, wide.knn_values)
    ids = torch.tensor([[2, 7, 8, 3, 0], [2, 9, 10, 11, 3], [2, 5, 6, 3, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        head_only = copy.deepcopy(half).eval()
        head_only.clear_knn_memory()
        expected = wide(input_ids=ids, attention_mask=mask).logits
        got = half(input_ids=ids, attention_mask=mask).logits
        assert not torch.allclose(expected, head_only(input_ids=ids, attention_mask=mask).logits, atol=0.1)
    assert torch.allclose(got, expected, atol=1e-2), (got - expected).abs().max()
    with pytest.raises(ValueError, match="`key_dtype` must be one of"):
        half.set_knn_memory(vectors, labels, key_dtype="bfloat16")
    with pytest.raises(ValueError, match="`knn_key_dtype` must be one of"):
        MultiLabelConfig(backbone_config=tiny_backbone_config(), id2label={0: "a"}, knn_key_dtype="int8")


@pytest.fixture
def saved_with_memory(tmp_path):
    """A tiny model with a float16 memory (the default), saved with its tokenizer."""
    model = tiny_model("bert", labels=("sports", "politics", "tech"), pooling="mean", knn_neighbors=4)
    model.set_knn_memory(*_memory(model, rows=25))
    tokenizer = tiny_tokenizer()
    path = tmp_path / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer, path


def test_float16_keys_are_saved_as_float16_and_every_loader_gives_the_same_logits(
    saved_with_memory, tmp_path
):
    model, tokenizer, path = saved_with_memory
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert weights.get_slice("knn_keys").get_dtype() == "F16"
        assert weights.get_slice("knn_values").get_dtype() == "BOOL"
    assert json.loads((path / "config.json").read_text())["knn_key_dtype"] == "float16"
    expected = _logits(model, tokenizer)
    head_only = copy.deepcopy(model)
    head_only.clear_knn_memory()
    assert not torch.allclose(expected, _logits(head_only, tokenizer), atol=0.1)  # the memory counts
    for loader in (AutoModelForMultiLabel, AutoModelForSequenceClassification):
        loaded = loader.from_pretrained(path)
        assert loaded.knn_keys.dtype == torch.float16, loader
        assert torch.equal(loaded.knn_keys, model.knn_keys) and torch.equal(
            loaded.knn_values, model.knn_values
        )
        assert torch.equal(_logits(loaded, tokenizer), expected), loader
    assert np.array_equal(remote_code_logits(path, tmp_path)[0], expected.numpy())


def test_a_float16_memory_works_in_bfloat16_and_after_float(saved_with_memory, tmp_path):
    model, tokenizer, path = saved_with_memory
    expected = _logits(model, tokenizer)
    low = AutoModelForMultiLabel.from_pretrained(path, dtype=torch.bfloat16)
    assert low.classifier.weight.dtype == torch.bfloat16
    low_logits = _logits(low, tokenizer)
    assert low_logits.dtype == torch.bfloat16
    assert torch.allclose(low_logits.float(), expected, atol=0.1), (low_logits.float() - expected).abs().max()
    widened = AutoModelForMultiLabel.from_pretrained(path).float()
    assert widened.knn_keys.dtype == torch.float32
    assert torch.equal(_logits(widened, tokenizer), expected)
    widened.save_pretrained(tmp_path / "widened")  # float32 keys on disk, the config still says float16
    reloaded = AutoModelForMultiLabel.from_pretrained(tmp_path / "widened")
    assert reloaded.knn_keys.dtype == torch.float16 and torch.equal(reloaded.knn_keys, model.knn_keys)
    assert torch.equal(_logits(reloaded, tokenizer), expected)


def test_a_model_saved_with_float32_keys_before_the_dtype_field_loads_unchanged(tmp_path):
    model = tiny_model(pooling="mean", knn_neighbors=4)
    model.set_knn_memory(*_memory(model, rows=13), key_dtype="float32")
    tokenizer = tiny_tokenizer()
    path = tmp_path / "old"
    model.save_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    del config["knn_key_dtype"]  # as saved before the field existed (every memory was float32 then)
    (path / "config.json").write_text(json.dumps(config))
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert weights.get_slice("knn_keys").get_dtype() == "F32"
    loaded = AutoModelForMultiLabel.from_pretrained(path)
    assert loaded.config.knn_key_dtype == "float32" and loaded.knn_keys.dtype == torch.float32
    assert torch.equal(loaded.knn_keys, model.knn_keys)
    assert torch.equal(_logits(loaded, tokenizer), _logits(model, tokenizer))


def test_build_knn_memory_keeps_a_seeded_random_subset_beyond_max_rows_and_warns(tmp_path, caplog):
    tokenizer = tiny_tokenizer()
    rows = keyword_rows(30, seed=3)
    dataset = to_dataset(rows, tokenizer, LabelSpace(LABELS), max_length=32)
    collator = DataCollatorWithPadding(tokenizer)
    model = tiny_model(labels=LABELS, pooling="mean")
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.fitting"):
        build_knn_memory(model, dataset, collator, max_rows=12, seed=5)
    assert "keeps a random 12 of the 30 training rows (knn_max_rows=12;" in caplog.text
    assert model.config.knn_memory_size == 12 and model.knn_keys.dtype == torch.float16
    kept = dataset.shuffle(seed=5).select(range(12))
    assert np.array_equal(model.knn_values.numpy(), np.asarray(kept.with_format("numpy")["labels"][:]) > 0.5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mlclf_hub.fitting"):
        build_knn_memory(model, dataset, collator, max_rows=30, key_dtype="float32")
    assert "keeps a random" not in caplog.text
    assert model.config.knn_memory_size == 30 and model.knn_keys.dtype == torch.float32
    assert MultiLabelTrainingArguments(output_dir=str(tmp_path)).knn_max_rows == 20_000


@pytest.mark.hub
def test_publishing_without_the_memory_as_the_readme_shows(hub_server, tmp_path):
    eval_rows = keyword_rows(40, seed=2)
    args = tiny_training_args(str(tmp_path / "m"), num_train_epochs=2)
    result = train_tiny(keyword_rows(40, seed=1), eval_rows, args=args, save=False)
    model, tokenizer = result.model, result.tokenizer
    assert model.config.knn_memory_size == 40
    # README, "Publishing without the memory"
    model.clear_knn_memory()
    space = LabelSpace.from_config(model.config)
    texts = [text for text, _ in eval_rows]
    y_true = np.array([space.encode(labels) for _, labels in eval_rows])
    probs = predict_proba(model, tokenizer, texts, max_length=args.max_length)
    tuned = tune_thresholds(y_true, probs, label_names=space.names, min_positives=5)
    model.config.thresholds = tuned.thresholds
    metrics = multilabel_metrics(
        y_true, probs, thresholds=tuned.thresholds, label_names=space.names, per_label=True
    )
    result.card_data.set_eval_metrics(metrics, thresholds=tuned.thresholds, tuned=True)
    heldout = cross_fitted_metrics(y_true, probs, label_names=space.names, per_label=True, min_positives=5)
    result.card_data.set_heldout_metrics(heldout)
    push_to_hub(
        model, "ns/no-memory", tokenizer=tokenizer, card_data=result.card_data, endpoint=hub_server.endpoint
    )

    files = hub_server.files("ns/no-memory")
    weights = load_safetensors(files["model.safetensors"])
    assert not [name for name in weights if name.startswith("knn_")]
    assert "lexical_coef" in weights  # the lexical channel stays
    config = json.loads(files["config.json"])
    assert config.get("knn_memory_size", 0) == 0 and config["thresholds"] == tuned.thresholds
    card = files["README.md"].decode()
    assert "**Nearest-neighbour memory:** none" in card
    assert f"{metrics['f1_micro']:.4f}" in card and f"{heldout['f1_micro']:.4f}" in card
