"""Fast inference backends: torch dynamic int8, and ONNX Runtime (fp32 or int8) through the same `predict`.

Four backends run a trained `MultiLabelModel`, each read by `predict`, `predict_proba`, `predict_proba_iter`,
the `"multi-label-classification"` pipeline and the CLI (`--backend`):

- `"torch"`: the model as it is.
- `"torch-int8"`: a copy whose encoder `Linear` layers are `torch.ao` dynamic int8 (weights int8, activations
  quantized per batch); the head, the nearest-neighbour memory and the lexical channel stay float32. No extra
  dependency.
- `"onnx"` / `"onnx-int8"`: `OnnxMultiLabelModel`, an ONNX Runtime session over `onnx/model.onnx` (or
  `onnx/model_quantized.onnx`, int8 weights by `onnxruntime.quantization.quantize_dynamic`), written by
  `export_onnx` (`mlclf-hub export --model DIR [--quantize]`). Needs `pip install onnx onnxruntime`.

The exported graph holds the whole forward pass: encoder, pooling, head, memory and lexical channel, in-graph,
with two outputs, `probabilities` (the sigmoid) and `logits`. ONNX has no `searchsorted`, which the lexical
channel uses in torch, so the graph reads each token's column from a table over the tokenizer's vocabulary and
counts repeated tokens with an equality matrix: the same numbers as torch (the export checks it).

Example:
    >>> import tempfile
    >>> from mlclf_hub import AutoModelForMultiLabel, predict_proba, save_model
    >>> model_dir = str(save_model(model, tempfile.mkdtemp(), tokenizer))
    >>> _ = export_onnx(model_dir, quantize=True)  # doctest: +SKIP
    >>> onnx_model = AutoModelForMultiLabel.from_pretrained(model_dir, backend="onnx")  # doctest: +SKIP
    >>> predict_proba(onnx_model, tokenizer, ["a text"]).shape  # doctest: +SKIP
    (1, 3)
"""

from __future__ import annotations

import copy
import importlib.util
import logging as std_logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import logging

from .configuration_multilabel import MultiLabelConfig
from .modeling_multilabel import MultiLabelModel, knn_label_logits
from .pipeline_multilabel import quantize_int8

logger = logging.get_logger(__name__)

Backend = Literal["torch", "torch-int8", "onnx", "onnx-int8"]
#: The backends `AutoModelForMultiLabel.from_pretrained(..., backend=...)` and the CLI's `--backend` take.
BACKENDS: tuple[str, ...] = ("torch", "torch-int8", "onnx", "onnx-int8")
#: Where the exported graphs go inside a model directory (the Hub's convention: `onnx/model.onnx`).
ONNX_SUBFOLDER = "onnx"
ONNX_FILE = "model.onnx"
ONNX_QUANTIZED_FILE = "model_quantized.onnx"
#: The graph's inputs (those the model reads) and outputs.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("probabilities", "logits")
#: The largest max abs difference of probabilities between the fp32 graph and torch that `export_onnx` accepts.
PARITY_TOLERANCE = 1e-4
ONNX_INSTALL = "pip install onnx onnxruntime"


def check_backend(backend: object) -> str:
    """`backend` if it is one of `BACKENDS`, else a `ValueError` listing them.

    Example:
        >>> check_backend("onnx-int8")
        'onnx-int8'
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r:.60}.")
    return backend


class MissingDependencyError(ImportError, ValueError):
    """An optional package a backend needs is not installed; both an `ImportError` and a `ValueError`.

    Example:
        >>> issubclass(MissingDependencyError, ImportError) and issubclass(MissingDependencyError, ValueError)
        True
    """


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"The ONNX backends need {' and '.join(missing)}, which is not installed: run `{ONNX_INSTALL}` "
            "(or `pip install mlclf-hub[onnx]`)."
        )


# ---------------------------------------------------------------------------------------------
# torch dynamic int8
# ---------------------------------------------------------------------------------------------


def quantize_torch(model: MultiLabelModel, *, head: bool = False) -> MultiLabelModel:
    """A copy of `model` whose encoder `nn.Linear` layers are torch's dynamic int8 ones (CPU only).

    The head (`classifier`) stays float32 unless `head=True`; the memory and the lexical channel are tables,
    never quantized. The copy is in eval mode; `model` is not changed.

    Example:
        >>> fast = quantize_torch(model)
        >>> type(fast.backbone.encoder.layer[0].attention.self.query).__name__
        'Linear'
        >>> fast.backbone.encoder.layer[0].attention.self.query.__module__
        'torch.ao.nn.quantized.dynamic.modules.linear'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_torch expects a torch model, got {type(model).__name__}.")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(
            f"backend 'torch-int8' runs on the CPU only (torch's dynamic int8 kernels); the model is on {device}. "
            "Use backend 'torch' on an accelerator."
        )
    return quantize_int8(model, head=head)


# ---------------------------------------------------------------------------------------------
# The exported graph
# ---------------------------------------------------------------------------------------------


class ExportGraph(nn.Module):
    """`MultiLabelModel`'s eval-mode forward pass as probabilities and logits, in ops ONNX has.

    The encoder, pooling and head are the model's own modules; the memory is `knn_label_logits` over all keys in
    one pass (keys as float32, labels as floats); the lexical channel looks each token's column up in a table
    over the encoder's vocabulary (`-1`: not in the channel's vocabulary) and counts a token's occurrences in its
    text with an equality matrix, where torch uses `searchsorted` (which ONNX lacks). Same numbers as
    `MultiLabelModel.forward`.

    Example:
        >>> graph = ExportGraph(model)
        >>> ids = torch.tensor([[2, 7, 8, 3]])
        >>> probs, logits = graph(ids, torch.ones_like(ids), torch.zeros_like(ids))
        >>> torch.allclose(probs, torch.sigmoid(model(input_ids=ids).logits))
        True
    """

    def __init__(self, model: MultiLabelModel) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.use_memory = config.knn_weight > 0 and model.knn_keys.shape[0] > 0
        self.use_lexical = config.lexical_weight > 0 and model.lexical_vocab.shape[0] > 0
        self.use_token_types = "token_type_ids" in model._backbone_inputs
        if self.use_memory:
            self.register_buffer("keys", model.knn_keys.float(), persistent=False)
            self.register_buffer("values", model.knn_values.float(), persistent=False)
        if self.use_lexical:
            vocab = model.lexical_vocab
            rows = max(int(model.get_input_embeddings().weight.shape[0]), int(vocab.max()) + 1)
            column = torch.full(
                (rows + 1,), -1, dtype=torch.long, device=vocab.device
            )  # last row: out of range
            column[vocab] = torch.arange(vocab.shape[0], device=vocab.device)
            self.register_buffer("column", column, persistent=False)

    def lexical_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The lexical channel's `(batch, num_labels)` scores (before `lexical_weight`)."""
        column = self.column[input_ids.clamp(0, self.column.shape[0] - 1)]
        known = (column >= 0) & attention_mask.bool()
        position = column.clamp(min=0)
        others = -1 - torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0).expand_as(
            input_ids
        )
        key = torch.where(known, input_ids, others)  # padding and unknown tokens: a key of their own
        count = (key.unsqueeze(2) == key.unsqueeze(1)).sum(dim=-1).float()
        value = (1 + count.log()) * self.model.lexical_idf.float()[position] * known
        norm = (value.pow(2) / count).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)
        weight = value / (count * norm)
        return torch.einsum("bt,btl->bl", weight, self.model.lexical_coef.float()[position])

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model, config = self.model, self.model.config
        pooled = model.pooled_output(
            input_ids, attention_mask, token_type_ids if self.use_token_types else None
        )
        logits = model.classifier(pooled)
        if self.use_memory:
            memory = knn_label_logits(
                pooled,
                self.keys,
                self.values,
                config.knn_neighbors,
                config.knn_temperature,
                chunk_rows=self.keys.shape[0],
            )
            logits = logits + config.knn_weight * memory
        if self.use_lexical:
            logits = logits + config.lexical_weight * self.lexical_scores(input_ids, attention_mask)
        return torch.sigmoid(logits), logits


def _example_inputs(model: MultiLabelModel, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Batches of token ids for the export and its parity check: padded rows, repeated and lexical tokens."""
    generator = torch.Generator().manual_seed(seed)
    vocab_rows = int(model.get_input_embeddings().weight.shape[0])
    limit = int(getattr(model.config.backbone_config, "max_position_embeddings", 64) or 64)
    lexical = model.lexical_vocab.cpu()
    batches = []
    for rows, length in ((3, min(24, limit - 4)), (1, min(7, limit - 4)), (5, min(40, limit - 4))):
        ids = torch.randint(5, vocab_rows, (rows, length), generator=generator)
        if lexical.shape[0] > 0:  # half the tokens from the channel's vocabulary, some of them twice
            pick = torch.rand(rows, length, generator=generator) < 0.5
            drawn = lexical[torch.randint(0, lexical.shape[0], (rows, length), generator=generator)]
            ids = torch.where(pick, drawn, ids)
            ids[:, 2] = ids[:, 1]
        mask = torch.ones_like(ids)
        if rows > 1:
            mask[1, length // 2 :] = 0  # a padded row
            ids[1, length // 2 :] = 0
        batches.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)})
    return batches


def _load_for_export(
    model_or_path: MultiLabelModel | str | os.PathLike,
) -> tuple[MultiLabelModel, Path | None]:
    if isinstance(model_or_path, (str, os.PathLike)):
        from .auto import AutoModelForMultiLabel

        path = Path(model_or_path)
        if not path.is_dir():
            raise ValueError(
                f"export_onnx: {str(path)!r} is not a model directory (a trained model saved locally)."
            )
        return AutoModelForMultiLabel.from_pretrained(path), path
    if not isinstance(model_or_path, MultiLabelModel):
        raise TypeError(
            f"export_onnx expects a MultiLabelModel or a model directory, got {type(model_or_path).__name__}."
        )
    return model_or_path, None


def _graph_names(model: MultiLabelModel) -> list[str]:
    return [
        name for name in INPUT_NAMES if name != "token_type_ids" or "token_type_ids" in model._backbone_inputs
    ]


def _export_graph(
    graph: ExportGraph,
    names: list[str],
    example: dict[str, torch.Tensor],
    target: Path,
    opset: int,
    dynamo: bool,
) -> None:
    args = tuple(example[name] for name in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        if dynamo:
            _require("onnxscript")
            dim = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
            program = torch.onnx.export(
                graph,
                args,
                input_names=names,
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={name: dim for name in names},
                dynamo=True,
                opset_version=max(opset, 18),
            )
            program.save(str(target), external_data=False)
        else:
            axes = {name: {0: "batch", 1: "sequence"} for name in names}
            axes.update({name: {0: "batch"} for name in OUTPUT_NAMES})
            torch.onnx.export(
                graph,
                args,
                str(target),
                input_names=names,
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )


class _DropMessage(std_logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: std_logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _quantize_onnx(source: Path, target: Path, head: bool, per_channel: bool = True) -> None:
    """int8 weights (`quantize_dynamic`) for the encoder's MatMuls; the head's and the memory's unless `head`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [node for node in onnx.load(str(source), load_external_data=False).graph.node]
    scoped = any("/backbone/" in node.name for node in nodes)  # the TorchScript exporter names module scopes
    if not head and not scoped:
        logger.warning("ONNX int8: the graph's node names carry no module scopes; the head is quantized too.")
    excluded = [
        node.name
        for node in nodes
        if node.op_type in ("MatMul", "Gemm") and not head and scoped and "/backbone/" not in node.name
    ]
    quiet = _DropMessage("pre-processing before quantization")  # onnxruntime's advice, logged on every call
    root = std_logging.getLogger()
    root.addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=excluded,
            per_channel=per_channel,
        )
    finally:
        root.removeFilter(quiet)


def export_onnx(
    model_or_path: MultiLabelModel | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    quantize: bool = False,
    quantize_head: bool = False,
    per_channel: bool = True,
    opset: int = 17,
    dynamo: bool = False,
    check: bool = True,
) -> Path:
    """Export a trained model to ONNX with a sigmoid output; optionally an int8 copy too.

    The graph takes `input_ids`, `attention_mask` and, where the encoder reads them, `token_type_ids` (int64,
    batch and sequence axes dynamic) and returns `probabilities` (sigmoid, `(batch, num_labels)`) and `logits`.
    The nearest-neighbour memory and the lexical channel are inside the graph (`ExportGraph`). It is written to
    `output_dir/onnx/model.onnx`, with `quantize` also `onnx/model_quantized.onnx` (int8 weights for the encoder's
    matrix products, by `onnxruntime.quantization.quantize_dynamic`; the head and memory stay float32 unless
    `quantize_head`). Each file is written to a temporary name and then renamed into place.

    Args:
        model_or_path (`MultiLabelModel`, `str` or `os.PathLike`):
            A trained model, or the directory it was saved to.
        output_dir (`str` or `os.PathLike`, *optional*):
            The model directory to write `onnx/` into; default: `model_or_path` when it is a directory. When it
            holds no config.json, the model's config is saved there (`from_pretrained(..., backend="onnx")`
            reads it).
        quantize (`bool`, *optional*, defaults to `False`):
            Also write the int8 graph.
        quantize_head (`bool`, *optional*, defaults to `False`):
            Quantize the head's and the memory's matrix products too.
        per_channel (`bool`, *optional*, defaults to `True`):
            int8 scales per output channel instead of per weight matrix: closer to fp32 (micro-F1 -0.004 against
            -0.010 on debtags, `benchmarks/backends.py`); `False` for one scale per matrix.
        opset (`int`, *optional*, defaults to 17):
            ONNX opset (18 at least with `dynamo`).
        dynamo (`bool`, *optional*, defaults to `False`):
            Use torch's `torch.export`-based exporter (needs `onnxscript`) instead of the TorchScript one; both
            give the same numbers, the TorchScript exporter in a fraction of the time.
        check (`bool`, *optional*, defaults to `True`):
            Compare the graph's probabilities with torch's on a few batches; raise when fp32 differs by more
            than `PARITY_TOLERANCE` (1e-4). The int8 graph's difference is logged.

    Returns:
        `Path`: The `onnx/` directory.

    Raises:
        MissingDependencyError: when onnx or onnxruntime is not installed (an `ImportError` and a `ValueError`).
        ValueError: when no directory is given for a model object, or the fp32 graph differs from torch.

    Example:
        >>> export_onnx(model_dir, quantize=True)  # doctest: +SKIP
        PosixPath('.../onnx')
    """
    _require("onnx", "onnxruntime")
    model, source = _load_for_export(model_or_path)
    if output_dir is None:
        if source is None:
            raise ValueError(
                "export_onnx: pass `output_dir` (the model directory) when exporting a model object."
            )
        output_dir = source
    output_dir = Path(output_dir)
    target_dir = output_dir / ONNX_SUBFOLDER
    target_dir.mkdir(parents=True, exist_ok=True)
    if not (output_dir / "config.json").is_file():
        model.config.save_pretrained(output_dir)
    names = _graph_names(model)
    cpu_model = copy.deepcopy(model).float().cpu().eval()
    graph = ExportGraph(cpu_model).eval()
    examples = _example_inputs(cpu_model)
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        fp32 = Path(scratch) / ONNX_FILE
        with torch.no_grad():
            _export_graph(graph, names, examples[0], fp32, opset, dynamo)
        if check:
            diff = _parity(graph, fp32, names, examples)
            logger.info(f"ONNX export: max abs probability difference against torch {diff:.2e}.")
            if not diff <= PARITY_TOLERANCE:
                raise ValueError(
                    f"export_onnx: the ONNX graph's probabilities differ from torch's by {diff:.2e} "
                    f"(more than {PARITY_TOLERANCE:g}); nothing was written."
                )
        written = [(fp32, target_dir / ONNX_FILE)]
        if quantize:
            int8 = Path(scratch) / ONNX_QUANTIZED_FILE
            _quantize_onnx(fp32, int8, quantize_head, per_channel)
            if check:
                logger.info(
                    f"ONNX int8: max abs probability difference against torch {_parity(graph, int8, names, examples):.2e}."
                )
            written.append((int8, target_dir / ONNX_QUANTIZED_FILE))
        for tmp, final in written:
            os.replace(tmp, final)
    return target_dir


def _parity(
    graph: ExportGraph, path: Path, names: list[str], examples: list[dict[str, torch.Tensor]]
) -> float:
    """Max abs difference of probabilities between the graph file and torch over the example batches."""
    session = _session(path)
    worst = 0.0
    for batch in examples:
        with torch.no_grad():
            expected = graph(*(batch[name] for name in names))[0].numpy()
        got = session.run(["probabilities"], {name: batch[name].numpy() for name in names})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def _session(path: Path, providers: Sequence[str] | None = None, options: Any = None) -> Any:
    import onnxruntime as ort

    options = options or ort.SessionOptions()
    return ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))


# ---------------------------------------------------------------------------------------------
# The ONNX Runtime model
# ---------------------------------------------------------------------------------------------


class OnnxMultiLabelModel:
    """A trained multi-label model run by ONNX Runtime, usable wherever the torch model is read.

    It has the torch model's `config` (labels, thresholds, `max_length`, windows), `device` (CPU), `eval()`,
    `to()` and a `__call__(input_ids=..., attention_mask=..., token_type_ids=...)` that returns a
    `SequenceClassifierOutput` with float32 `logits`; so `predict`, `predict_proba`, `predict_proba_iter`, the
    `"multi-label-classification"` pipeline and the CLI take it in place of the torch model. `probabilities`
    returns the graph's sigmoid output.

    Example:
        >>> onnx_model = OnnxMultiLabelModel.from_pretrained(model_dir)  # doctest: +SKIP
        >>> predict(onnx_model, tokenizer, ["the team won"])  # doctest: +SKIP
        [['sports']]
    """

    training = False
    dtype = torch.float32
    main_input_name = "input_ids"

    def __init__(self, session: Any, config: MultiLabelConfig, path: str | os.PathLike | None = None) -> None:
        self.session = session
        self.config = config
        self.path = None if path is None else Path(path)
        self.input_names = [item.name for item in session.get_inputs()]
        self.device = torch.device("cpu")

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        *,
        quantized: bool = False,
        file_name: str | None = None,
        providers: Sequence[str] | None = None,
        session_options: Any = None,
        config: MultiLabelConfig | None = None,
        **hub_kwargs: Any,
    ) -> OnnxMultiLabelModel:
        """Open `onnx/model.onnx` (or `onnx/model_quantized.onnx` with `quantized`) of a model directory or Hub repo.

        Args:
            model_dir (`str` or `os.PathLike`): The model directory (or Hub repo id) `export_onnx` wrote into.
            quantized (`bool`, *optional*): The int8 graph.
            file_name (`str`, *optional*): Another file of `onnx/`.
            providers (`Sequence[str]`, *optional*): ONNX Runtime execution providers (default: the CPU's).
            session_options (`onnxruntime.SessionOptions`, *optional*): Threads and graph optimisation.
            config (`MultiLabelConfig`, *optional*): The config (default: the directory's config.json).
            **hub_kwargs: `revision`, `token`, `cache_dir`, `local_files_only` for a Hub repo.

        Raises:
            MissingDependencyError: when onnxruntime is not installed (says the pip command).
            ModelFilesError: when the graph was not exported (says the export command).
        """
        from transformers.utils import cached_file

        from .auto import ModelFilesError

        _require("onnxruntime")
        name = file_name or (ONNX_QUANTIZED_FILE if quantized else ONNX_FILE)
        flag = " --quantize" if quantized else ""
        missing = ModelFilesError(
            f"{model_dir}: no {ONNX_SUBFOLDER}/{name}; export it first: `mlclf-hub export --model {model_dir}{flag}` "
            f"(or `mlclf_hub.export_onnx({str(model_dir)!r}{', quantize=True' if quantized else ''})`)."
        )
        local = Path(model_dir) / ONNX_SUBFOLDER / name
        if local.is_file():
            path = local
        elif os.path.isdir(model_dir):
            raise missing
        else:
            try:
                found = cached_file(
                    str(model_dir),
                    f"{ONNX_SUBFOLDER}/{name}",
                    _raise_exceptions_for_missing_entries=False,
                    **hub_kwargs,
                )
            except OSError as err:
                raise missing from err
            if not found:
                raise missing
            path = Path(found)
        if config is None:
            from transformers import AutoConfig

            from . import auto  # noqa: F401  (registers model_type "multilabel")

            config = AutoConfig.from_pretrained(model_dir, **hub_kwargs)
        return cls(_session(path, providers, session_options), config, path)

    def eval(self) -> OnnxMultiLabelModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxMultiLabelModel:
        """No-op: the session runs on its providers (the CPU by default); inputs are read from any device."""
        return self

    def can_generate(self) -> bool:
        return False

    def run(
        self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graph's `(probabilities, logits)` as float32 arrays for int token tensors or arrays."""
        ids = _numpy(input_ids)
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids) if attention_mask is None else _numpy(attention_mask),
            "token_type_ids": np.zeros_like(ids) if token_type_ids is None else _numpy(token_type_ids),
        }
        probs, logits = self.session.run(list(OUTPUT_NAMES), {name: feed[name] for name in self.input_names})
        return probs, logits

    def __call__(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        **unused: Any,
    ) -> SequenceClassifierOutput:
        if input_ids is None:
            raise ValueError("OnnxMultiLabelModel reads `input_ids` (token ids), none were given.")
        extra = sorted(key for key, value in unused.items() if value is not None and key != "return_dict")
        if extra:
            raise TypeError(
                f"OnnxMultiLabelModel takes input_ids, attention_mask, token_type_ids; got also {extra}."
            )
        _, logits = self.run(input_ids, attention_mask, token_type_ids)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))

    forward = __call__

    def probabilities(self, **inputs: Any) -> np.ndarray:
        """The graph's sigmoid output for one batch of token inputs."""
        return self.run(**inputs)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, labels={len(self.config.id2label)})"


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.int64)


def load_backend(
    model_dir: str | os.PathLike, backend: str, *, model: MultiLabelModel | None = None, **kwargs: Any
) -> MultiLabelModel | OnnxMultiLabelModel:
    """The model saved at `model_dir` on `backend` (`model`: the torch model already loaded, for torch backends).

    Example:
        >>> load_backend(model_dir, "torch-int8")  # doctest: +SKIP
    """
    check_backend(backend)
    if backend.startswith("onnx"):
        return OnnxMultiLabelModel.from_pretrained(model_dir, quantized=backend == "onnx-int8", **kwargs)
    if model is None:
        from .auto import AutoModelForMultiLabel

        model = AutoModelForMultiLabel.from_pretrained(model_dir, **kwargs)
    return quantize_torch(model) if backend == "torch-int8" else model


_SESSIONS: dict[tuple[str, int], OnnxMultiLabelModel] = {}


def on_backend(model: Any, backend: str) -> Any:
    """`model` (a torch model or an `OnnxMultiLabelModel`) run on `backend`, for `predict_proba(..., backend=)`.

    A torch model goes to `"torch-int8"` as a quantized copy (`quantize_torch`), and to `"onnx"` / `"onnx-int8"`
    through the graph exported into the directory it was loaded from (`model.name_or_path`); sessions are kept
    per file while it is unchanged. An `OnnxMultiLabelModel` only runs on its own backend.

    Example:
        >>> on_backend(model, "torch") is model
        True
    """
    check_backend(backend)
    if isinstance(model, OnnxMultiLabelModel):
        own = "onnx-int8" if model.path is not None and model.path.name == ONNX_QUANTIZED_FILE else "onnx"
        if backend != own:
            raise ValueError(
                f"`backend={backend!r}`: the model is already an ONNX Runtime model ({own}); load the model "
                f"with `AutoModelForMultiLabel.from_pretrained(path, backend={backend!r})` instead."
            )
        return model
    if backend == "torch":
        return model
    if backend == "torch-int8":
        return quantize_torch(model)
    where = str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "") or "")
    if not where or not os.path.isdir(where):
        raise ValueError(
            f"`backend={backend!r}` reads the ONNX graph exported into the model's directory, and this model was "
            f"not loaded from one (name_or_path={where!r}); save it, run `mlclf-hub export --model DIR"
            f"{' --quantize' if backend == 'onnx-int8' else ''}`, then load it with "
            f"`AutoModelForMultiLabel.from_pretrained(DIR, backend={backend!r})`."
        )
    name = ONNX_QUANTIZED_FILE if backend == "onnx-int8" else ONNX_FILE
    path = Path(where) / ONNX_SUBFOLDER / name
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.is_file() else -1)
    if key not in _SESSIONS:
        _SESSIONS[key] = OnnxMultiLabelModel.from_pretrained(
            where, quantized=backend == "onnx-int8", config=model.config
        )
    return _SESSIONS[key]


def is_backend_model(model: object) -> bool:
    """Whether `model` is one that runs outside torch (an `OnnxMultiLabelModel`)."""
    return isinstance(model, OnnxMultiLabelModel)


__all__ = [
    "BACKENDS",
    "ONNX_FILE",
    "ONNX_QUANTIZED_FILE",
    "ONNX_SUBFOLDER",
    "ExportGraph",
    "MissingDependencyError",
    "OnnxMultiLabelModel",
    "check_backend",
    "export_onnx",
    "load_backend",
    "on_backend",
    "quantize_torch",
]
