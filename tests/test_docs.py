"""Every Python code block of README.md and docs/*.md runs, in order, offline (the docs site's examples).

The rule a page follows:

- A fence opened with exactly ```` ```python ```` runs. The blocks of one page share one namespace, in
  order, as a reader would paste them; the blocks are cut out by `mktestdocs.grab_code_blocks`.
- A fence with more after the language (```` ```python title="Not run: ..." ````) is shown, not run, and its
  title must say why, starting "Not run:" (checked here), so the reason is on the rendered page.
- All pages run in the site's order in one working directory, as a reader following the site would:
  the model `docs/multilabel.md` trains and saves (`debtags-model/`) is what later pages load. Selecting
  a later page alone (`-k hub`) first runs the pages it needs.
- Every page runs with the local Hub server of `tests/hub_server.py` as `HF_ENDPOINT` (the `hub_env`
  fixture), so `push_to_hub(..., "you/my-model")` and `pipeline(model="you/my-model")` work offline;
  remote code is cached in the test's own directory.

A renamed or removed function or argument breaks the block that uses it, so this file fails when the docs
go stale. `test_api_reference_lists_every_public_name` checks the API page names all of `mlclf_hub.__all__`.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import time
from pathlib import Path

import pytest
from mktestdocs import grab_code_blocks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The site's order (mkdocs.yml's nav, README first); a page may use what an earlier one saved.
PAGES = [
    "README.md",
    "docs/index.md",
    "docs/multilabel.md",
    "docs/simpletransformers.md",
    "docs/from-simpletransformers.md",
    "docs/native.md",
    "docs/hub.md",
    "docs/adapters.md",
    "docs/cli.md",
    "docs/speed.md",
    "docs/bad-input.md",
    "docs/api.md",
]
# Pages whose blocks load what another page saved.
NEEDS = {page: ["docs/multilabel.md"] for page in ("docs/native.md", "docs/hub.md", "docs/cli.md")}
# Pages whose blocks train the real MiniLM (marked slow, like the other real-model tests).
TRAINS = {"README.md", "docs/multilabel.md", "docs/from-simpletransformers.md", "docs/adapters.md"}

FENCE = re.compile(r"^\s*```+\s*(?P<info>[^`]*)$")
NOT_RUN = re.compile(r'^python\s+title="Not run: [^"]+"$')


def python_fences(text: str) -> list[str]:
    """The info strings of every fence that opens a Python block (```` ```python ... ````), in order."""
    infos, inside = [], False
    for line in text.splitlines():
        match = FENCE.match(line)
        if match is None:
            continue
        if not inside and match.group("info").strip().split(" ")[0] in ("python", "py", "pycon"):
            infos.append(match.group("info").strip())
        inside = not inside
    return infos


def runnable_blocks(text: str) -> list[str]:
    """The blocks that run: fences opened with exactly ```` ```python ````."""
    return grab_code_blocks(text, lang="python")


def _marks(page: str) -> list:
    return [pytest.mark.slow] if page in TRAINS or page in NEEDS else []


_DONE: dict[str, list[float]] = {}


@pytest.fixture(scope="session")
def docs_dir(tmp_path_factory) -> Path:
    """The working directory every page runs in (what one page saves, the next one reads)."""
    return tmp_path_factory.mktemp("docs_run")


@pytest.fixture
def remote_code_cache(tmp_path, monkeypatch):
    """Remote code (`trust_remote_code=True`) goes to a temp dir, not the user's cache.

    transformers reads `HF_MODULES_CACHE` at import time, so the module constant is patched and the
    directory put on the import path (and on an already imported `transformers_modules` package's).
    """
    import transformers.dynamic_module_utils as dynamic

    cache = str(tmp_path / "modules")
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", cache)
    dynamic.init_hf_modules()
    package = sys.modules.get("transformers_modules")
    if package is not None:
        monkeypatch.setattr(
            package, "__path__", [*package.__path__, os.path.join(cache, "transformers_modules")]
        )
    yield cache
    if cache in sys.path:
        sys.path.remove(cache)
    # Modules imported from the temp dir go with it: a `transformers_modules` package first imported here
    # would otherwise keep only the temp dir on its path, and later tests' remote code would not be found.
    for name, module in list(sys.modules.items()):
        if name != "transformers_modules" and not name.startswith("transformers_modules."):
            continue
        if package is None or str(getattr(module, "__file__", "") or "").startswith(cache):
            del sys.modules[name]
    importlib.invalidate_caches()


def run_page(page: str, workdir: Path) -> list[float]:
    """Run the page's blocks in order in one namespace, in `workdir`; returns each block's seconds."""
    blocks = runnable_blocks((ROOT / page).read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__main__"}
    seconds = []
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        for number, source in enumerate(blocks, start=1):
            started = time.perf_counter()
            code = compile(source, f"{page} (python block {number} of {len(blocks)})", "exec")
            try:
                exec(code, namespace)
            except Exception as error:
                first = source.strip().splitlines()[0] if source.strip() else ""
                raise AssertionError(
                    f"{page}: python block {number} ({first!r}...) failed: {error!r}"
                ) from error
            seconds.append(time.perf_counter() - started)
    finally:
        os.chdir(previous)
    return seconds


def _report(page: str, seconds: list[float], capsys) -> None:
    """One line per page past pytest's capture, so the CI log says how many blocks ran and how long they took."""
    each = ", ".join(f"{s:.1f}" for s in seconds)
    with capsys.disabled():
        print(f"\n[docs] {page}: {len(seconds)} python blocks ran in {sum(seconds):.1f} s ({each})")


def test_every_page_is_covered():
    """README.md and each docs/*.md page are run here (a new page is added to PAGES)."""
    on_disk = {"README.md"} | {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert on_disk == set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_blocks_that_do_not_run_say_why(page):
    """Every Python fence is either plain ```` ```python ```` (runs) or titled "Not run: <why>"."""
    for info in python_fences((ROOT / page).read_text(encoding="utf-8")):
        assert info == "python" or NOT_RUN.match(info), (
            f'{page}: the fence "```{info}" neither runs (```python) nor says why not (```python title="Not run: ...")'
        )


def test_the_fence_rule_matches_mktestdocs():
    """What runs is what mktestdocs grabs: plain python fences only, titled ones left out."""
    text = '```python\nx = 1\n```\n\n```python title="Not run: needs a GPU"\nraise SystemExit\n```\n\n```bash\nls\n```\n'
    assert runnable_blocks(text) == ["x = 1\n"]
    assert python_fences(text) == ["python", 'python title="Not run: needs a GPU"']


@pytest.mark.hub
@pytest.mark.parametrize("page", [pytest.param(p, marks=_marks(p)) for p in PAGES])
def test_page_blocks_run(page, docs_dir, hub_env, remote_code_cache, capsys):
    """The page's Python blocks run in order, after the pages whose files they read."""
    for needed in NEEDS.get(page, []):
        if needed not in _DONE:
            _DONE[needed] = run_page(needed, docs_dir)
            _report(needed, _DONE[needed], capsys)
    _DONE[page] = run_page(page, docs_dir)
    _report(page, _DONE[page], capsys)
    assert len(_DONE[page]) == len(runnable_blocks((ROOT / page).read_text(encoding="utf-8")))


def test_api_reference_lists_every_public_name():
    """docs/api.md has a `::: module.Name` entry for every name in `mlclf_hub.__all__` (and each resolves)."""
    import importlib

    import mlclf_hub

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    entries = re.findall(r"^::: (\S+)$", text, re.MULTILINE)
    documented = {entry.rsplit(".", 1)[1] for entry in entries}
    missing = sorted(set(mlclf_hub.__all__) - documented - {"__version__"})
    assert not missing, f"docs/api.md lacks a ::: entry for {missing}"
    assert "__version__" in text
    for entry in entries:
        module, name = entry.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), f"docs/api.md: {entry} does not exist"
    for name in mlclf_hub.__all__:
        if name != "__version__":
            same = [e for e in entries if e.endswith("." + name)]
            module = importlib.import_module(same[0].rsplit(".", 1)[0])
            assert getattr(module, name) is getattr(mlclf_hub, name), (
                f"docs/api.md: {same[0]} is not mlclf_hub.{name}"
            )
