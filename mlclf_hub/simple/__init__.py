"""simpletransformers' `MultiLabelClassificationModel` API, call for call, on `mlclf_hub`.

Switching is one import line::

    from mlclf_hub.simple import ClassificationArgs, MultiLabelClassificationModel

The constructor, `train_model`, `eval_model`, `predict`, the return types and every field of
`ClassificationArgs` / `MultiLabelClassificationArgs` keep simpletransformers' names. Underneath it
is a thin layer: `to_training_arguments` turns the args into `MultiLabelTrainingArguments`,
`trainer.train` fine-tunes and tunes the thresholds on `eval_df`, `inference.predict_proba` predicts and
`metrics.multilabel_metrics` evaluates.

- `args`: the args classes, the field table `FIELD_NOTES` (rendered into the docs by `fields_markdown`) and
  `to_training_arguments`.
- `model`: `MultiLabelClassificationModel` and `InputExample`.

Fixed on the way (simpletransformers issue numbers): `train_model(output_dir=...)` receives the model
(#657); metric functions passed to `eval_model` get 0/1 predictions (#125, #916, #1033); `predict`
takes a per-call, per-label `threshold` (#252, #1562); `sliding_window` works for multi-label (#562);
no tokenization worker pool, so `predict` after `train_model` cannot hang and multi-hot labels cannot
crash it (#1591); `do_lower_case` keeps the checkpoint's tokenizer setting unless set; `use_cuda=True`
without a GPU warns and runs on the CPU. `docs/simpletransformers.md` has the full table.
"""

from .args import (
    FIELD_NOTES,
    ClassificationArgs,
    MultiLabelClassificationArgs,
    fields_markdown,
    to_training_arguments,
)
from .model import InputExample, MultiLabelClassificationModel

__all__ = [
    "FIELD_NOTES",
    "ClassificationArgs",
    "InputExample",
    "MultiLabelClassificationArgs",
    "MultiLabelClassificationModel",
    "fields_markdown",
    "to_training_arguments",
]
