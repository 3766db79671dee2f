"""A griffe extension for the API reference: the project's `Example:` sections are read as `Examples:`.

The docstrings follow transformers and peft (`Example:` followed by `>>>` lines); griffe's Google parser
only turns `Examples:` sections into code, and reads anything else as Markdown (where `ds[0]["labels"]` is
a broken link). Only the section title is changed, at build time; the sources are not touched.
"""

from __future__ import annotations

import re

import griffe

EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section titles to `Examples:` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
