"""The local Hub-compatible server (tests/hub_server.py), driven by the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.conftest import HUB_TEST_TOKEN
from tests.hub_server import HubServer, git_blob_sha1

pytestmark = pytest.mark.hub

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_dummy_token_for_tests"
README = "---\nlicense: apache-2.0\ntags:\n- multi-label\n---\n# Tiny\n\nA test model card.\n"
BIG = bytes((i * 7919 + 13) % 251 for i in range(2_000_000))  # ~2 MB, deterministic


def make_folder(root: Path) -> Path:
    folder = root / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text(json.dumps({"a": 1}))
    (folder / "sub" / "notes.txt").write_text("first")
    (folder / "weights.bin").write_bytes(BIG)
    return folder


def api_for(server: HubServer, token: str | bool | None = TOKEN) -> HfApi:
    return HfApi(endpoint=server.endpoint, token=token)


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env if env is not None else os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"subprocess failed:\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}"
    return proc.stdout


def commit_posts(server: HubServer, repo_id: str) -> list[int | None]:
    return [
        s for m, p, s in server.request_log if m == "POST" and p.startswith(f"/api/models/{repo_id}/commit/")
    ]


def test_create_repo_exist_ok_conflict_and_token(hub_server):
    api = api_for(hub_server)
    url = api.create_repo("ns/first")
    assert url == f"{hub_server.endpoint}/ns/first"
    assert url.repo_id == "ns/first"
    assert hub_server.last_token == TOKEN
    # like the Hub, a new repo holds an initial commit with .gitattributes
    assert api.list_repo_files("ns/first") == [".gitattributes"]

    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo("ns/first")
    assert excinfo.value.response.status_code == 409
    assert api.create_repo("ns/first", exist_ok=True).repo_id == "ns/first"

    api.create_repo("ns/secret", private=True)
    assert hub_server.repos["ns/secret"].private is True
    assert api.model_info("ns/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        api_for(hub_server, token=False).model_info("ns/secret")
    assert api_for(hub_server, token=False).model_info("ns/first").private is False


def test_upload_folder_then_download(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/model")
    info = api.upload_folder(
        repo_id="ns/model", folder_path=make_folder(tmp_path), commit_message="add files"
    )
    assert ("POST", "/api/validate-yaml", 200) in hub_server.request_log  # README.md is validated first
    expected = [".gitattributes", "README.md", "config.json", "sub/notes.txt", "weights.bin"]
    assert sorted(api.list_repo_files("ns/model")) == expected
    assert info.oid == hub_server.head("ns/model")

    model = api.model_info("ns/model")
    assert model.id == "ns/model"
    assert model.sha == info.oid
    assert sorted(s.rfilename for s in model.siblings) == expected

    tree = {entry.path: entry for entry in api.list_repo_tree("ns/model")}
    assert set(tree) == {".gitattributes", "README.md", "config.json", "sub", "weights.bin"}
    assert tree["weights.bin"].size == len(BIG)
    assert tree["weights.bin"].blob_id == git_blob_sha1(BIG)
    assert tree["weights.bin"].lfs is None and tree["weights.bin"].xet_hash is None

    cache = tmp_path / "cache"
    path = hf_hub_download(
        "ns/model", "weights.bin", endpoint=hub_server.endpoint, cache_dir=cache, token=TOKEN
    )
    assert Path(path).read_bytes() == BIG
    assert info.oid in path  # stored under snapshots/<commit sha>
    readme = hf_hub_download("ns/model", "README.md", endpoint=hub_server.endpoint, cache_dir=cache)
    assert Path(readme).read_text() == README

    snap = Path(snapshot_download("ns/model", endpoint=hub_server.endpoint, cache_dir=tmp_path / "cache2"))
    assert snap.name == info.oid
    assert sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()) == expected
    assert (snap / "sub" / "notes.txt").read_text() == "first"
    assert (snap / "weights.bin").read_bytes() == BIG


def test_resolve_headers_avoid_xet_and_redirects(hub_server):
    hub_server.create_repo("ns/raw")
    sha = hub_server.head("ns/raw")
    url = f"{hub_server.endpoint}/ns/raw/resolve/main/.gitattributes"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as resp:
        assert resp.status == 200
        headers = resp.headers
    data = hub_server.files("ns/raw")[".gitattributes"]
    assert headers["X-Repo-Commit"] == sha
    assert headers["ETag"] == f'"{git_blob_sha1(data)}"'
    assert int(headers["Content-Length"]) == len(data)
    assert not [k for k in headers if k.lower().startswith("x-xet")] and "Link" not in headers

    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=2-5"})) as resp:
        assert resp.status == 206 and resp.read() == data[2:6]

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{hub_server.endpoint}/ns/raw/resolve/main/missing.txt")
    assert excinfo.value.code == 404
    assert excinfo.value.headers["X-Error-Code"] == "EntryNotFound"
    assert excinfo.value.headers["X-Repo-Commit"] == sha
    assert json.loads(excinfo.value.read())["error"]


def test_old_commit_sha_keeps_its_files(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/history")
    first = api.upload_folder(repo_id="ns/history", folder_path=make_folder(tmp_path)).oid
    second = api.create_commit(
        "ns/history",
        operations=[
            CommitOperationAdd(path_in_repo="sub/notes.txt", path_or_fileobj=b"second"),
            CommitOperationDelete(path_in_repo="config.json"),
        ],
        commit_message="second",
    ).oid
    assert second != first

    def get(name, revision):
        return Path(
            hf_hub_download(
                "ns/history", name, revision=revision, endpoint=hub_server.endpoint, cache_dir=tmp_path / "c"
            )
        ).read_bytes()

    assert get("sub/notes.txt", first) == b"first"
    assert get("sub/notes.txt", "main") == b"second"
    assert get("config.json", first) == b'{"a": 1}'
    with pytest.raises(RemoteEntryNotFoundError):
        get("config.json", second)
    assert "config.json" in api.list_repo_files("ns/history", revision=first)
    assert "config.json" not in api.list_repo_files("ns/history")
    assert api.model_info("ns/history", revision=first).sha == first
    assert [c.commit_id for c in api.list_repo_commits("ns/history")][:2] == [second, first]

    api.delete_folder("sub", repo_id="ns/history")
    assert not any(f.startswith("sub/") for f in api.list_repo_files("ns/history"))
    assert get("sub/notes.txt", first) == b"first"


def test_branch_created_then_uploaded_to(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/branchy")
    main_sha = api.upload_folder(repo_id="ns/branchy", folder_path=make_folder(tmp_path)).oid

    with pytest.raises(RevisionNotFoundError):  # like the Hub: committing needs an existing branch
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="ns/branchy", revision="dev")
    api.create_branch("ns/branchy", branch="dev")
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_branch("ns/branchy", branch="dev")
    assert excinfo.value.response.status_code == 409
    api.create_branch("ns/branchy", branch="dev", exist_ok=True)

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "dev_only.txt").write_text("dev")
    dev_sha = api.upload_folder(repo_id="ns/branchy", folder_path=extra, revision="dev").oid
    assert "dev_only.txt" in api.list_repo_files("ns/branchy", revision="dev")
    assert "weights.bin" in api.list_repo_files("ns/branchy", revision="dev")  # branched from main
    assert "dev_only.txt" not in api.list_repo_files("ns/branchy")
    assert hub_server.head("ns/branchy") == main_sha
    refs = {b.name: b.target_commit for b in api.list_repo_refs("ns/branchy").branches}
    assert refs == {"main": main_sha, "dev": dev_sha}
    path = hf_hub_download(
        "ns/branchy", "dev_only.txt", revision="dev", endpoint=hub_server.endpoint, cache_dir=tmp_path / "c"
    )
    assert Path(path).read_text() == "dev"


def test_missing_repo_file_and_revision_raise_hub_errors(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/exists")

    def download(repo_id, filename, revision=None):
        return hf_hub_download(
            repo_id, filename, revision=revision, endpoint=hub_server.endpoint, cache_dir=tmp_path / "c"
        )

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("ns/nope")
    with pytest.raises(RepositoryNotFoundError):
        download("ns/nope", "config.json")
    with pytest.raises(EntryNotFoundError) as excinfo:
        download("ns/exists", "missing.json")
    assert isinstance(excinfo.value, RemoteEntryNotFoundError)
    with pytest.raises(RevisionNotFoundError):
        download("ns/exists", ".gitattributes", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        download("ns/exists", ".gitattributes", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("ns/exists", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("ns/exists", path_in_repo="no/such/dir"))
    assert api.file_exists("ns/exists", ".gitattributes") and not api.file_exists("ns/exists", "x")
    assert api.repo_exists("ns/exists") and not api.repo_exists("ns/nope")


def test_commit_500_fails_create_commit_at_once_and_changes_nothing(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/flaky")
    before = hub_server.files("ns/flaky")
    hub_server.fail_next("commit_500")
    with pytest.raises(HfHubHTTPError) as excinfo:  # create_commit / upload_file do not retry the commit
        api.upload_file(path_or_fileobj=b"data", path_in_repo="a.txt", repo_id="ns/flaky")
    assert excinfo.value.response.status_code == 500
    assert hub_server.files("ns/flaky") == before
    api.upload_file(path_or_fileobj=b"data", path_in_repo="a.txt", repo_id="ns/flaky")
    assert hub_server.files("ns/flaky")["a.txt"] == b"data"


def test_upload_folder_retries_one_transient_commit_failure(hub_server, hub_fast_retry, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/retry")
    folder = make_folder(tmp_path)
    hub_server.fail_next("commit_500")
    hub_server.fail_next("drop_commit")
    api.upload_folder(repo_id="ns/retry", folder_path=folder)  # upload_folder's commit is retried (backoff)
    assert commit_posts(hub_server, "ns/retry") == [500, None, 200]
    assert hub_server.files("ns/retry")["weights.bin"] == BIG


@pytest.mark.parametrize("kind", ["commit_500", "drop_commit", "preupload_500"])
def test_persistent_failure_makes_upload_folder_raise_and_changes_nothing(
    hub_server, hub_fast_retry, tmp_path, kind
):
    api = api_for(hub_server)
    api.create_repo("ns/broken")
    before_sha = hub_server.head("ns/broken")
    before = hub_server.files("ns/broken")
    hub_server.fail_next(kind, count=None)
    with pytest.raises((HfHubHTTPError, httpx2.TransportError)) as excinfo:
        api.upload_folder(repo_id="ns/broken", folder_path=make_folder(tmp_path))
    if kind == "drop_commit":
        assert isinstance(excinfo.value, httpx2.RemoteProtocolError)
    else:
        assert excinfo.value.response.status_code == 500
    assert hub_server.head("ns/broken") == before_sha
    assert hub_server.files("ns/broken") == before
    assert api.list_repo_files("ns/broken") == [".gitattributes"]
    hub_server.clear_failures()
    api.upload_folder(repo_id="ns/broken", folder_path=make_folder(tmp_path / "again"))
    assert "weights.bin" in api.list_repo_files("ns/broken")


def test_stopped_server_gives_connection_errors(hub_server, hub_fast_retry, tmp_path):
    api = api_for(hub_server)
    api.create_repo("ns/down")
    hub_server.stop()
    with pytest.raises(httpx2.ConnectError):
        api.model_info("ns/down")  # not retried
    with pytest.raises(httpx2.ConnectError):
        api.list_repo_files("ns/down")  # retried with backoff, then re-raised
    with pytest.raises(httpx2.ConnectError):
        api.create_repo("ns/other")
    # downloads fall back to the (empty) cache
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download("ns/down", ".gitattributes", endpoint=hub_server.endpoint, cache_dir=tmp_path / "c")
    hub_server.start()  # same port, same store
    assert api.list_repo_files("ns/down") == [".gitattributes"]


def test_hub_env_redirects_this_process(hub_env, tmp_path):
    import huggingface_hub

    assert hub_env.endpoint == huggingface_hub.constants.ENDPOINT
    huggingface_hub.create_repo("ns/env")  # module-level function: the import-time HfApi, patched
    huggingface_hub.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="ns/env")
    assert hub_env.last_token == HUB_TEST_TOKEN  # HF_TOKEN from the environment
    path = hf_hub_download("ns/env", "hello.txt")  # no endpoint=, no cache_dir=
    assert Path(path).read_bytes() == b"hello"
    assert Path(path).is_relative_to(os.environ["HF_HUB_CACHE"])
    assert HfApi().list_repo_files("ns/env") == [".gitattributes", "hello.txt"]


def test_fresh_process_snapshot_and_hf_hub_download(hub_env, tmp_path):
    api = api_for(hub_env)
    api.create_repo("ns/fresh")
    sha = api.upload_folder(repo_id="ns/fresh", folder_path=make_folder(tmp_path)).oid
    out = run_python(
        """
        import json, os
        from huggingface_hub import constants, hf_hub_download, snapshot_download
        snap = snapshot_download("ns/fresh")
        one = hf_hub_download("ns/fresh", "sub/notes.txt")
        print(json.dumps({"endpoint": constants.ENDPOINT, "snap": snap, "one": one,
                          "files": sorted(os.path.relpath(os.path.join(d, f), snap)
                                          for d, _, fs in os.walk(snap) for f in fs)}))
        """
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["endpoint"] == hub_env.endpoint
    home = os.environ["HF_HOME"]
    assert result["snap"].startswith(home) and result["snap"].endswith(sha)
    assert result["files"] == [".gitattributes", "README.md", "config.json", "sub/notes.txt", "weights.bin"]
    assert Path(result["one"]).read_text() == "first"
    assert (Path(result["snap"]) / "weights.bin").read_bytes() == BIG
    assert hub_env.last_token == HUB_TEST_TOKEN


def test_transformers_tiny_bert_roundtrip(hub_env, tmp_path):
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    input_ids = torch.tensor([[1, 5, 17, 42, 98, 3]])

    def tiny(seed):
        torch.manual_seed(seed)
        model = BertModel(config).eval()
        with torch.no_grad():
            return model, model(input_ids=input_ids).last_hidden_state.numpy()

    model, expected = tiny(0)
    model.save_pretrained(tmp_path / "tiny")
    api = api_for(hub_env)
    api.create_repo("ns/tiny")
    api.upload_folder(repo_id="ns/tiny", folder_path=tmp_path / "tiny")
    assert "model.safetensors" in api.list_repo_files("ns/tiny")

    # in-process push_to_hub to a branch (transformers creates it with create_branch(exist_ok=True))
    dev_model, dev_expected = tiny(1)
    dev_model.push_to_hub("ns/tiny", revision="dev")
    assert "model.safetensors" in api.list_repo_files("ns/tiny", revision="dev")

    out_main, out_dev = tmp_path / "main.npy", tmp_path / "dev.npy"
    run_python(
        f"""
        import numpy as np, torch
        from transformers import AutoModel
        ids = torch.tensor({input_ids.tolist()})
        for revision, out in (("main", {str(out_main)!r}), ("dev", {str(out_dev)!r})):
            model = AutoModel.from_pretrained("ns/tiny", revision=revision).eval()
            with torch.no_grad():
                np.save(out, model(input_ids=ids).last_hidden_state.numpy())
        """,
        timeout=180,
    )
    np.testing.assert_allclose(np.load(out_main), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(out_dev), dev_expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, dev_expected)


def test_command_line_runs_in_foreground(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hub_server", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{endpoint}/api/models/ns/none")
        assert excinfo.value.headers["X-Error-Code"] == "RepoNotFound"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
