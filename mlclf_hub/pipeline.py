"""The `"multi-label-classification"` pipeline, registered with `transformers` and saved with every model.

The pipeline itself is `pipeline_multilabel.MultiLabelClassificationPipeline`, a remote-code file. Importing
this module (which `import mlclf_hub` does) registers the task with `transformers.pipelines.PIPELINE_REGISTRY`
and marks the pipeline to travel with the model: from then on every save of a `MultiLabelModel`
(`save_pretrained`, `save_model`, `train()`, `push_to_hub`, the facade, the CLI) writes
`pipeline_multilabel.py` and `processing_multilabel.py` beside the model files and
`custom_pipelines` in `config.json`, as transformers' `Pipeline.save_pretrained` does. So

    >>> import json, os, shutil, tempfile
    >>> from transformers import pipeline
    >>> from mlclf_hub import save_model
    >>> tmp_dir = tempfile.mkdtemp()
    >>> model_dir = str(save_model(model, os.path.join(tmp_dir, "my-model"), tokenizer))  # model + tokenizer
    >>> classify = pipeline("multi-label-classification", model=model_dir)  # the installed class
    >>> type(classify).__module__
    'mlclf_hub.pipeline_multilabel'
    >>> len(classify(["the team won the game", "new chip"]))  # one list of labels per text
    2
    >>> json.load(open(os.path.join(model_dir, "config.json")))["custom_pipelines"]  # doctest: +NORMALIZE_WHITESPACE
    {'multi-label-classification': {'impl': 'pipeline_multilabel.MultiLabelClassificationPipeline',
     'pt': ['AutoModelForSequenceClassification'], 'tf': [], 'type': 'text'}}
    >>> shutil.rmtree(tmp_dir)

and where `mlclf_hub` is not installed, `pipeline(model=model_dir, trust_remote_code=True)` (no task: the
saved one) builds the same pipeline from the saved files. With `mlclf_hub` imported, a loaded config lists the
saved entry as `"multi-label-classification (remote code)"` (see `MultiLabelConfig.pipeline_class`), so that
`pipeline("multi-label-classification", model=...)` keeps building the installed class without
`trust_remote_code`, while `pipeline(model=..., trust_remote_code=True)` still finds the saved one.
"""

from __future__ import annotations

from transformers import AutoModelForSequenceClassification
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_multilabel import MultiLabelConfig
from .pipeline_multilabel import TASK, MultiLabelClassificationPipeline


def register_pipeline() -> None:
    """Register `"multi-label-classification"` with `PIPELINE_REGISTRY` and save it with models (idempotent).

    Example:
        >>> register_pipeline()
        >>> MultiLabelConfig.pipeline_class is MultiLabelClassificationPipeline
        True
    """
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is not MultiLabelClassificationPipeline:
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=MultiLabelClassificationPipeline,
            pt_model=AutoModelForSequenceClassification,
            type="text",
        )
    MultiLabelConfig.pipeline_class = MultiLabelClassificationPipeline


register_pipeline()

__all__ = ["PIPELINE_REGISTRY", "TASK", "MultiLabelClassificationPipeline", "register_pipeline"]
