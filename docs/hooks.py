"""mkdocs hooks: what the pages show that is generated at build time, never pasted.

`<!-- cli-help: ARGS -->` on a line of its own becomes a code block with the output of
`mlclf-hub ARGS --help` (run through `mlclf_hub.cli.main` in this process), and
`<!-- cli-help-every-command -->` one such section per command of `mlclf_hub.cli.COMMANDS`.
`<!-- model-card: PATH -->` becomes the model card at PATH (its front matter as YAML, then its text).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

EVERY_COMMAND = "<!-- cli-help-every-command -->"  # a section with the help of each of `cli.COMMANDS`
CLI_HELP = re.compile(r"^<!-- cli-help:(?P<args>[^>]*)-->$", re.MULTILINE)


def cli_help(args: list[str]) -> str:
    """The `--help` text of `mlclf-hub ARGS`, as the console script prints it."""
    from mlclf_hub.cli import main

    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: the same page on every machine
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*args, "--help"])
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    text = out.getvalue().rstrip()
    if not text:
        raise RuntimeError(f"mlclf-hub {' '.join(args)} --help printed nothing")
    return text


MODEL_CARD = re.compile(r"^<!-- model-card: (?P<path>\S+) -->$", re.MULTILINE)


def render_card(path: Path) -> str:
    """A saved model card for a page: its YAML front matter as a code block, then its Markdown one level down.

    The card's own headings start at `#`; they are pushed under the page's `##` so that they nest in its
    table of contents.
    """
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---\n(?P<yaml>.*?)\n---\n(?P<body>.*)$", text, re.DOTALL)
    if match is None:
        raise ValueError(f"{path}: no YAML front matter (--- ... ---) at the top; is it a model card?")
    body = re.sub(
        r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", match.group("body"), flags=re.MULTILINE
    )
    return f'```yaml title="{path.name}: front matter"\n{match.group("yaml")}\n```\n\n{body}'


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each `<!-- cli-help: ... -->` marker with the command's help text, each
    `<!-- model-card: PATH -->` with the card at PATH, and point `../` links at copies of the files."""

    def replace(match: re.Match) -> str:
        args = match.group("args").split()
        command = " ".join(["mlclf-hub", *args, "--help"])
        return f"```text\n$ {command}\n{cli_help(args)}\n```"

    if EVERY_COMMAND in markdown:
        from mlclf_hub.cli import COMMANDS

        sections = [f"## `mlclf-hub {command}`\n\n<!-- cli-help: {command} -->" for command in COMMANDS]
        markdown = markdown.replace(EVERY_COMMAND, "\n\n".join(sections))
    markdown = CLI_HELP.sub(replace, markdown)
    root = _repo_root(config)
    markdown = MODEL_CARD.sub(lambda m: render_card(root / m.group("path")), markdown)

    def relink(match: re.Match) -> str:
        path = match.group("path")
        if not (root / path).is_file() or path.startswith("docs/"):
            return match.group(0)  # left for mkdocs to validate
        return f"]({SOURCE_PREFIX}{path}{match.group('anchor') or ''})"

    return REPO_LINK.sub(relink, markdown)


# Links from a page to a file of the repository outside docs/ (`[test](../tests/test_cli.py)`): the file is
# copied into the site under `src/` and the link pointed at the copy, so it resolves and the reader can open it.
REPO_LINK = re.compile(r"\]\(\.\./(?P<path>[A-Za-z0-9_./-]+?)(?P<anchor>#[^)]*)?\)")
SOURCE_PREFIX = "src/"


def _repo_root(config) -> Path:
    return Path(config["docs_dir"]).resolve().parent


def on_files(files, config):
    """Add every repository file a page links to with `../` to the site, under `src/`."""
    from mkdocs.structure.files import File

    root = _repo_root(config)
    wanted: set[str] = set()
    for file in files.documentation_pages():
        text = Path(file.abs_src_path).read_text(encoding="utf-8")
        for match in REPO_LINK.finditer(text):
            path = match.group("path")
            if (root / path).is_file() and not path.startswith("docs/"):
                wanted.add(path)
    for path in sorted(wanted):
        files.append(File.generated(config, SOURCE_PREFIX + path, abs_src_path=str(root / path)))
    return files
