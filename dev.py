#!/usr/bin/env python3
"""Project tasks that work on a fresh machine with only Python 3.11+.

    python3 dev.py demo      # set up .venv on first use, then back up the built-in emulated drive
    python3 dev.py test      # set up .venv on first use, then lint, type-check and run every test
    python3 dev.py bench     # run the benchmarks under bench/
    python3 dev.py run ARGS  # run onedrive-backup from the project's .venv

The virtual environment is rebuilt only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed-from"


def _venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run under an older python3
        sys.exit(f"onedrive-backup needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    python = _venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == _wanted_stamp():
        return python
    if not python.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing onedrive-backup and its development tools into .venv ...", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_wanted_stamp())
    return python


def run(cmd: list[str]) -> int:
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    if task in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    python = str(ensure_venv())
    if task == "demo":
        return run([python, "-m", "onedrive_backup", "demo", *rest])
    if task == "run":
        return run([python, "-m", "onedrive_backup", *rest])
    if task == "lint":
        rc = run([python, "-m", "ruff", "check", "src", "tests", "bench", "dev.py"])
        rc |= run([python, "-m", "ruff", "format", "--check", "src", "tests", "bench", "dev.py"])
        rc |= run([python, "-m", "mypy"])
        return rc
    if task == "test":
        rc = main(["lint"])
        if rc:
            print("Lint or type check failed.", flush=True)
            return rc
        return run([python, "-m", "pytest", *rest])
    if task == "bench":
        return run([python, "-m", "bench", *rest])
    print(f"Unknown task {task!r}.\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
