"""Tiny random backbone configs (hidden 32, 2 layers) for fast tests of every encoder family."""

from __future__ import annotations

import torch
from transformers import (
    BertConfig,
    BertTokenizerFast,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    ModernBertConfig,
    PreTrainedConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from mlclf_hub import MultiLabelConfig, MultiLabelModel

VOCAB_SIZE = 99
COMMON = {"vocab_size": VOCAB_SIZE, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def tiny_backbone_config(family: str = "bert") -> PreTrainedConfig:
    """A 2-layer, 32-wide config of the given encoder family."""
    if family == "bert":
        return BertConfig(hidden_size=32, max_position_embeddings=64, **COMMON)
    if family == "roberta":
        return RobertaConfig(hidden_size=32, max_position_embeddings=70, pad_token_id=1, **COMMON)
    if family == "xlm-roberta":
        return XLMRobertaConfig(hidden_size=32, max_position_embeddings=70, pad_token_id=1, **COMMON)
    if family == "distilbert":
        return DistilBertConfig(vocab_size=VOCAB_SIZE, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    if family == "electra":
        return ElectraConfig(hidden_size=32, embedding_size=16, max_position_embeddings=64, **COMMON)
    if family == "deberta-v2":
        return DebertaV2Config(hidden_size=32, max_position_embeddings=64, **COMMON)
    if family == "modernbert":
        return ModernBertConfig(
            hidden_size=32,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
            **COMMON,
        )
    raise ValueError(f"unknown family {family!r}")


FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "modernbert")


def tiny_model(
    family: str = "bert", labels=("sports", "politics", "tech"), **config_kwargs
) -> MultiLabelModel:
    """A randomly initialised `MultiLabelModel` on a tiny backbone, in eval mode."""
    config = MultiLabelConfig(
        backbone_config=tiny_backbone_config(family), id2label=dict(enumerate(labels)), **config_kwargs
    )
    return MultiLabelModel(config).eval()


WORDS = ["the", "a", "game", "team", "won", "vote", "party", "law", "code", "chip", "phone", "new", "old"]


def tiny_tokenizer() -> BertTokenizerFast:
    """A lowercasing WordPiece tokenizer over a small vocabulary (no files, no hub).

    In transformers 5 the vocabulary goes in as `vocab=`: a `vocab_file=` argument is ignored and
    every word becomes `[UNK]`.
    """
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizerFast(vocab={word: idx for idx, word in enumerate(vocab)}, do_lower_case=True)


def keyword_model(
    keywords=("game", "vote", "chip"), labels=("sports", "politics", "tech"), logit: float = 2.0
) -> MultiLabelModel:
    """A tiny BERT `MultiLabelModel` whose logits are a known function of the tokens, not of random weights.

    Label `j`'s logit is `+logit` when `keywords[j]` is among the text's tokens and `-logit` otherwise,
    wherever the word stands (max pooling; position and token-type embeddings are zero, and every
    encoder layer adds zero to its residual stream). For window and truncation tests whose outcome must
    not depend on a seed.

    Example:
        >>> predict_proba(keyword_model(), tiny_tokenizer(), ["the vote"]).round(3)  # doctest: +SKIP
        array([[0.119, 0.881, 0.119]])
    """
    model = tiny_model("bert", labels=labels, pooling="max")
    vocab = tiny_tokenizer().get_vocab()
    backbone = model.backbone
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if name.endswith("LayerNorm.weight"):
                param.fill_(1.0)
            elif name.endswith("LayerNorm.bias") or ".output.dense." in name:
                param.zero_()  # attention and feed-forward add 0: each layer returns its input
        embeddings = backbone.embeddings
        for table in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        ):
            table.weight.zero_()
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-logit)
        for j, word in enumerate(keywords):
            # LayerNorm turns (1, -1, 0, ...) over 32 dimensions into (4, -4, 0, ...); any other token is 0
            embeddings.word_embeddings.weight[vocab[word], 2 * j] = 1.0
            embeddings.word_embeddings.weight[vocab[word], 2 * j + 1] = -1.0
            model.classifier.weight[j, 2 * j] = logit / 2  # max pooling: 4 when the keyword occurs, else 0
    return model
