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
