"""Write the book's page *Every result in this book* (results.md) from results/claims.json.

`make seeds` (and `make gpu`) run every notebook for seeds 0-4 at DLPT_SCALE 1 and 4 and
record each claim's figures; this turns the record into one table per claim, so a reader
sees how firm each result is. Run it alone to rewrite the page from the record:

    python tools/results_page.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "results" / "claims.json"
PAGE = ROOT / "results.md"
COLUMNS = {"cpu": "CPU", "gpu": "GPU"}


def _number(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_number(v)}" for k, v in value.items()) + "}"
    return str(value).replace("|", "\\|")


def _keyed(claims: list[dict]) -> dict[str, dict]:
    """Claims by statement; a statement made twice in one run gets ' (2)' and so on."""
    keyed, seen = {}, {}
    for claim in claims:
        seen[claim["statement"]] = seen.get(claim["statement"], 0) + 1
        n = seen[claim["statement"]]
        keyed[claim["statement"] + (f" ({n})" if n > 1 else "")] = claim
    return keyed


def _title(notebook: str) -> str:
    path = ROOT / notebook
    try:
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"]).splitlines()[0]
        return first.lstrip("# ").strip()
    except (OSError, KeyError, IndexError, json.JSONDecodeError):
        return notebook


def render(record: dict) -> str:
    """The page's Markdown."""
    columns = [c for c in COLUMNS if c in record]
    lines = [
        "# Every result in this book",
        "",
        "Every ✓ line in a notebook is a claim: a sentence of the text, checked against what the",
        "notebook measured when it ran. The claims must hold for any seed, on any processor, on a GPU,",
        "and with `DLPT_SCALE=4`, which trains four times longer wherever a notebook's point is not a",
        "fixed budget. This page shows how firm each one is: the figures every claim printed when each",
        "notebook was run with `DLPT_SEED` 0 to 4, at `DLPT_SCALE` 1 and 4. A dash means that run did",
        "not reach the claim.",
        "",
    ]
    for column in columns:
        entry = record[column]
        lines.append(f"- {COLUMNS[column]}: {entry['machine']}, PyTorch {entry['torch']}, Python "
                     f"{entry['python']}, recorded on {entry['date']}.")
    lines += ["", "`make seeds` reruns the sweep on the CPU and rewrites this page; `make gpu` adds the GPU's.", ""]
    notebooks = sorted({nb for c in columns for nb in record[c]["runs"]})
    chapter = None
    for notebook in notebooks:
        folder = Path(notebook).parent.name
        if folder != chapter:
            chapter = folder
            index = ROOT / Path(notebook).parent / "index.md"
            heading = index.read_text().splitlines()[0].lstrip("# ").strip() if index.exists() else folder
            lines += [f"## {heading}", ""]
        doc = str(Path(notebook).with_suffix(""))
        lines += [f"### {_title(notebook)}", "", f"{{doc}}`/{doc}`", ""]
        # (column, scale, seed) -> the run's claims by statement
        runs = {(c, scale, seed): run for c in columns
                for scale, by_seed in record[c]["runs"].get(notebook, {}).items()
                for seed, run in by_seed.items()}
        order: list[str] = []
        for key in sorted(runs, key=lambda k: (columns.index(k[0]), float(k[1]), int(k[2]))):
            for statement in _keyed(runs[key]["claims"]):
                if statement not in order:
                    order.append(statement)
        failures = [f"{COLUMNS[c]}, seed {seed}, scale {scale}: {run['error']}"
                    for (c, scale, seed), run in sorted(runs.items()) if run["error"]]
        for number, statement in enumerate(order, 1):
            counts = []
            for c in columns:
                mine = [run for (col, _, _), run in runs.items() if col == c]
                held = sum(1 for run in mine if _keyed(run["claims"]).get(statement, {}).get("held"))
                counts.append(f"{COLUMNS[c]} {held} of {len(mine)} runs")
            lines += [f"**{number}. {statement}** — held in " + "; ".join(counts) + ".", ""]
            figures = []
            for key in sorted(runs):
                claim = _keyed(runs[key]["claims"]).get(statement)
                for name in (claim or {}).get("figures", {}):
                    if name not in figures:
                        figures.append(name)
            if not figures:
                continue
            seeds = sorted({int(k[2]) for k in runs})
            lines.append("| figure | run | " + " | ".join(f"seed {s}" for s in seeds) + " |")
            lines.append("| --- | --- | " + " | ".join("---:" for _ in seeds) + " |")
            for name in figures:
                for c in columns:
                    scales = sorted({k[1] for k in runs if k[0] == c}, key=float)
                    for scale in scales:
                        cells = []
                        for s in seeds:
                            run = runs.get((c, scale, str(s)))
                            claim = _keyed(run["claims"]).get(statement) if run else None
                            value = (claim or {}).get("figures", {}).get(name)
                            mark = "" if claim is None or claim["held"] else " ✗"
                            cells.append("—" if claim is None else _number(value) + mark)
                        lines.append(f"| `{name}` | {COLUMNS[c]}, scale {scale} | " + " | ".join(cells) + " |")
            lines.append("")
        if failures:
            lines += ["Runs that stopped early: " + "; ".join(failures) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(record: dict | None = None) -> None:
    record = record if record is not None else json.loads(CLAIMS.read_text())
    PAGE.write_text(render(record))


if __name__ == "__main__":
    write()
    print(f"wrote {PAGE.relative_to(ROOT)}")
