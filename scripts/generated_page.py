"""What the docs generators (gen_cli_docs.py, gen_cell_docs.py) share: write a generated page,
or with --check say whether the committed one is out of date (the docs test runs that)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


def write_or_check(out: Path, render: Callable[[], str], script: str, argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is out of date: run python scripts/{script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0
