"""The standard first code cell of every notebook, generated from _config.yml.

The repository's address is written once, in _config.yml (``repository.url``). This
script writes the set-up cell, which installs ``dlpt`` from that address only when the
notebook runs in Colab, into every notebook under chapters/; the tests check that each
notebook's first code cell is exactly :func:`setup_source`.

    python tools/setup_cell.py          # rewrite the set-up cell of every notebook
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def repository() -> tuple[str, str]:
    """``(url, branch)`` from _config.yml's ``repository`` block (read without a YAML parser)."""
    text = (ROOT / "_config.yml").read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)+)", text, re.MULTILINE)
    if block is None:
        raise ValueError("_config.yml has no repository: block")
    fields = dict(re.findall(r"^\s+(\w+):\s*(\S+)", block.group(1), re.MULTILINE))
    return fields["url"], fields.get("branch", "main")


def setup_source() -> str:
    """The exact source of the set-up cell."""
    url, branch = repository()
    return (
        "# Set-up: in Colab install the book's package; then seed and pick a device.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "dlpt @ git+{url}@{branch}"\n'
        "import dlpt\n"
        "\n"
        "device = dlpt.setup(seed=0)"
    )


def notebooks() -> list[Path]:
    """Every chapter notebook, in path order."""
    return sorted((ROOT / "chapters").rglob("*.ipynb"))


def first_code_cell(notebook: dict) -> dict | None:
    return next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)


def main() -> int:
    source = setup_source()
    for path in notebooks():
        notebook = json.loads(path.read_text())
        cell = first_code_cell(notebook)
        if cell is None:
            print(f"{path}: no code cell", file=sys.stderr)
            return 1
        if "".join(cell["source"]) != source:
            cell["source"] = source.splitlines(keepends=True)
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
