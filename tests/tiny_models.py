"""Tiny random backbone configs (hidden 32, 2 layers) for fast tests of every encoder family."""

from __future__ import annotations

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
