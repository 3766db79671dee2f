"""Rewrite the generated field tables of the facade's docs page from `FIELD_NOTES`.

Usage: `python -m mlclf_hub.simple [PATH] [--check]` (PATH defaults to `docs/simpletransformers.md`; with
`--check` nothing is written and the exit status is 1 when the page is out of date).
"""

from __future__ import annotations

import argparse
import sys

from .args import update_docs


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        >>> import shutil, tempfile
        >>> from pathlib import Path
        >>> from mlclf_hub.simple.args import DOCS_BEGIN, DOCS_END
        >>> tmp_dir = tempfile.mkdtemp()
        >>> page = Path(tmp_dir) / "page.md"
        >>> _ = page.write_text(f"{DOCS_BEGIN}\\n{DOCS_END}\\n", encoding="utf-8")
        >>> main([str(page)])  # doctest: +ELLIPSIS
        /...page.md: rewritten
        0
        >>> main([str(page), "--check"])
        0
        >>> shutil.rmtree(tmp_dir)
    """
    parser = argparse.ArgumentParser(prog="python -m mlclf_hub.simple", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="docs/simpletransformers.md", help="the docs page")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the page is out of date"
    )
    options = parser.parse_args(argv)
    changed = update_docs(options.path, check=options.check)
    if changed:
        print(f"{options.path}: {'out of date' if options.check else 'rewritten'}")
    return int(changed and options.check)


if __name__ == "__main__":
    sys.exit(main())
