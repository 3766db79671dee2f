"""Run a Python script in a fresh interpreter (a clean process, as a user without mlclf_hub has one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(script: str, *argv: str, cwd: str | Path, env: dict[str, str], timeout: int = 300) -> str:
    """Run `script` (dedented) with `argv` in a new interpreter; assert it exits 0 and return its stdout.

    Example:
        >>> import os
        >>> run_python("import sys; print(sys.argv[1])", "hi", cwd=".", env=dict(os.environ)).strip()
        'hi'
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout
