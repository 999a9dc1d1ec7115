"""Shared test set-up: refuse the network here and in every notebook kernel started from here."""

import os
import sys
from pathlib import Path

import matplotlib

# Agg for this process only: notebook kernels keep their inline backend, or the book and
# nbval would run notebooks whose figures silently go nowhere.
matplotlib.use("Agg")

OFFLINE = Path(__file__).parent / "tests" / "offline"

# Kernels started by nbval inherit the environment: put the guard on their path too.
if str(OFFLINE) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(OFFLINE), os.environ.get("PYTHONPATH")) if p)
sys.path.insert(0, str(OFFLINE))
import sitecustomize  # noqa: E402,F401  (installs the guard in this process, if start-up did not)
