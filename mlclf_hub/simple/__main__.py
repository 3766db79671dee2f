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
        >>> main(["docs/simpletransformers.md", "--check"])  # doctest: +SKIP
        0
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
