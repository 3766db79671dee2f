"""The lexical channel of `MultiLabelModel`: TF-IDF bags, the sparse fit, the logits, saving, and `train()`."""

import copy

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from transformers import TrainerCallback

from mlclf_hub import AutoModelForMultiLabel, MultiLabelConfig
from mlclf_hub.fitting import fit_linear_probe, lexical_bags, lexical_vocabulary
from mlclf_hub.modeling_multilabel import lexical_features
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import keyword_rows, tiny_training_args, train_tiny


def _token_rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(5, 30, size=rng.integers(1, 12)).tolist() for _ in range(n)]


def test_bags_match_scikit_learn_tfidf_over_token_ids():
    rows = [*_token_rows(), [101, 102]]  # the last row holds special tokens only
    vocab, idf = lexical_vocabulary(rows, special_ids=[101, 102])
    assert 101 not in vocab.tolist() and 102 not in vocab.tolist()
    reference = TfidfVectorizer(
        analyzer=lambda ids: [t for t in ids if t not in (101, 102)], sublinear_tf=True
    )
    expected = reference.fit_transform(rows).toarray()
    assert vocab.tolist() == sorted(reference.vocabulary_)  # one column per token, in id order
    assert np.allclose(idf.numpy(), reference.idf_, atol=1e-6)
    assert np.allclose(lexical_bags(rows, vocab, idf, batch_size=7).to_dense().numpy(), expected)
    # padding and tokens outside the vocabulary never count
    ids = torch.tensor([[rows[0][0], 999, rows[0][0], 5]])
    bag = lexical_features(ids, torch.tensor([[1, 1, 1, 0]]), vocab, idf)
    position = vocab.tolist().index(rows[0][0])
    assert bag[0, position] == pytest.approx(1.0) and bag.sum() == pytest.approx(1.0)


def test_sparse_fit_matches_scikit_learn_logistic_regression():
    rows = _token_rows(120, seed=1)
    vocab, idf = lexical_vocabulary(rows)
    bags = lexical_bags(rows, vocab, idf)
    # labels that hinge on single tokens, plus noise
    rng = np.random.default_rng(2)
    targets = np.array([[7 in r or rng.random() < 0.1, 12 in r and 13 in r] for r in rows], dtype=np.float32)
    weight, bias = fit_linear_probe(bags, torch.tensor(targets), c=5.0, max_iter=300, history_size=10)
    for label in range(2):
        reference = LogisticRegression(C=5.0, tol=1e-8, max_iter=5000).fit(
            bags.to_dense().numpy(), targets[:, label]
        )
        assert np.allclose(weight[label].numpy(), reference.coef_[0], atol=2e-3)
        assert bias[label].item() == pytest.approx(reference.intercept_[0], abs=2e-3)


def _lexical(model, tokens=(7, 8, 9, 10)):
    generator = torch.Generator().manual_seed(0)
    coef = torch.randn(len(tokens), model.config.num_labels, generator=generator)
    return torch.tensor(tokens[::-1]), torch.linspace(1.0, 2.0, len(tokens)).flip(0), coef.flip(0)


def test_lexical_channel_adds_weighted_scores_outside_training_only():
    model = tiny_model(pooling="mean", lexical_weight=0.8)
    ids, mask = torch.tensor([[2, 7, 8, 3], [2, 9, 9, 3]]), torch.ones(2, 4, dtype=torch.long)
    head_only = model(input_ids=ids, attention_mask=mask).logits
    vocab, idf, coef = _lexical(model)
    model.set_lexical_model(vocab, idf, coef)
    assert model.config.lexical_vocab_size == 4 and model.lexical_vocab.tolist() == [7, 8, 9, 10]
    expected = head_only + 0.8 * lexical_features(ids, mask, vocab.flip(0), idf.flip(0)) @ coef.flip(0)
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5)
    assert not torch.allclose(expected, head_only)
    model.config.lexical_weight = 0.0
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, head_only)
    model.config.lexical_weight = 0.8
    model.train()
    torch.manual_seed(1)
    training_logits = model(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(1)
    assert torch.allclose(
        training_logits, model.classifier(model.dropout(model.pooled_output(input_ids=ids)))
    )
    model.eval()
    low_precision = copy.deepcopy(model).to(torch.bfloat16)(input_ids=ids, attention_mask=mask).logits
    assert low_precision.dtype == torch.bfloat16  # the channel's float32 scores join bf16 logits
    assert torch.allclose(low_precision.float(), expected, atol=0.05)
    with pytest.raises(ValueError, match="lexical channel reads `input_ids`"):
        model(inputs_embeds=model.get_input_embeddings()(ids), attention_mask=mask)
    model.clear_lexical_model()
    assert model.config.lexical_vocab_size == 0
    assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, head_only)


def test_lexical_channel_is_saved_and_loaded_with_the_weights(tmp_path):
    model = tiny_model(pooling="mean")
    model.set_lexical_model(*_lexical(model))
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModelForMultiLabel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.lexical_vocab_size == 4
    for name in ("lexical_vocab", "lexical_idf", "lexical_coef"):
        assert torch.equal(getattr(loaded, name), getattr(model, name)), name
    ids = torch.tensor([[2, 7, 10, 10, 3]])
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    plain = tiny_model(pooling="mean")
    plain.save_pretrained(tmp_path / "plain")
    assert "lexical_coef" not in AutoModelForMultiLabel.from_pretrained(tmp_path / "plain").state_dict()


def test_bad_lexical_models_and_settings_are_refused(tmp_path):
    model = tiny_model()
    vocab, idf, coef = _lexical(model)
    for bad in ((vocab, idf[:2], coef), (vocab, idf, coef[:, :1]), (vocab[None], idf, coef)):
        with pytest.raises(ValueError, match="lexical model needs token ids"):
            model.set_lexical_model(*bad)
    with pytest.raises(ValueError, match="token ids must be unique"):
        model.set_lexical_model(torch.tensor([7, 7, 8, 9]), idf, coef)
    for field, value in (("lexical_vocab_size", -1), ("lexical_weight", -0.5)):
        with pytest.raises(ValueError, match=f"`{field}` must be"):
            MultiLabelConfig(
                backbone_config=tiny_backbone_config("bert"), id2label={0: "a"}, **{field: value}
            )
    with pytest.raises(ValueError, match="`lexical_weight` must be >= 0 and `lexical_c` > 0"):
        tiny_training_args(str(tmp_path), lexical_c=0.0)


def test_train_fits_the_lexical_channel_after_training_on_the_keywords(tmp_path):
    seen_during_training = []

    class LexicalAtEvaluation(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            seen_during_training.append(model.config.lexical_vocab_size)

    rows = keyword_rows(60, seed=1)
    args = tiny_training_args(
        str(tmp_path / "a"), num_train_epochs=2, eval_strategy="epoch", lexical_weight=0.7
    )
    result = train_tiny(
        rows, keyword_rows(24, seed=2), args=args, save=False, callbacks=[LexicalAtEvaluation()]
    )
    model = result.model
    assert seen_during_training == [0, 0]
    assert model.config.lexical_weight == 0.7
    tokenizer = tiny_tokenizer()
    seen = {t for text, _ in rows for t in tokenizer(text)["input_ids"]} - set(tokenizer.all_special_ids)
    assert set(model.lexical_vocab.tolist()) == seen
    # each topic's keywords weigh most for that topic
    coef = dict(zip(model.lexical_vocab.tolist(), model.lexical_coef))
    for column, word in enumerate(("team", "vote", "code")):
        assert int(coef[tokenizer.convert_tokens_to_ids(word)].argmax()) == column, word
    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=1, lexical_weight=0.0)
    assert train_tiny(rows, args=args, save=False).model.config.lexical_vocab_size == 0
