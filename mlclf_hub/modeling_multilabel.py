"""A multi-label text classifier: any `AutoModel` encoder, pooling, dropout and one linear layer,
plus two optional parts fitted after fine-tuning: a nearest-neighbour memory of the training rows
and a lexical channel (logistic regression on a TF-IDF bag of the input tokens).

This file is uploaded to the Hub next to the weights (remote code), so it imports nothing but
`torch`, `transformers` and its own configuration file.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_multilabel import KNN_KEY_DTYPES, MultiLabelConfig


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Turn token states `(batch, seq, hidden)` into one vector per text `(batch, hidden)`.

    Padding (mask 0) never contributes to `"mean"` or `"max"`.

    Example:
        >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> pool_hidden_states(h, torch.tensor([[1, 1, 0]]), "mean")
        tensor([[2.]])
    """
    if mode == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise ValueError(f"pooling must be one of 'cls', 'mean', 'max', got {mode!r}.")


KNN_CHUNK_ROWS = 8192


def knn_label_logits(
    pooled: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    neighbors: int,
    temperature: float,
    chunk_rows: int = KNN_CHUNK_ROWS,
) -> torch.Tensor:
    """Label log-odds from the `neighbors` memory rows most cosine-similar to each pooled vector.

    Each neighbour votes with its multi-hot labels, weighted by `softmax(temperature * similarity)`;
    the vote `v` in [0, 1] becomes `log((v + 1e-3) / (1 - v + 1e-3))`. `keys` are unit vectors in any
    float dtype (float16 as `set_knn_memory` stores them); the similarities are computed in float32,
    `chunk_rows` keys at a time, so no float32 copy of the whole memory is made, on CPU or GPU.

    Example:
        >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> values = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> knn_label_logits(torch.tensor([[2.0, 0.1]]), keys, values, 1, 20.0).round(decimals=2)
        tensor([[ 6.9100, -6.9100]])
    """
    query = F.normalize(pooled.float(), dim=-1)
    k = min(neighbors, keys.shape[0])
    top = index = None
    for start in range(0, max(keys.shape[0], 1), chunk_rows):  # one empty chunk for an empty memory
        similarity = query @ keys[start : start + chunk_rows].float().T
        chunk_top, chunk_index = similarity.topk(min(k, similarity.shape[1]), dim=-1)
        if top is None:
            top, index = chunk_top, chunk_index
            continue
        candidates = torch.cat([top, chunk_top], dim=-1)
        top, pick = candidates.topk(min(k, candidates.shape[-1]), dim=-1)
        index = torch.cat([index, chunk_index + start], dim=-1).gather(-1, pick)
    weights = torch.softmax(temperature * top, dim=-1)
    votes = torch.einsum("bk,bkl->bl", weights, values[index].to(weights.dtype))
    return torch.log((votes + 1e-3) / (1 - votes + 1e-3))


def lexical_token_weights(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, vocab: torch.Tensor, idf: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's column in `vocab` and its share of the text's TF-IDF bag, both `(batch, seq)`.

    A token seen `c` times in a text has bag value `(1 + log c) * idf`, L2-normalised over the text's
    tokens; each of its `c` occurrences carries `1 / c` of it, so summing the weights per column gives
    the bag (`lexical_features`) without a `(batch, len(vocab))` tensor. Tokens outside `vocab` (sorted
    token ids) and padding (mask 0) weigh 0.

    Example:
        >>> position, weight = lexical_token_weights(torch.tensor([[7, 7, 9]]), None, torch.tensor([7, 9]), torch.ones(2))
        >>> position.tolist(), [[round(w, 3) for w in row] for row in weight.tolist()]
        ([[0, 0, 1]], [[0.431, 0.431, 0.509]])
    """
    input_ids = input_ids.to(vocab.dtype)
    position = torch.searchsorted(vocab, input_ids).clamp(max=vocab.shape[0] - 1)
    known = vocab[position] == input_ids
    if attention_mask is not None:
        known = known & attention_mask.bool()
    # occurrences of each known token in its text: equal keys sit together once each row is sorted
    # (every other position gets a key of its own), so a count is two binary searches, in O(batch * seq)
    others = -1 - torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    key = torch.where(known, input_ids, others)
    ordered = key.sort(dim=1).values
    count = torch.searchsorted(ordered, key, right=True) - torch.searchsorted(ordered, key)
    count = count.float()
    value = (1 + count.log()) * idf.float()[position] * known
    norm = (value.pow(2) / count).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)
    return position, value / (count * norm)


def lexical_features(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, vocab: torch.Tensor, idf: torch.Tensor
) -> torch.Tensor:
    """TF-IDF bag of tokens `(batch, len(vocab))`: `(1 + log count) * idf` per vocabulary token, L2-normalised.

    `vocab` holds sorted token ids; tokens outside it and padding (mask 0) are ignored. This is
    scikit-learn's `TfidfVectorizer(sublinear_tf=True)` over token ids, given its `idf_`.

    Example:
        >>> ids = torch.tensor([[7, 7, 9, 0]])
        >>> lexical_features(ids, torch.tensor([[1, 1, 1, 0]]), torch.tensor([7, 9]), torch.ones(2)).round(decimals=3)
        tensor([[0.8610, 0.5090]])
    """
    position, weight = lexical_token_weights(input_ids, attention_mask, vocab, idf)
    bag = torch.zeros(input_ids.shape[0], vocab.shape[0], device=weight.device)
    return bag.scatter_add_(1, position, weight)


def multilabel_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
    focal_gamma: float = 0.0,
) -> torch.Tensor:
    """Mean binary cross-entropy over every (text, label) pair, optionally weighted and focal.

    `pos_weight` (one value per label) scales the loss of positive targets; `focal_gamma > 0`
    multiplies each term by `(1 - p_t) ** gamma` (Lin et al., 2017), down-weighting easy pairs.

    Example:
        >>> logits = torch.zeros(2, 3)
        >>> round(multilabel_loss(logits, torch.ones(2, 3)).item(), 4)
        0.6931
    """
    labels = labels.to(logits.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight, reduction="none")
    if focal_gamma > 0:
        probs = torch.sigmoid(logits)
        p_t = probs * labels + (1 - probs) * (1 - labels)
        loss = loss * (1 - p_t).pow(focal_gamma)
    return loss.mean()


class MultiLabelModel(PreTrainedModel):
    """Encoder + pooling + dropout + linear head with one sigmoid output per label.

    `forward` returns a `SequenceClassifierOutput` whose `logits` are pre-sigmoid; with `labels`
    (float multi-hot, `(batch, num_labels)`) it also returns the loss configured in the config
    (BCE, per-label `pos_weight`, focal `focal_gamma`).

    With a memory (`set_knn_memory`, filled by `train()` with the training rows after fine-tuning),
    outside training the logits also get `knn_weight` times the label log-odds of the `knn_neighbors`
    nearest training rows (`knn_label_logits`). With a lexical channel (`set_lexical_model`, fitted by
    `train()`), they also get `lexical_weight` times a linear function of the text's TF-IDF bag of
    tokens (`lexical_features`). Both are saved with the weights and are off while training.

    Example:
        >>> from transformers import BertConfig
        >>> from mlclf_hub import MultiLabelConfig, MultiLabelModel
        >>> backbone = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
        >>> model = MultiLabelModel(MultiLabelConfig(backbone_config=backbone, id2label={0: "a", 1: "b"}))
        >>> model(input_ids=torch.tensor([[2, 5, 3]])).logits.shape
        torch.Size([1, 2])
    """

    config_class = MultiLabelConfig
    config: MultiLabelConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: MultiLabelConfig) -> None:
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        backbone_config = config.backbone_config
        dropout = config.classifier_dropout
        if dropout is None:
            dropout = getattr(
                backbone_config, "hidden_dropout_prob", getattr(backbone_config, "dropout", 0.1)
            )
        self.dropout = nn.Dropout(float(dropout) if isinstance(dropout, (int, float)) else 0.1)
        self.classifier = nn.Linear(backbone_config.hidden_size, config.num_labels)
        rows, vocab = config.knn_memory_size, config.lexical_vocab_size
        key_dtype = getattr(torch, config.knn_key_dtype)  # the saved keys' dtype: they load unchanged
        self._set_tables(
            knn_keys=torch.zeros(rows, backbone_config.hidden_size, dtype=key_dtype),
            knn_values=torch.zeros(rows, config.num_labels, dtype=torch.bool),
            lexical_vocab=torch.zeros(vocab, dtype=torch.long),
            lexical_idf=torch.zeros(vocab),
            lexical_coef=torch.zeros(vocab, config.num_labels),
        )
        self._backbone_inputs = set(inspect.signature(self.backbone.forward).parameters)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            std = getattr(self.config.backbone_config, "initializer_range", None) or 0.02
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)

    def reset_head(self) -> None:
        """A new random head, as `__init__` makes it, even where `from_pretrained` loaded one.

        Example:
            >>> import copy
            >>> fresh = copy.deepcopy(model)
            >>> fresh.reset_head()
            >>> torch.equal(fresh.classifier.weight, model.classifier.weight)
            False
        """
        for parameter in self.classifier.parameters():
            parameter._is_hf_initialized = False  # transformers' init functions skip flagged (loaded) tensors
        with torch.no_grad():
            self._init_weights(self.classifier)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with `AutoModel` added to the saved `auto_map`.

        The saved `config.json` keeps a Hub repo id in `name_or_path` (the model's, and the encoder's
        `backbone_config._name_or_path`) but not a local path (a home, virtualenv or temporary directory):
        it is saved as `""`. The config in memory keeps its values. After `import mlclf_hub` the config also
        writes the `"multi-label-classification"` pipeline's files (`MultiLabelConfig.pipeline_class`).

        Example:
            >>> import os, shutil, tempfile
            >>> tmp_dir = tempfile.mkdtemp()
            >>> model.save_pretrained(tmp_dir)
            >>> sorted(os.listdir(tmp_dir))  # doctest: +NORMALIZE_WHITESPACE
            ['config.json', 'configuration_multilabel.py', 'model.safetensors', 'modeling_multilabel.py',
             'pipeline_multilabel.py', 'processing_multilabel.py']
            >>> shutil.rmtree(tmp_dir)
        """
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModel", f"{type(self).__module__.rsplit('.', 1)[-1]}.{type(self).__name__}")
        self.config.auto_map = auto_map
        return super().save_pretrained(
            save_directory, *args, **kwargs
        )  # local paths: MultiLabelConfig.save_pretrained

    def _set_tables(self, **tables: torch.Tensor) -> None:
        """Register the memory's and the lexical channel's tables as buffers, saved only when they have rows.

        Their row counts are in the config (`knn_memory_size`, `lexical_vocab_size`), so `__init__` makes
        buffers of the saved sizes for the weights to load into.
        """
        for name, table in tables.items():
            self.register_buffer(name, table, persistent=table.shape[0] > 0)

    @torch.no_grad()
    def set_knn_memory(self, vectors: torch.Tensor, labels: torch.Tensor, key_dtype: str = "float16") -> None:
        """Store pooled vectors `(rows, hidden)` and their multi-hot labels `(rows, num_labels)` as the memory.

        The vectors are L2-normalised and stored as `key_dtype` (`"float16"`, half the bytes of
        `"float32"` at no measured cost in F1; see `benchmarks/README.md`), the labels as bools.

        Example:
            >>> import copy
            >>> model = copy.deepcopy(model)  # the example's own copy
            >>> model.set_knn_memory(torch.randn(4, 32), torch.zeros(4, 3))
            >>> model.knn_keys.dtype, model.config.knn_key_dtype, model.config.knn_memory_size
            (torch.float16, 'float16', 4)
            >>> model.clear_knn_memory()
            >>> model.knn_keys.shape, model.config.knn_memory_size
            (torch.Size([0, 32]), 0)
        """
        if key_dtype not in KNN_KEY_DTYPES:
            raise ValueError(f"knn memory: `key_dtype` must be one of {KNN_KEY_DTYPES}, got {key_dtype!r}.")
        hidden = self.classifier.in_features
        if (
            vectors.ndim != 2
            or vectors.shape[1] != hidden
            or labels.shape != (vectors.shape[0], self.config.num_labels)
        ):
            raise ValueError(
                f"knn memory needs vectors (rows, {hidden}) and labels (rows, {self.config.num_labels}), "
                f"got {tuple(vectors.shape)} and {tuple(labels.shape)}."
            )
        device = self.classifier.weight.device
        keys = F.normalize(vectors.float(), dim=-1).to(device=device, dtype=getattr(torch, key_dtype))
        self._set_tables(knn_keys=keys, knn_values=(labels > 0.5).to(device))
        self.config.knn_memory_size = int(keys.shape[0])
        self.config.knn_key_dtype = key_dtype

    def clear_knn_memory(self) -> None:
        """Drop the memory: the logits are the head's (and the lexical channel's), and nothing of it is saved.

        A model published without its memory needs thresholds tuned without it (README, "Publishing
        without the memory").
        """
        hidden = self.classifier.in_features
        empty = torch.zeros(0, hidden), torch.zeros(0, self.config.num_labels)
        self.set_knn_memory(*empty, key_dtype=self.config.knn_key_dtype)

    @torch.no_grad()
    def set_lexical_model(self, vocab: torch.Tensor, idf: torch.Tensor, coef: torch.Tensor) -> None:
        """Store the lexical channel: token ids `(n,)`, their idf `(n,)` and label weights `(n, num_labels)`.

        Example:
            >>> model.set_lexical_model(torch.tensor([9, 5]), torch.ones(2), torch.zeros(2, 3))
            >>> model.lexical_vocab.tolist(), model.config.lexical_vocab_size
            ([5, 9], 2)
            >>> model.clear_lexical_model()
            >>> model.config.lexical_vocab_size
            0
        """
        size = vocab.shape[0]
        if vocab.ndim != 1 or idf.shape != (size,) or coef.shape != (size, self.config.num_labels):
            raise ValueError(
                f"lexical model needs token ids (n,), idf (n,) and weights (n, {self.config.num_labels}), "
                f"got {tuple(vocab.shape)}, {tuple(idf.shape)} and {tuple(coef.shape)}."
            )
        order = torch.argsort(vocab)
        vocab = vocab[order].long()
        if size > 1 and bool((vocab[1:] == vocab[:-1]).any()):
            raise ValueError("lexical model: token ids must be unique.")
        device = self.classifier.weight.device
        self._set_tables(
            lexical_vocab=vocab.to(device),
            lexical_idf=idf[order].float().to(device),
            lexical_coef=coef[order].float().to(device),
        )
        self.config.lexical_vocab_size = int(size)

    def clear_lexical_model(self) -> None:
        """Drop the lexical channel."""
        empty = torch.zeros(0)
        self.set_lexical_model(empty.long(), empty, torch.zeros(0, self.config.num_labels))

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def pooled_output(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The pooled text vectors `(batch, hidden)` the head sees (before dropout)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None and "token_type_ids" in self._backbone_inputs:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**inputs, return_dict=True).last_hidden_state
        return pool_hidden_states(hidden, attention_mask, self.config.pooling)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        pooled = self.pooled_output(input_ids, attention_mask, token_type_ids, inputs_embeds)
        logits = self.classifier(self.dropout(pooled))
        config = self.config
        if not self.training and config.knn_weight > 0 and self.knn_keys.shape[0] > 0:
            memory = knn_label_logits(
                pooled, self.knn_keys, self.knn_values, config.knn_neighbors, config.knn_temperature
            )
            logits = logits + config.knn_weight * memory.to(logits.dtype)
        if not self.training and config.lexical_weight > 0 and self.lexical_vocab.shape[0] > 0:
            if input_ids is None:
                raise ValueError(
                    "This model's lexical channel reads `input_ids`; pass them, or set "
                    "`model.config.lexical_weight = 0` to run it on `inputs_embeds`."
                )
            position, weight = lexical_token_weights(
                input_ids, attention_mask, self.lexical_vocab, self.lexical_idf
            )
            scores = torch.einsum("bt,btl->bl", weight, self.lexical_coef[position].float())
            logits = logits + config.lexical_weight * scores.to(logits.dtype)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape:
                raise ValueError(
                    f"labels must be multi-hot of shape (batch, num_labels) = {tuple(logits.shape)}, "
                    f"got {tuple(labels.shape)}."
                )
            pos_weight = None
            if self.config.pos_weight is not None:
                pos_weight = torch.tensor(self.config.pos_weight)
            loss = multilabel_loss(logits, labels, pos_weight, self.config.focal_gamma)
        if return_dict is False:
            return (loss, logits) if loss is not None else (logits,)
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = [
    "MultiLabelModel",
    "knn_label_logits",
    "lexical_features",
    "lexical_token_weights",
    "multilabel_loss",
    "pool_hidden_states",
]
