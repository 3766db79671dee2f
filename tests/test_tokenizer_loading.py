"""The tokenizer of a saved or pushed model loads with no remote-code prompt and no model-type warning.

transformers 5.24's `AutoTokenizer.from_pretrained` always loads the model config first
(`tokenization_auto.py`, `AutoConfig.from_pretrained(..., trust_remote_code=trust_remote_code)`), before
it reads `tokenizer_config.json`. Our `config.json` is custom code (`model_type: multilabel`, `auto_map`
with `AutoConfig`), so in a process without mlclf_hub a call without `trust_remote_code` asks "Do you
wish to run the custom code?" and, refused, falls back to `PreTrainedConfig` with a model-type warning;
nothing in the saved tokenizer files can skip that. Hence the supported ways, checked here in fresh
processes with stdin closed and an empty remote-code cache:

- without mlclf_hub: `AutoTokenizer.from_pretrained(path, trust_remote_code=True)`, as for the model;
- after `import mlclf_hub`: plain `AutoTokenizer.from_pretrained(path)` (the config type is registered).

Both must give the saved tokenizer's own class (from `tokenizer_class` in `tokenizer_config.json`) and ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlclf_hub import push_to_hub
from mlclf_hub.saving import save_model
from tests.tiny_models import tiny_model, tiny_tokenizer

TEXTS = ["the team won the game", "vote on the new law", "new code for the old phone chip", "a"]
PROMPT = "Do you wish to run the custom code"
MODEL_TYPE_WARNING = "You are using a model of type `multilabel` to instantiate a model of type ``"

WITHOUT_MLCLF_HUB = """
import json, sys
source, out, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.modules["mlclf_hub"] = None  # plain transformers + remote code, mlclf_hub not importable
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
stock = pipeline("text-classification", model=source, trust_remote_code=True, top_k=None)
json.dump({
    "model_module": type(model).__module__,
    "tokenizers": {
        "auto": [type(tokenizer).__name__, tokenizer(texts)["input_ids"]],
        "pipeline": [type(stock.tokenizer).__name__, stock.tokenizer(texts)["input_ids"]],
    },
}, open(out, "w"))
"""

WITH_MLCLF_HUB = """
import json, sys
source, out, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import mlclf_hub
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(source)
json.dump({"tokenizers": {"auto": [type(tokenizer).__name__, tokenizer(texts)["input_ids"]]}}, open(out, "w"))
"""


def load_in_fresh_process(script: str, source: str, tmp_path: Path, env: dict[str, str]) -> dict:
    """Run `script` on `source` in a new interpreter (stdin closed); its JSON result, output checked silent."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), source, str(out), json.dumps(TEXTS)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert PROMPT not in output, output[-4000:]
    assert MODEL_TYPE_WARNING not in output, output[-4000:]
    return json.loads(out.read_text())


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), TRANSFORMERS_VERBOSITY="warning", **extra)
    return env


def assert_same_tokenizer(result: dict, tokenizer) -> None:
    expected = [type(tokenizer).__name__, tokenizer(TEXTS)["input_ids"]]
    for name, got in result["tokenizers"].items():
        assert got == expected, name


@pytest.fixture(params=["save_model", "save_pretrained"])
def saved(request, tmp_path):
    """A tiny model and its tokenizer saved by `save_model`, or by the two plain `save_pretrained` calls."""
    model, tokenizer = tiny_model(), tiny_tokenizer()
    directory = tmp_path / "model"
    if request.param == "save_model":
        save_model(model, directory, tokenizer)
    else:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    assert json.loads((directory / "tokenizer_config.json").read_text())["tokenizer_class"] == "BertTokenizer"
    return directory, tokenizer


def test_tokenizer_loads_silently_without_mlclf_hub(saved, tmp_path):
    directory, tokenizer = saved
    result = load_in_fresh_process(WITHOUT_MLCLF_HUB, str(directory), tmp_path, fresh_env(tmp_path))
    assert result["model_module"].startswith("transformers_modules"), result["model_module"]
    assert_same_tokenizer(result, tokenizer)


def test_tokenizer_loads_silently_with_mlclf_hub_and_no_flag(saved, tmp_path):
    directory, tokenizer = saved
    result = load_in_fresh_process(WITH_MLCLF_HUB, str(directory), tmp_path, fresh_env(tmp_path))
    assert_same_tokenizer(result, tokenizer)


@pytest.mark.hub
def test_pushed_tokenizer_loads_silently(hub_env, tmp_path):
    model, tokenizer = tiny_model(), tiny_tokenizer()
    push_to_hub(model, "ns/tokenizer-loading", tokenizer=tokenizer, endpoint=hub_env.endpoint)
    env = fresh_env(tmp_path)  # hub_env: HF_ENDPOINT = the server, empty HF_HOME
    result = load_in_fresh_process(WITHOUT_MLCLF_HUB, "ns/tokenizer-loading", tmp_path, env)
    assert result["model_module"].startswith("transformers_modules"), result["model_module"]
    assert_same_tokenizer(result, tokenizer)
    (tmp_path / "result.json").unlink()
    assert_same_tokenizer(
        load_in_fresh_process(WITH_MLCLF_HUB, "ns/tokenizer-loading", tmp_path, env), tokenizer
    )
