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
