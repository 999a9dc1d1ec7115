"""The shape of every notebook: stripped, the standard set-up cell first, the anatomy of a section."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import setup_cell  # noqa: E402

NOTEBOOKS = setup_cell.notebooks()
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def load(path):
    return json.loads(path.read_text())


def text_of(notebook, kind):
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "strip the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_starts_with_title_and_the_standard_setup_cell(path):
    notebook = load(path)
    assert notebook["cells"][0]["cell_type"] == "markdown"
    assert "".join(notebook["cells"][0]["source"]).startswith("# ")
    first_code = setup_cell.first_code_cell(notebook)
    assert "".join(first_code["source"]) == setup_cell.setup_source(), "run python tools/setup_cell.py"


def test_setup_cell_installs_from_the_configured_repository_only_in_colab():
    url, branch = setup_cell.repository()
    source = setup_cell.setup_source()
    assert url.startswith("https://github.com/")
    assert f'"dlpt @ git+{url}@{branch}"' in source
    assert 'if "google.colab" in sys.modules:' in source
    assert "dlpt.setup(seed=0)" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_has_claims_exercises_summary_and_citations(path):
    notebook = load(path)
    code, prose = text_of(notebook, "code"), text_of(notebook, "markdown")
    assert "dlpt.claim(" in code
    assert "## Summary" in prose and "## Further reading" in prose
    assert "{cite" in prose
    assert prose.index("### Exercise") < prose.index("## Summary")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_each_exercise_has_a_stub_a_check_and_a_collapsed_solution(path):
    cells = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in cells]
    checks = [i for i, s in enumerate(sources) if s.startswith("dlpt.check.exercise(")]
    assert checks
    for i in checks:
        name = re.match(r'dlpt\.check\.exercise\(\s*"([\w.]+)"', sources[i]).group(1)  # ruff may wrap the call
        assert "raise NotImplementedError" in sources[i - 1], f"{name}: no stub before its check"
        solution = cells[i + 1]
        assert "hide-cell" in solution["metadata"].get("tags", []), f"{name}: solution not collapsed"
        assert solution["metadata"].get("jupyter", {}).get("source_hidden"), f"{name}: solution not hidden"
        assert re.search(rf'dlpt\.check\.exercise\(\s*"{re.escape(name)}"', sources[i + 1])


def test_every_notebook_and_chapter_page_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(\S+)", toc))
    for path in NOTEBOOKS:
        assert str(path.relative_to(ROOT).with_suffix("")) in listed
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


def test_every_citation_exists_in_the_bibliography():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.MULTILINE))
    cited = set()
    for path in NOTEBOOKS:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text_of(load(path), "markdown")):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= keys, cited - keys


def test_every_notebook_has_a_recorded_cpu_time_within_budget():
    timings = json.loads((ROOT / "timings.json").read_text())["notebooks"]
    for name in IDS:
        assert name in timings, f"{name}: run make timings"
        assert timings[name]["cpu"] <= 120, name
    assert "<!-- timings:start -->\n| notebook |" in (ROOT / "README.md").read_text()
