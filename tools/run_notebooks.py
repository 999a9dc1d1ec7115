"""Run chapter notebooks without Jupyter: time them, and check and record every claim.

Each notebook runs in a fresh Python process: its code cells are executed in order in one
namespace, as a kernel would, with IPython magics and shell escapes (`%pip`, `!ls`)
turned into `pass`. This needs only PyTorch and dlpt's dependencies, so it works on a GPU
machine with no Jupyter stack.

    python tools/run_notebooks.py                          # all, one after another: a table
    python tools/run_notebooks.py --seeds 3 NB.ipynb       # one notebook, another seed
    python tools/run_notebooks.py --seeds 0-4 --scales 1,4 --jobs 2 --record-claims cpu
                                                           # the sweep (make seeds): every claim's
                                                           # figures into results/claims.json and
                                                           # the book's page results.md
    python tools/run_notebooks.py --record cpu             # times into timings.json and the README
    python tools/run_notebooks.py --record gpu --require-cuda

Exit status 1 if a run fails (an exception, a claim that does not hold) or, with
--record cpu, a notebook runs over the time budget.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
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
CLAIMS = ROOT / "results" / "claims.json"
BUDGET_S = 120
TABLE_START, TABLE_END = "<!-- timings:start -->", "<!-- timings:end -->"
MAGIC = re.compile(r"^(\s*)[%!].*$")


def python_source(cell_source: str) -> str:
    """A code cell as plain Python: each magic or shell line becomes `pass`, indentation kept."""
    return "\n".join(MAGIC.sub(r"\1pass", line) for line in cell_source.splitlines())


def code_cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def plain(value):
    """A claim's figure as JSON: numbers (4 significant digits), strings, lists and dicts of them."""
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover - the child always has both
        np = torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if np is not None and isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


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

    report["claims"] = [{"statement": s, "held": held, "figures": plain(figures)}
                        for s, held, figures in dlpt.check.claims_made()]
    import torch

    report["device"] = str(dlpt.runtime.pick_device())
    report["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    # whether the notebook put anything on the GPU at all, or ran on the CPU cores beside it
    report["gpu_used"] = torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0
    print("\n" + json.dumps(report))


def run(path: Path, seed: int | None, scale: float | None = None, timeout: float | None = None) -> dict:
    """Run one notebook in a child process with DLPT_SEED and DLPT_SCALE set; its report."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    if seed is not None:
        env["DLPT_SEED"] = str(seed)
    if scale is not None:
        env["DLPT_SCALE"] = f"{scale:g}"
    try:
        done = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        stderr, code = f"stopped after {timeout:g} s", None
    try:
        report = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        why = f"exit {code}" if code is not None else f"no result within {timeout:g} s"
        report = {"seconds": 0.0, "error": f"the runner crashed ({why})", "cell": None, "claims": []}
    if report["error"]:
        report["log"] = (stdout[-3000:] + "\n" + stderr[-3000:]).strip()
    return report


def held(report: dict) -> str:
    claims = report.get("claims", [])
    return f"{sum(c['held'] for c in claims)}/{len(claims)} held"


# --------------------------------------------------------------------------- the timing table


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


def machine(column: str, reports: list[dict]) -> str:
    gpu = next((r.get("gpu") for r in reports if r.get("gpu")), None)
    return gpu if column == "gpu" and gpu else f"{cpu_name()}, {os.cpu_count()} cores"


def record_times(column: str, reports: dict[str, dict], machine_name: str) -> None:
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {"machines": {}, "notebooks": {}}
    for name, report in reports.items():
        entry = timings["notebooks"].setdefault(name, {"cpu": None, "gpu": None})
        entry[column] = round(report["seconds"], 1)
        if column == "gpu":
            entry["gpu_used"] = bool(report.get("gpu_used"))
    timings["machines"][column] = machine_name
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"README.md lacks the markers {TABLE_START} ... {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{table(timings)}\n{TABLE_END}{tail}")


# --------------------------------------------------------------------------- the sweep's record


def record_claims(column: str, runs: dict[tuple[str, int | None, float], dict], machine_name: str) -> None:
    """Write every run's claims into results/claims.json (one column: cpu or gpu) and the book's page."""
    import results_page
    import torch

    record = json.loads(CLAIMS.read_text()) if CLAIMS.exists() else {}
    # Runs of this invocation replace the recorded runs of the same notebook, scale and seed;
    # a notebook rerun alone keeps the other notebooks' records.
    entry = record.get(column, {"runs": {}})
    entry.update(machine=machine_name, torch=torch.__version__, python=platform.python_version(),
                 date=datetime.date.today().isoformat())
    for (name, seed, scale), report in runs.items():  # put in order below, with the runs kept from before
        kept = {"seconds": round(report["seconds"], 1), "error": report["error"], "claims": report.get("claims", [])}
        entry["runs"].setdefault(name, {}).setdefault(f"{scale:g}", {})[str(0 if seed is None else seed)] = kept
    known = {str(p.relative_to(ROOT)) for p in (ROOT / "chapters").rglob("*.ipynb")}
    # Notebooks, scales and seeds in order; each claim's figures keep the order the notebook gave them.
    entry["runs"] = {
        name: {scale: dict(sorted(by_seed.items(), key=lambda s: int(s[0])))
               for scale, by_seed in sorted(by_scale.items(), key=lambda s: float(s[0]))}
        for name, by_scale in sorted(entry["runs"].items()) if name in known}
    record[column] = entry
    CLAIMS.parent.mkdir(exist_ok=True)
    CLAIMS.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    results_page.write(json.loads(CLAIMS.read_text()))  # the page is always that of the file


def parse_list(text: str, kind=int) -> list:
    """"0-4" -> [0, 1, 2, 3, 4]; "1,4" -> [1, 4]."""
    values = []
    for part in text.split(","):
        if kind is int and re.fullmatch(r"\d+-\d+", part.strip()):
            low, high = map(int, part.split("-"))
            values += list(range(low, high + 1))
        else:
            values.append(kind(part))
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under chapters/")
    parser.add_argument("--seeds", help="DLPT_SEED values, e.g. 3 or 0-4 or 0,2 (default: each notebook's own)")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)  # the older spelling of --seeds N
    parser.add_argument("--scales", default="1", help="DLPT_SCALE values, e.g. 1,4 (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one process each (default 1)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one run may take (default 3600)")
    parser.add_argument("--record", choices=["cpu", "gpu"], help="write the times into timings.json and README")
    parser.add_argument("--record-claims", choices=["cpu", "gpu"],
                        help="write every claim's figures into results/claims.json and the page results.md")
    parser.add_argument("--save", type=Path,
                        help="also append every run's report (claims, figures, errors) to this file, a JSON line each")
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
    seeds = parse_list(args.seeds) if args.seeds else [args.seed]
    scales = parse_list(args.scales, float)
    if args.record and 1.0 not in scales:
        parser.error("--record keeps the times of the runs at scale 1: include 1 in --scales")
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "chapters").rglob("*.ipynb"))
    names = {p: str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths}
    known = json.loads(TIMINGS.read_text())["notebooks"] if TIMINGS.exists() else {}
    tasks = [(p, seed, scale) for p in paths for scale in scales for seed in seeds]
    # Longest first, so that parallel workers finish together.
    tasks.sort(key=lambda t: -(known.get(names[t[0]], {}).get("cpu") or 60) * t[2])
    sweep = len(seeds) > 1 or len(scales) > 1
    runs: dict[tuple[str, int | None, float], dict] = {}
    failed = False
    print(f"{'notebook':56s} {'seed':>4s} {'scale':>5s} {'seconds':>8s}  claims", flush=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run, p, seed, scale if sweep or scale != 1 else None, args.timeout): (p, seed, scale)
                   for p, seed, scale in tasks}
        for future in concurrent.futures.as_completed(futures):
            path, seed, scale = futures[future]
            report = future.result()
            name = names[path]
            runs[(name, seed, scale)] = report
            status = "ok" if not report["error"] else f"FAILED in code cell {report['cell']}: {report['error']}"
            over = args.record == "cpu" and report["seconds"] > BUDGET_S
            if over:
                status += f" (over the {BUDGET_S} s budget)"
            failed |= bool(report["error"]) or over
            shown_seed = "-" if seed is None else str(seed)
            print(f"{name:56s} {shown_seed:>4s} {scale:5g} {report['seconds']:8.1f}  {held(report)}  {status}",
                  flush=True)
            if report["error"]:
                print(report.get("log", ""), file=sys.stderr, flush=True)
            if args.save:  # as each run ends, so that an interrupted sweep keeps what it measured
                with args.save.open("a") as saved:
                    saved.write(json.dumps(dict(report, notebook=name, seed=seed, scale=scale)) + "\n")
    if sweep:
        failures = [(n, s, k, r) for (n, s, k), r in sorted(runs.items(), key=str) if r["error"]]
        print(f"\n{len(runs) - len(failures)} of {len(runs)} runs passed")
        for name, seed, scale, report in failures:
            print(f"  {name} seed {seed} scale {scale:g}: {report['error']}")
    reports = list(runs.values())
    if args.record_claims:
        record_claims(args.record_claims, runs, machine(args.record_claims, reports))
        print(f"recorded the claims of {len(runs)} runs in {CLAIMS.relative_to(ROOT)} and results.md")
    # The times recorded are those of each notebook's own seed (or seed 0) at scale 1.
    timed_seed = None if None in seeds else 0 if 0 in seeds else seeds[0]
    passed = {name: report for (name, seed, scale), report in runs.items()
              if not report["error"] and seed == timed_seed and scale == 1}
    if args.record and passed:  # the notebooks that ran through; a failure still exits 1
        at_once = f" ({args.jobs} runs at once)" if args.jobs > 1 else ""
        record_times(args.record, passed, machine(args.record, reports) + at_once)
        print(f"recorded the {args.record} column of {len(passed)} notebooks in {TIMINGS.name} and README.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
