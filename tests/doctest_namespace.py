"""Objects the package's docstring examples use, for `pytest --doctest-modules` (registered in setup.cfg).

Examples that need only a model, a tokenizer or a tokenized dataset run on tiny random ones built here
(`model`: 2 layers, 32 wide, labels sports/politics/tech; `tokenizer`: the tests' small WordPiece
vocabulary; `facade`: the simpletransformers facade on that model, saved); only examples that need a trained model, a Hub or files of the user's stay `+SKIP`.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _doctest_objects(doctest_namespace):
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding

    from mlclf_hub.data import LabelSpace, to_dataset
    from mlclf_hub.saving import save_model
    from mlclf_hub.simple import MultiLabelClassificationModel
    from tests.tiny_models import tiny_model, tiny_tokenizer

    torch.manual_seed(0)
    model, tokenizer = tiny_model(), tiny_tokenizer()
    facade_dir = tempfile.mkdtemp(prefix="mlclf-doctest-")
    save_model(
        model, facade_dir, tokenizer
    )  # saving fills auto_map, architectures, dtype: done once, up front
    facade = MultiLabelClassificationModel("bert", facade_dir, use_cuda=False, args={"silent": True})
    space = LabelSpace(model.config.labels)
    rows = [
        ("the team won the game", ["sports"]),
        ("vote on the new law", ["politics"]),
        ("new chip", ["tech"]),
    ]
    doctest_namespace.update(
        np=np,
        torch=torch,
        model=model,
        tokenizer=tokenizer,
        config=model.config,
        label_space=space,
        train_set=to_dataset(rows, tokenizer, space),
        collator=DataCollatorWithPadding(tokenizer),
        facade=facade,
    )
    yield
    shutil.rmtree(facade_dir, ignore_errors=True)
