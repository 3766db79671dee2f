"""Regenerate the debtags sample shipped in ``mlclf_hub/sample_data/``.

The sample is reproducible byte for byte: rows are drawn with ``random.Random(0)`` and the
gzip files are written at level 9 with ``mtime=0`` in the header (reproducible bytes).

- ``debtags_train.jsonl.gz``: ``random.Random(0).sample(train_rows, 3000)``.
- ``debtags_validation.jsonl.gz``: the first 1000 rows of
  ``random.Random(0).sample(validation_rows, len(validation_rows))``.
- ``labels.txt``: copied unchanged.

Example:
    >>> # from the repository root
    >>> # python benchmarks/make_sample.py --data-dir ../shared/data/debtags
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".." / "shared" / "data" / "debtags"
SAMPLE_DIR = REPO_ROOT / "mlclf_hub" / "sample_data"
FIELDS = ("package", "text", "labels")
TRAIN_SIZE = 3000
VALIDATION_SIZE = 1000
SEED = 0


def read_jsonl_gz(path: str | os.PathLike) -> list[dict]:
    """Read a gzipped JSON-lines file into a list of rows, in file order.

    Args:
        path (`str` or `os.PathLike`): The ``.jsonl.gz`` file.

    Returns:
        `list[dict]`: One dict per non-empty line.

    Example:
        >>> rows = read_jsonl_gz("../shared/data/debtags/validation.jsonl.gz")  # doctest: +SKIP
    """
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_jsonl(rows: Iterable[dict]) -> bytes:
    """Serialise rows as UTF-8 JSON lines, keeping only ``FIELDS`` in that order.

    Example:
        >>> to_jsonl([{"package": "p", "text": "t", "labels": [], "extra": 1}])
        b'{"package": "p", "text": "t", "labels": []}\\n'
    """
    lines = (json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) + "\n" for row in rows)
    return "".join(lines).encode("utf-8")


def gzip_bytes(data: bytes) -> bytes:
    """Compress to a standard gzip member (level 9, header ``mtime=0``, so reruns give identical bytes).

    Example:
        >>> import gzip
        >>> gzip.decompress(gzip_bytes(b"abc"))
        b'abc'
    """
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_jsonl_gz(rows: Iterable[dict], path: str | os.PathLike) -> None:
    """Write rows as gzipped JSON lines (see `to_jsonl` and `gzip_bytes`).

    Args:
        rows (`Iterable[dict]`): The rows to write.
        path (`str` or `os.PathLike`): The destination file.

    Example:
        >>> write_jsonl_gz([{"package": "p", "text": "t", "labels": []}], "x.jsonl.gz")  # doctest: +SKIP
    """
    Path(path).write_bytes(gzip_bytes(to_jsonl(rows)))


def sample_train(rows: list[dict]) -> list[dict]:
    """Draw the shipped training sample: ``random.Random(0).sample(rows, 3000)``.

    Example:
        >>> len(sample_train([{"i": i} for i in range(5000)]))
        3000
    """
    return random.Random(SEED).sample(rows, TRAIN_SIZE)


def sample_validation(rows: list[dict]) -> list[dict]:
    """Shuffle with ``random.Random(0)`` and keep the first 1000 rows.

    Example:
        >>> len(sample_validation([{"i": i} for i in range(2000)]))
        1000
    """
    return random.Random(SEED).sample(rows, len(rows))[:VALIDATION_SIZE]


def make_sample(data_dir: str | os.PathLike, out_dir: str | os.PathLike = SAMPLE_DIR) -> None:
    """Write the three sample files from the full debtags splits in ``data_dir``.

    Args:
        data_dir (`str` or `os.PathLike`): Directory with ``train.jsonl.gz``,
            ``validation.jsonl.gz`` and ``labels.txt``.
        out_dir (`str` or `os.PathLike`): Where the sample goes (``mlclf_hub/sample_data``).

    Raises:
        FileNotFoundError: If ``data_dir`` lacks one of the three files.

    Example:
        >>> make_sample("../shared/data/debtags")  # doctest: +SKIP
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for name in ("train.jsonl.gz", "validation.jsonl.gz", "labels.txt"):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(
                f"{data_dir / name} not found; pass --data-dir pointing at the debtags data"
            )
    train = sample_train(read_jsonl_gz(data_dir / "train.jsonl.gz"))
    validation = sample_validation(read_jsonl_gz(data_dir / "validation.jsonl.gz"))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(train, out_dir / "debtags_train.jsonl.gz")
    write_jsonl_gz(validation, out_dir / "debtags_validation.jsonl.gz")
    shutil.copyfile(data_dir / "labels.txt", out_dir / "labels.txt")
    logger.info("wrote %d train and %d validation rows to %s", len(train), len(validation), out_dir)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Example:
        >>> main(["--data-dir", "../shared/data/debtags"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="directory of the full debtags splits (default: ../shared/data/debtags from the repo root)",
    )
    parser.add_argument("--out-dir", default=str(SAMPLE_DIR), help="where to write the sample")
    args = parser.parse_args(argv)
    make_sample(args.data_dir, args.out_dir)


if __name__ == "__main__":
    main()
