"""A small local Hugging Face Hub-compatible HTTP server for the test-suite (stdlib only).

It speaks enough of the Hub's HTTP API for the real ``huggingface_hub`` client (checked with 2.4.0, ``hf_xet``
installed) and ``transformers`` to create repos, upload (``upload_folder``, ``create_commit``, ``push_to_hub``)
and download (``hf_hub_download``, ``snapshot_download``, ``from_pretrained``) model repos, all in memory.

In tests (see ``tests/conftest.py`` for the ``hub_server`` / ``hub_env`` fixtures)::

    with HubServer() as server:                      # 127.0.0.1, free port, daemon thread
        api = HfApi(endpoint=server.endpoint, token="dummy")
        api.create_repo("ns/tiny")
        api.upload_folder(repo_id="ns/tiny", folder_path="out/")

By hand (foreground, Ctrl-C to stop)::

    python -m tests.hub_server --port 8765
    HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=dummy HF_HOME=/tmp/hf-empty python -c "
    from huggingface_hub import HfApi, hf_hub_download
    api = HfApi()
    api.create_repo('ns/demo', exist_ok=True)
    api.upload_file(path_or_fileobj=b'hello', path_in_repo='a.txt', repo_id='ns/demo')
    print(open(hf_hub_download('ns/demo', 'a.txt')).read())"

``HF_ENDPOINT`` is read by ``huggingface_hub`` when it is imported, so it must be set before the process starts
(or, in-process, pass ``endpoint=`` explicitly / patch ``huggingface_hub.constants``: see ``tests/conftest.py``).

What it models
--------------
* Model repos only, namespaced ids ``ns/name`` (``create_repo("name")`` without a namespace lands in the
  ``test-user`` namespace, the name ``whoami`` returns). Only ``/api/models/...`` API paths are served; other repo
  types answer 404 ``RepoNotFound``.
* Like the real Hub, a new repo has an initial commit holding a ``.gitattributes`` file on branch ``main``.
* Every commit keeps a full snapshot of the files, so an old commit sha still resolves to its files. A revision
  is a branch name, a tag name or a full 40-hex commit sha. Branches come from ``create_branch`` (``POST
  /api/models/{repo}/branch/{branch}``); committing to an unknown branch answers 404 ``RevisionNotFound``
  (as the Hub does): create the branch first.
* Files are always uploaded as ``"regular"`` (base64 inside the NDJSON commit): the preupload answer never says
  ``"lfs"``, and no response carries ``X-Xet-*`` headers, ``Link: rel="xet-auth"`` or ``xetHash``, so the client
  never tries Xet (which would fail: there are no Xet routes). ``lfsFile`` commit lines are refused with 400.
* ``deletedFile`` / ``deletedFolder`` commit lines are supported; ``parentCommit`` is ignored.
* Pull requests, as ``upload_folder(create_pr=True)`` makes them: ``POST /api/models/{repo}/discussions``
  (``pullRequest: true``) opens ``refs/pr/N`` on main's head and answers ``{"num"}``, ``GET
  .../discussions/{N}`` gives the details the client parses, and commits to ``refs/pr/N`` move that ref only
  (main stays); ``refs/pr/N`` resolves for downloads. A commit with ``?create_pr=1`` opens one the same way.
* The ``private`` flag is stored; a private repo answers 401 ``RepoNotFound`` to requests without an
  ``Authorization`` header. Any token is accepted; the last one seen is ``server.last_token`` and every
  request is appended to ``server.request_log`` as ``(method, path, status)`` (status ``None`` when dropped).
* Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), an
  ``X-Error-Message`` header and a JSON ``{"error": ...}`` body, which ``huggingface_hub`` turns into
  ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError``.
* Resolve answers never redirect (the client would follow it and miss ``X-Repo-Commit``); they honour ``Range``.

Failure injection
-----------------
``server.fail_next(kind, count=1)`` makes the next ``count`` matching requests fail (``count=None``: every one
until ``server.clear_failures()``):

* ``"commit_500"``: the commit route answers 500 with ``{"error": ...}``; nothing is committed.
* ``"drop_commit"``: the commit route reads the request, then closes the connection without answering; nothing
  is committed. The client sees ``httpx2.RemoteProtocolError`` ("Server disconnected without sending a
  response"), a transport error, not an ``HfHubHTTPError``.
* ``"preupload_500"``: the preupload route answers 500.

Mind the client's retries (huggingface_hub 2.4.0): ``http_backoff`` retries 408/429/5xx and transport errors
5 times, sleeping 1, 2, 4, 8, 8 s (6 attempts, ~23 s). Retried: preupload (always), the commit of
``upload_folder`` (with ``hf_xet`` installed it goes through the pipelined uploader, ``retry_on_error=True``),
tree listings and HEAD on resolve. Not retried: the commit of ``create_commit`` / ``upload_file`` /
transformers' ``push_to_hub`` and ``model_info``. So ``fail_next("commit_500")`` with ``count=1`` makes
``upload_file`` raise ``HfHubHTTPError`` at once but is absorbed by ``upload_folder`` (1 s later it succeeds);
to make ``upload_folder`` fail, use ``count=None`` (or >= 6) and neutralise the backoff sleeps (the
``hub_fast_retry`` fixture in ``tests/conftest.py``).

Server down: ``server.stop()`` closes the listening socket and every open keep-alive connection, so the next
client call gets "connection refused" (``httpx2.ConnectError``; ``hf_hub_download`` / ``snapshot_download``
fall back to the local cache and raise ``LocalEntryNotFoundError`` when it is empty). ``server.start()`` again
re-binds the same port and keeps the stored repos.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import re
import signal
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FAILURE_KINDS", "HubServer", "git_blob_sha1"]

FAILURE_KINDS = ("commit_500", "drop_commit", "preupload_500")
DEFAULT_USER = "test-user"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")

_GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub returns as ``oid`` / ``ETag`` for regular files)."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Commit:
    __slots__ = ("date", "files", "message", "oid", "parent", "title")

    def __init__(self, oid: str, parent: str | None, title: str, message: str, files: dict[str, bytes]):
        self.oid = oid
        self.parent = parent
        self.title = title
        self.message = message
        self.date = _now()
        self.files = files  # full snapshot: path -> bytes


class _Repo:
    def __init__(self, repo_id: str, private: bool):
        self.id = repo_id
        self.private = private
        self.created_at = _now()
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.pulls: dict[str, str] = {}  # "refs/pr/N" -> commit sha (create_pr=True commits)
        self.pull_titles: dict[int, str] = {}
        self.commits: dict[str, _Commit] = {}

    def resolve(self, revision: str) -> str | None:
        if revision.startswith("refs/heads/"):
            revision = revision[len("refs/heads/") :]
        elif revision.startswith("refs/tags/"):
            revision = revision[len("refs/tags/") :]
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision in self.pulls:
            return self.pulls[revision]
        if _SHA_RE.match(revision) and revision in self.commits:
            return revision
        return None


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit


class _Dropped(Exception):
    """Raised to close the connection without answering."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, hub: HubServer):
        self.hub = hub
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/0.1"
    server: _HTTPServer

    # -- plumbing ------------------------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        with self.server.conn_lock:
            self.server.open_connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format, *args):
        """Silence the default stderr access log (see ``HubServer.request_log``)."""

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        hub = self.server.hub
        self.body = self._read_body()
        auth = self.headers.get("Authorization")
        self.token = None
        if auth:
            self.token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
            hub.last_token = self.token
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        # split on the raw path so that %2F inside a segment (quoted revision / path) stays inside it
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        self.log_path = split.path
        try:
            hub._dispatch(self, method, segments)
        except _Dropped:
            self._log(None)  # logged before the connection closes, like every answer below
            self.close_connection = True
        except _HubError as e:
            self._send_error(e)
        except Exception as e:  # pragma: no cover - server bug: report it to the client and on stderr
            traceback.print_exc()
            self._send_error(_HubError(500, f"Internal server error: {e!r}"))

    def _log(self, status: int | None) -> None:
        hub = self.server.hub
        with hub._lock:
            hub.request_log.append((self.command, self.log_path, status))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, ctype=None) -> int:
        self._log(status)  # before answering: a client that got its answer always finds it in the log
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        return status

    def send_json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> int:
        return self._send(status, json.dumps(obj).encode(), headers, ctype="application/json; charset=utf-8")

    def _send_error(self, e: _HubError) -> None:
        headers = {"X-Error-Message": e.message.encode("ascii", "replace").decode()}
        if e.code:
            headers["X-Error-Code"] = e.code
        if e.commit:
            headers["X-Repo-Commit"] = e.commit
        self.send_json({"error": e.message}, status=e.status, headers=headers)

    def json_body(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise _HubError(400, f"Invalid JSON body: {e}") from e

    @property
    def base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.hub.endpoint[len('http://') :]}"


class HubServer:
    """In-memory Hub-compatible server. ``HubServer(host="127.0.0.1", port=0)``; ``start()`` / ``stop()``.

    ``endpoint`` is ``http://HOST:PORT`` once started (port 0 picks a free port, kept across restarts).
    Use as a context manager to start and stop it. See the module docstring for the routes and failure kinds.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.repos: dict[str, _Repo] = {}
        self.last_token: str | None = None
        self.request_log: list[tuple[str, str, int | None]] = []
        self._failures: dict[str, int] = {}  # kind -> requests left to fail (-1: all)
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if not self.port:
            raise RuntimeError("HubServer is not started yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="HubServer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the listening socket and all open (keep-alive) connections are closed."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.conn_lock:
            conns = list(httpd.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Start and block until KeyboardInterrupt (used by ``python -m tests.hub_server``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- failure injection -------------------------------------------------------------------------------------
    def fail_next(self, kind: str, count: int | None = 1) -> None:
        """Make the next ``count`` requests of ``kind`` (one of ``FAILURE_KINDS``) fail; ``None``: all of them."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"Unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
        with self._lock:
            if count is None:
                self._failures[kind] = -1
            elif self._failures.get(kind, 0) >= 0:
                self._failures[kind] = self._failures.get(kind, 0) + count

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _take_failure(self, kind: str) -> bool:
        with self._lock:
            left = self._failures.get(kind, 0)
            if left > 0:
                self._failures[kind] = left - 1
            return left != 0

    # -- store helpers (also handy in tests) -------------------------------------------------------------------
    def create_repo(self, repo_id: str, private: bool = False) -> None:
        """Create a repo directly in the store (initial commit with ``.gitattributes`` on ``main``)."""
        with self._lock:
            if repo_id in self.repos:
                raise ValueError(f"{repo_id} exists")
            repo = _Repo(repo_id, private)
            commit = self._new_commit(repo, None, "initial commit", "", {".gitattributes": _GITATTRIBUTES})
            repo.branches["main"] = commit.oid
            self.repos[repo_id] = repo

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """A copy of the files of ``repo_id`` at ``revision`` (branch, tag or commit sha)."""
        with self._lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            if sha is None:
                raise KeyError(revision)
            return dict(repo.commits[sha].files)

    def head(self, repo_id: str, branch: str = "main") -> str:
        with self._lock:
            return self.repos[repo_id].branches[branch]

    def _new_commit(self, repo: _Repo, parent: str | None, title: str, message: str, files) -> _Commit:
        h = hashlib.sha1()
        h.update(f"{repo.id}\n{parent}\n{title}\n{message}\n{next(self._counter)}\n".encode())
        for path in sorted(files):
            h.update(f"{path}\0{git_blob_sha1(files[path])}\n".encode())
        commit = _Commit(h.hexdigest(), parent, title, message, files)
        repo.commits[commit.oid] = commit
        return commit

    # -- routing -----------------------------------------------------------------------------------------------
    def _dispatch(self, req: _Handler, method: str, seg: list[str]) -> int:
        if seg and seg[-1] == "" and len(seg) > 1:
            seg = seg[:-1]
        if seg[:1] == ["api"]:
            return self._dispatch_api(req, method, seg[1:])
        # /{ns}/{name}/resolve/{rev}/{path...}
        if len(seg) >= 5 and seg[2] in ("resolve", "raw") and method in ("GET", "HEAD"):
            return self._resolve_file(req, f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        raise _HubError(404, f"Route not found: {method} {req.path}")

    def _dispatch_api(self, req: _Handler, method: str, seg: list[str]) -> int:
        if seg == ["whoami-v2"] and method == "GET":
            if not req.token:
                raise _HubError(401, "Invalid credentials in Authorization header")
            return req.send_json(
                {
                    "type": "user",
                    "id": "0" * 24,
                    "name": DEFAULT_USER,
                    "fullname": "Test User",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                }
            )
        if seg == ["validate-yaml"] and method == "POST":
            return req.send_json({"errors": [], "warnings": []})
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(req)
        if seg == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(req)
        if seg == ["models"] and method == "GET":
            return self._list_models(req)
        if seg[:1] != ["models"]:
            if seg[:1] in (["datasets"], ["spaces"], ["kernels"]):
                raise _HubError(404, "Only model repos are served by this test server", "RepoNotFound")
            raise _HubError(404, f"Route not found: {method} {req.path}")
        if len(seg) < 3:
            raise _HubError(404, "Repository not found (use a namespaced id ns/name)", "RepoNotFound")
        repo_id = f"{seg[1]}/{seg[2]}"
        rest = seg[3:]
        action = rest[0] if rest else None
        arg = "/".join(rest[1:]) if len(rest) > 1 else None
        if action is None and method == "GET":
            return self._model_info(req, repo_id, "main")
        if action == "revision" and method == "GET" and arg:
            return self._model_info(req, repo_id, arg)
        if action == "tree" and method == "GET" and len(rest) >= 2:
            return self._tree(req, repo_id, rest[1], "/".join(rest[2:]))
        if action == "paths-info" and method == "POST" and arg:
            return self._paths_info(req, repo_id, arg)
        if action == "refs" and method == "GET":
            return self._refs(req, repo_id)
        if action == "commits" and method == "GET" and arg:
            return self._commits(req, repo_id, arg)
        if action == "preupload" and method == "POST" and arg:
            return self._preupload(req, repo_id, arg)
        if action == "commit" and method == "POST" and arg:
            return self._commit(req, repo_id, arg)
        if action == "branch" and arg and method in ("POST", "DELETE"):
            return self._branch(req, repo_id, arg, method)
        if action == "tag" and arg and method in ("POST", "DELETE"):
            return self._tag(req, repo_id, arg, method)
        if action == "settings" and method == "PUT":
            return self._settings(req, repo_id)
        if action == "discussions" and method == "POST" and arg is None:
            return self._open_discussion(req, repo_id)
        if action == "discussions" and method == "GET" and arg and arg.isdigit():
            return self._discussion(req, repo_id, int(arg))
        raise _HubError(404, f"Route not found: {method} {req.path}")

    # -- pull requests (what upload_folder(create_pr=True) needs) ---------------------------------------------
    def _open_discussion(self, req: _Handler, repo_id: str) -> int:
        payload = req.json_body()
        if not payload.get("pullRequest"):
            raise _HubError(400, "Only pull requests are supported by the local test server")
        with self._lock:
            repo, base = self._get_commit(req, repo_id, "main")
            number = len(repo.pulls) + 1
            repo.pulls[f"refs/pr/{number}"] = base.oid  # opened on main's head; commits go to refs/pr/N
            repo.pull_titles[number] = str(payload.get("title") or "")
        return req.send_json({"num": number, "url": f"{req.base_url}/{repo_id}/discussions/{number}"})

    def _discussion(self, req: _Handler, repo_id: str, number: int) -> int:
        with self._lock:
            repo = self._get_repo(req, repo_id)
            if f"refs/pr/{number}" not in repo.pulls:
                raise _HubError(404, f"Discussion {number} not found")
            title = repo.pull_titles.get(number, "")
        return req.send_json(
            {
                "num": number,
                "title": title,
                "status": "open",
                "author": {"name": DEFAULT_USER},
                "createdAt": repo.created_at,
                "repo": {"name": repo_id, "type": "model"},
                "isPullRequest": True,
                "events": [],
                "changes": {"base": "refs/heads/main"},
                "filesWithConflicts": [],
                "diff": "",
            }
        )

    # -- repo lookup -------------------------------------------------------------------------------------------
    def _get_repo(self, req: _Handler, repo_id: str) -> _Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        if repo.private and not req.token:
            raise _HubError(401, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def _get_commit(self, req: _Handler, repo_id: str, revision: str) -> tuple[_Repo, _Commit]:
        repo = self._get_repo(req, repo_id)
        sha = repo.resolve(revision)
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, repo.commits[sha]

    # -- repos -------------------------------------------------------------------------------------------------
    def _create_repo(self, req: _Handler) -> int:
        payload = req.json_body()
        name = payload.get("name")
        if not name:
            raise _HubError(400, "Missing repo name")
        if payload.get("type") not in (None, "model"):
            raise _HubError(400, "Only model repos are supported by this test server")
        namespace = payload.get("organization") or DEFAULT_USER
        repo_id = f"{namespace}/{name}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        url = f"{req.base_url}/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                return req.send_json({"error": "You already created this model repo", "url": url}, status=409)
            self.create_repo(repo_id, private=private)
        return req.send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, req: _Handler) -> int:
        payload = req.json_body()
        repo_id = f"{payload.get('organization') or DEFAULT_USER}/{payload.get('name')}"
        with self._lock:
            self._get_repo(req, repo_id)
            del self.repos[repo_id]
        return req.send_json({})

    def _settings(self, req: _Handler, repo_id: str) -> int:
        payload = req.json_body()
        with self._lock:
            repo = self._get_repo(req, repo_id)
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "visibility" in payload:
                repo.private = payload["visibility"] == "private"
        return req.send_json({"private": repo.private})

    def _info_json(self, req: _Handler, repo: _Repo, commit: _Commit) -> dict:
        ns = repo.id.split("/")[0]
        return {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "modelId": repo.id,
            "author": ns,
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [
                {"rfilename": p, "size": len(commit.files[p]), "blobId": git_blob_sha1(commit.files[p])}
                for p in sorted(commit.files)
            ],
            "spaces": [],
            "usedStorage": sum(len(v) for v in commit.files.values()),
        }

    def _model_info(self, req: _Handler, repo_id: str, revision: str) -> int:
        with self._lock:
            repo, commit = self._get_commit(req, repo_id, revision)
            return req.send_json(self._info_json(req, repo, commit))

    def _list_models(self, req: _Handler) -> int:
        author = (req.query.get("author") or [None])[0]
        search = (req.query.get("search") or [None])[0]
        with self._lock:
            out = []
            for repo in self.repos.values():
                if repo.private and not req.token:
                    continue
                if author and repo.id.split("/")[0] != author:
                    continue
                if search and search not in repo.id:
                    continue
                commit = repo.commits[repo.branches["main"]] if "main" in repo.branches else None
                if commit is not None:
                    out.append(self._info_json(req, repo, commit))
        return req.send_json(out)

    # -- listing -----------------------------------------------------------------------------------------------
    @staticmethod
    def _entries(commit: _Commit, prefix: str, recursive: bool) -> list[dict] | None:
        prefix = prefix.strip("/")
        files = commit.files
        if prefix and prefix in files:
            data = files[prefix]
            return [{"type": "file", "path": prefix, "size": len(data), "oid": git_blob_sha1(data)}]
        base = prefix + "/" if prefix else ""
        under = sorted(p for p in files if p.startswith(base))
        if prefix and not under:
            return None
        out: list[dict] = []
        dirs: dict[str, list[str]] = {}
        for path in under:
            rel = path[len(base) :]
            parts = rel.split("/")
            # directories between `prefix` and the file
            for i in range(1, len(parts)):
                if not recursive and i > 1:
                    break
                d = base + "/".join(parts[:i])
                dirs.setdefault(d, []).append(path)
            if recursive or len(parts) == 1:
                out.append(
                    {
                        "type": "file",
                        "path": path,
                        "size": len(files[path]),
                        "oid": git_blob_sha1(files[path]),
                    }
                )
        for d, members in dirs.items():
            oid = hashlib.sha1(
                "\n".join(f"{m}:{git_blob_sha1(files[m])}" for m in members).encode()
            ).hexdigest()
            out.append({"type": "directory", "path": d, "size": 0, "oid": oid})
        out.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        return out

    def _tree(self, req: _Handler, repo_id: str, revision: str, path: str) -> int:
        recursive = (req.query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        with self._lock:
            _, commit = self._get_commit(req, repo_id, revision)
            entries = self._entries(commit, path, recursive)
            if entries is None:
                raise _HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=commit.oid)
            return req.send_json(entries)

    def _paths_info(self, req: _Handler, repo_id: str, revision: str) -> int:
        ctype = req.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = req.json_body().get("paths", [])
        else:
            paths = parse_qs(req.body.decode()).get("paths", [])
        with self._lock:
            _, commit = self._get_commit(req, repo_id, revision)
            out = []
            for p in paths:
                p = p.strip("/")
                if p in commit.files:
                    out.append(
                        {
                            "type": "file",
                            "path": p,
                            "size": len(commit.files[p]),
                            "oid": git_blob_sha1(commit.files[p]),
                        }
                    )
                elif any(f.startswith(p + "/") for f in commit.files):
                    out.append(
                        {
                            "type": "directory",
                            "path": p,
                            "size": 0,
                            "oid": hashlib.sha1(p.encode()).hexdigest(),
                        }
                    )
            return req.send_json(out)

    def _refs(self, req: _Handler, repo_id: str) -> int:
        with self._lock:
            repo = self._get_repo(req, repo_id)
            return req.send_json(
                {
                    "branches": [
                        {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                        for b, s in repo.branches.items()
                    ],
                    "tags": [
                        {"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in repo.tags.items()
                    ],
                    "converts": [],
                }
            )

    def _commits(self, req: _Handler, repo_id: str, revision: str) -> int:
        with self._lock:
            repo, commit = self._get_commit(req, repo_id, revision)
            out = []
            cur: _Commit | None = commit
            while cur is not None:
                out.append(
                    {
                        "id": cur.oid,
                        "title": cur.title,
                        "message": cur.message,
                        "authors": [{"user": DEFAULT_USER}],
                        "date": cur.date,
                    }
                )
                cur = repo.commits.get(cur.parent) if cur.parent else None
            return req.send_json(out)

    # -- refs --------------------------------------------------------------------------------------------------
    def _branch(self, req: _Handler, repo_id: str, branch: str, method: str) -> int:
        with self._lock:
            repo = self._get_repo(req, repo_id)
            if method == "DELETE":
                if branch not in repo.branches:
                    raise _HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                if branch == "main":
                    raise _HubError(403, "Cannot delete the main branch")
                del repo.branches[branch]
                return req.send_json({})
            if branch in repo.branches:
                raise _HubError(409, f"Reference already exists: refs/heads/{branch}")
            if branch.startswith("refs/") or _SHA_RE.match(branch):
                raise _HubError(400, f"Invalid reference for a branch: {branch}")
            start = req.json_body().get("startingPoint") or "main"
            sha = repo.resolve(start)
            if sha is None:
                raise _HubError(404, f"Invalid rev id: {start}", "RevisionNotFound")
            repo.branches[branch] = sha
            return req.send_json({})

    def _tag(self, req: _Handler, repo_id: str, arg: str, method: str) -> int:
        with self._lock:
            repo = self._get_repo(req, repo_id)
            if method == "DELETE":
                if arg not in repo.tags:
                    raise _HubError(404, f"Invalid rev id: {arg}", "RevisionNotFound")
                del repo.tags[arg]
                return req.send_json({})
            tag = req.json_body().get("tag")
            if not tag:
                raise _HubError(400, "Missing tag name")
            if tag in repo.tags:
                raise _HubError(409, f"Reference already exists: refs/tags/{tag}")
            sha = repo.resolve(arg)
            if sha is None:
                raise _HubError(404, f"Invalid rev id: {arg}", "RevisionNotFound")
            repo.tags[tag] = sha
            return req.send_json({})

    # -- upload ------------------------------------------------------------------------------------------------
    @staticmethod
    def _wants_pr(req: _Handler) -> bool:
        return (req.query.get("create_pr") or ["0"])[0] not in ("0", "false", "")

    def _preupload(self, req: _Handler, repo_id: str, revision: str) -> int:
        if self._take_failure("preupload_500"):
            raise _HubError(500, "Injected failure: preupload_500")
        payload = req.json_body()
        with self._lock:
            _, commit = self._get_commit(req, repo_id, revision)
            out = []
            for f in payload.get("files", []):
                path = f["path"]
                existing = commit.files.get(path)
                out.append(
                    {
                        "path": path,
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": git_blob_sha1(existing) if existing is not None else None,
                    }
                )
            return req.send_json({"files": out, "commitOid": commit.oid})

    def _commit(self, req: _Handler, repo_id: str, revision: str) -> int:
        if self._take_failure("commit_500"):
            raise _HubError(500, "Injected failure: commit_500")
        if self._take_failure("drop_commit"):
            raise _Dropped()
        create_pr = self._wants_pr(req)
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x.get("key") == "header"), {})
        with self._lock:
            repo, parent = self._get_commit(req, repo_id, revision)
            branch = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
            if branch not in repo.branches and branch not in repo.pulls:
                raise _HubError(400, f"Can only commit to a branch or a pull request, not to {revision!r}")
            files = dict(parent.files)
            for item in lines:
                key, value = item.get("key"), item.get("value") or {}
                path = str(value.get("path", "")).strip("/") if key != "header" else ""
                if key == "header":
                    continue
                if key in ("file", "lfsFile", "deletedFile", "deletedFolder") and (
                    not path or ".." in path.split("/")
                ):
                    raise _HubError(400, f"Invalid path: {value.get('path')!r}")
                if key == "file":
                    enc = value.get("encoding", "utf-8")
                    content = value.get("content", "")
                    files[path] = base64.b64decode(content) if enc == "base64" else content.encode()
                elif key == "deletedFile":
                    if path not in files:
                        raise _HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    victims = [p for p in files if p.startswith(path + "/")]
                    if not victims:
                        raise _HubError(
                            404, f"A folder with this name doesn't exist: {path}", "EntryNotFound"
                        )
                    for p in victims:
                        del files[p]
                elif key == "lfsFile":
                    raise _HubError(400, "LFS files are not supported by the local test server (use regular)")
                else:
                    raise _HubError(400, f"Unknown commit operation {key!r}")
            commit = self._new_commit(
                repo, parent.oid, header.get("summary") or "", header.get("description") or "", files
            )
            pr_url = None
            if create_pr:  # a pull request: the commit goes to refs/pr/N, the branch stays where it was
                number = len(repo.pulls) + 1
                repo.pulls[f"refs/pr/{number}"] = commit.oid
                pr_url = f"{req.base_url}/{repo_id}/discussions/{number}"
            elif branch in repo.pulls:
                repo.pulls[branch] = commit.oid
                pr_url = f"{req.base_url}/{repo_id}/discussions/{branch.rsplit('/', 1)[-1]}"
            else:
                repo.branches[branch] = commit.oid
        return req.send_json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{req.base_url}/{repo_id}/commit/{commit.oid}",
                "pullRequestUrl": pr_url,
            }
        )

    # -- download ----------------------------------------------------------------------------------------------
    def _resolve_file(self, req: _Handler, repo_id: str, revision: str, path: str) -> int:
        with self._lock:
            _, commit = self._get_commit(req, repo_id, revision)
            data = commit.files.get(path)
        if data is None:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=commit.oid)
        etag = git_blob_sha1(data)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        status = 200
        rng = req.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            total = len(data)
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            else:
                start, end = max(total - int(m.group(2)), 0), total - 1
            if start >= total or start > end:
                headers["Content-Range"] = f"bytes */{total}"
                return req._send(416, b"", headers)
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            data, status = data[start : end + 1], 206
        return req._send(status, data, headers, ctype="application/octet-stream")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the local Hub-compatible test server in the foreground."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on `kill` too
    server = HubServer(host=args.host, port=args.port).start()
    print(server.endpoint, flush=True)
    print(f"export HF_ENDPOINT={server.endpoint}   # Ctrl-C to stop", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
