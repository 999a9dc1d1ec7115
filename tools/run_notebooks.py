"""Run every chapter notebook without Jupyter, time it, and count its claims.

Each notebook runs in a fresh Python process: its code cells are executed in order in one
namespace, as a kernel would, with IPython magics and shell escapes (`%pip`, `!ls`)
turned into `pass`. This needs only PyTorch and dlpt's dependencies, so it works on a GPU
machine with no Jupyter stack.

    python tools/run_notebooks.py                      # run all, print a table
    python tools/run_notebooks.py --seed 3 NB.ipynb    # one notebook, another seed
    python tools/run_notebooks.py --record cpu         # also write timings.json and the README table
    python tools/run_notebooks.py --record gpu --require-cuda

Exit status 1 if a notebook fails (an exception, a claim that does not hold) or, with
--record cpu, runs over the time budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "timings.json"
README = ROOT / "README.md"
BUDGET_S = 150
TABLE_START, TABLE_END = "<!-- timings:start -->", "<!-- timings:end -->"
MAGIC = re.compile(r"^(\s*)[%!].*$")


def python_source(cell_source: str) -> str:
    """A code cell as plain Python: each magic or shell line becomes `pass`, indentation kept."""
    return "\n".join(MAGIC.sub(r"\1pass", line) for line in cell_source.splitlines())


def code_cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def run_child(path: Path) -> None:
    """Execute one notebook in this process and print a JSON report as the last line."""
    os.chdir(path.parent)
    namespace: dict = {"__name__": "__main__"}
    try:
        from IPython.display import display
    except ImportError:  # no Jupyter stack: show what would have been displayed as text
        def display(*objects, **kwargs):
            for obj in objects:
                print(repr(obj))
    namespace["display"] = display
    report = {"seconds": 0.0, "error": None, "cell": None}
    start = time.perf_counter()
    for index, source in enumerate(code_cells(path)):
        try:
            exec(compile(python_source(source), f"{path.name}[cell {index}]", "exec"), namespace)
        except BaseException as exc:  # report any failure, including a failed claim
            report["error"] = f"{type(exc).__name__}: {exc}"
            report["cell"] = index
            break
        finally:
            import matplotlib.pyplot as plt

            plt.close("all")
    report["seconds"] = time.perf_counter() - start
    import dlpt

    claims = dlpt.check.claims_made()
    report["claims"] = len(claims)
    report["claims_held"] = sum(held for _, held, _ in claims)
    import torch

    report["device"] = str(dlpt.runtime.pick_device())
    report["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    # whether the notebook put anything on the GPU at all, or ran on the CPU cores beside it
    report["gpu_used"] = torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0
    print("\n" + json.dumps(report))


def run(path: Path, seed: int | None) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    if seed is not None:
        env["DLPT_SEED"] = str(seed)
    done = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env,
                          capture_output=True, text=True)
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {"seconds": 0.0, "error": f"the runner crashed (exit {done.returncode})", "cell": None,
                  "claims": 0, "claims_held": 0}
    if report["error"]:
        report["log"] = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
    return report


def table(timings: dict) -> str:
    """The README's Markdown timing table."""
    rows = ["| notebook | CPU (s) | GPU (s) |", "| --- | ---: | ---: |"]
    totals = {"cpu": 0.0, "gpu": 0.0}
    for name in sorted(timings["notebooks"]):
        entry = timings["notebooks"][name]
        cells = []
        for column in ("cpu", "gpu"):
            value = entry.get(column)
            cpu_only = column == "gpu" and value is not None and entry.get("gpu_used") is False
            cells.append("—" if value is None else f"{value:.0f}" + (" †" if cpu_only else ""))
            totals[column] += value or 0.0
        rows.append(f"| `{name}` | {cells[0]} | {cells[1]} |")
    gpu_total = f"{totals['gpu']:.0f}" if any(e.get("gpu") for e in timings["notebooks"].values()) else "—"
    rows.append(f"| total | {totals['cpu']:.0f} | {gpu_total} |")
    machines = [f"CPU: {timings['machines']['cpu']}" if timings["machines"].get("cpu") else None,
                f"GPU: {timings['machines']['gpu']}" if timings["machines"].get("gpu") else "GPU: not measured yet"]
    note = ""
    if any(e.get("gpu") is not None and e.get("gpu_used") is False for e in timings["notebooks"].values()):
        note = (" †: the notebook allocated no GPU memory; its models stayed on the GPU machine's CPU "
                "cores.")
    return "\n".join(rows) + "\n\n" + "; ".join(m for m in machines if m) + "." + note


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record(column: str, reports: dict[str, dict], machine: str) -> None:
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {"machines": {}, "notebooks": {}}
    for name, report in reports.items():
        entry = timings["notebooks"].setdefault(name, {"cpu": None, "gpu": None})
        entry[column] = round(report["seconds"], 1)
        if column == "gpu":
            entry["gpu_used"] = bool(report.get("gpu_used"))
    timings["machines"][column] = machine
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{table(timings)}\n{TABLE_END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under chapters/")
    parser.add_argument("--seed", type=int, help="set DLPT_SEED: run the notebooks with another seed")
    parser.add_argument("--record", choices=["cpu", "gpu"], help="write the times into timings.json and README")
    parser.add_argument("--require-cuda", action="store_true", help="fail unless torch sees a CUDA device")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child.resolve())
        return 0
    if args.require_cuda:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device visible to torch", file=sys.stderr)
            return 1
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "chapters").rglob("*.ipynb"))
    reports: dict[str, dict] = {}
    failed = False
    print(f"{'notebook':60s} {'seconds':>8s}  claims")
    for path in paths:
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        report = run(path, args.seed)
        reports[name] = report
        status = "ok" if not report["error"] else f"FAILED in code cell {report['cell']}: {report['error']}"
        over = args.record == "cpu" and report["seconds"] > BUDGET_S
        if over:
            status += f" (over the {BUDGET_S} s budget)"
        failed |= bool(report["error"]) or over
        print(f"{name:60s} {report['seconds']:8.1f}  {report['claims_held']}/{report['claims']} held  {status}",
              flush=True)
        if report["error"]:
            print(report.get("log", ""), file=sys.stderr)
    passed = {name: report for name, report in reports.items() if not report["error"]}
    if args.record and passed:  # the notebooks that ran through; a failure still exits 1
        gpu = next((r.get("gpu") for r in reports.values() if r.get("gpu")), None)
        machine = gpu if args.record == "gpu" else f"{cpu_name()}, {os.cpu_count()} cores"
        record(args.record, passed, machine)
        print(f"recorded the {args.record} column of {len(passed)} notebooks in {TIMINGS.name} and README.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
