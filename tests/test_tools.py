import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import run_notebooks  # noqa: E402


def test_magics_become_pass_and_keep_their_indentation():
    source = 'import sys\nif "google.colab" in sys.modules:\n    %pip install -q x\n!ls\nx = 1 % 2'
    converted = run_notebooks.python_source(source)
    expected = ["import sys", 'if "google.colab" in sys.modules:', "    pass", "pass", "x = 1 % 2"]
    assert converted.splitlines() == expected
    compile(converted, "cell", "exec")


def test_table_marks_missing_gpu_times():
    table = run_notebooks.table({"machines": {"cpu": "x86"}, "notebooks": {"a.ipynb": {"cpu": 12.3, "gpu": None}}})
    assert "| `a.ipynb` | 12 | — |" in table
    assert "| total | 12 | — |" in table
    assert "GPU: not measured yet" in table


def test_table_marks_gpu_times_of_notebooks_that_stayed_on_the_cpu():
    notebooks = {"a.ipynb": {"cpu": 12.3, "gpu": 4.0, "gpu_used": True},
                 "b.ipynb": {"cpu": 20.0, "gpu": 9.6, "gpu_used": False}}
    table = run_notebooks.table({"machines": {"cpu": "x86", "gpu": "H100"}, "notebooks": notebooks})
    assert "| `a.ipynb` | 12 | 4 |" in table
    assert "| `b.ipynb` | 20 | 10 † |" in table
    assert "| total | 32 | 14 |" in table
    assert "GPU: H100" in table and "†: the notebook allocated no GPU memory" in table


def test_runner_reports_claims_and_failures(tmp_path):
    import json

    def notebook(*cells):
        path = tmp_path / f"nb{len(list(tmp_path.iterdir()))}.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []}
                                              for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    good = notebook("%matplotlib inline\nimport dlpt", "dlpt.claim(1 < 2, 'holds')")
    bad = notebook("import dlpt", "dlpt.claim(2 < 1, 'does not hold')")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks.py"), str(good), str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "1/1 held  ok" in lines[1]
    assert "0/1 held  FAILED in code cell 1: ClaimError" in lines[2]


def test_sweep_arguments_and_claim_figures_as_json():
    assert run_notebooks.parse_list("0-4") == [0, 1, 2, 3, 4]
    assert run_notebooks.parse_list("1,4", float) == [1.0, 4.0]
    import torch

    assert run_notebooks.plain({"a": torch.tensor(0.123456), "b": [1, 2.0], "c": "x"}) == {
        "a": 0.1235, "b": [1, 2.0], "c": "x"}


def test_results_page_shows_each_claims_figures_per_seed_and_scale():
    import results_page

    def run(seed, value, held=True, error=None):
        claims = [{"statement": "a beats b", "held": held, "figures": {"gap": value}}]
        return {"seconds": 1.0, "error": error, "claims": claims}

    record = {"cpu": {"machine": "x86", "torch": "2.13", "python": "3.11", "date": "2026-11-28", "runs": {
        "chapters/01_practice/01_before_the_code.ipynb": {
            "1": {"0": run(0, 0.5), "1": run(1, 0.25)},
            "4": {"0": run(0, 0.75), "1": {"seconds": 1.0, "error": "ClaimError: no", "claims": []}},
        }}}}
    page = results_page.render(record)
    assert page.startswith("# Every result in this book")
    assert "**1. a beats b** — held in CPU 3 of 4 runs." in page
    assert "| `gap` | CPU, scale 1 | 0.5 | 0.25 |" in page
    assert "| `gap` | CPU, scale 4 | 0.75 | — |" in page
    assert "Runs that stopped early: CPU, seed 1, scale 4: ClaimError: no." in page
    assert "{doc}`/chapters/01_practice/01_before_the_code`" in page


def test_the_appendix_page_is_the_sweeps_record_of_every_notebook():
    import json

    import results_page

    record = json.loads(results_page.CLAIMS.read_text())
    assert (ROOT / "results.md").read_text() == results_page.render(record), "run python tools/results_page.py"
    notebooks = {str(p.relative_to(ROOT)) for p in (ROOT / "chapters").rglob("*.ipynb")}
    runs = record["cpu"]["runs"]
    assert set(runs) == notebooks, "run make seeds: the record lacks or has extra notebooks"
    for name, by_scale in runs.items():
        assert set(by_scale) == {"1", "4"}, name
        for scale, by_seed in by_scale.items():
            assert set(by_seed) == {"0", "1", "2", "3", "4"}, (name, scale)
            for seed, report in by_seed.items():
                assert report["error"] is None, (name, scale, seed, report["error"])
                assert report["claims"] and all(c["held"] for c in report["claims"]), (name, scale, seed)


def test_recording_claims_replaces_the_runs_rerun_and_keeps_the_others(tmp_path, monkeypatch):
    import json

    import results_page

    claims_file = tmp_path / "claims.json"
    monkeypatch.setattr(run_notebooks, "CLAIMS", claims_file)
    monkeypatch.setattr(results_page, "PAGE", tmp_path / "results.md")
    a, b = "chapters/01_practice/01_before_the_code.ipynb", "chapters/01_practice/02_the_loop.ipynb"

    def report(value):
        return {"seconds": 1.0, "error": None, "claims": [{"statement": "s", "held": True, "figures": {"x": value}}]}

    run_notebooks.record_claims("cpu", {(a, 0, 1.0): report(1.0), (b, 0, 1.0): report(2.0)}, "cpu")
    run_notebooks.record_claims("cpu", {(a, 0, 1.0): report(3.0)}, "cpu")  # a rerun of one notebook
    runs = json.loads(claims_file.read_text())["cpu"]["runs"]
    assert runs[a]["1"]["0"]["claims"][0]["figures"] == {"x": 3.0}
    assert runs[b]["1"]["0"]["claims"][0]["figures"] == {"x": 2.0}
    assert "| `x` | CPU, scale 1 | 3 |" in (tmp_path / "results.md").read_text()
