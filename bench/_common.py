"""Helpers the benchmarks share: a standalone emulator process, a real sign-in, child metrics."""

from __future__ import annotations

import io
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def emulator_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[dict[str, str]]:
    """`python -m onedrive_backup.emulator ARGS` in its own process; yields the client's
    environment (ONEDRIVE_BACKUP_*) plus ADMIN_KEY, and stops the emulator afterwards."""
    cmd = [sys.executable, "-m", "onedrive_backup.emulator", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)
    assert proc.stdout is not None
    found: dict[str, str] = {}
    for line in proc.stdout:
        if m := re.match(r"export (\w+)=(\S+)", line):
            found[m.group(1)] = m.group(2).strip("'")
        if m := re.match(r"# Admin key: (\S+)", line):
            found["ADMIN_KEY"] = m.group(1)
            break
    try:
        yield found
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stdout.close()


def sign_in(emu_env: dict[str, str], config_dir: Path) -> dict[str, str]:
    """A real MSAL device-code sign-in (auto-approved) into `config_dir`; the client's env."""
    from onedrive_backup import auth
    from onedrive_backup.config import ENV_PREFIX, load_settings

    env = {k: v for k, v in emu_env.items() if k.startswith(ENV_PREFIX)}
    env[ENV_PREFIX + "CONFIG_DIR"] = str(config_dir)
    env[auth.PLAIN_CACHE_ENV] = "1"
    auth.login_device_code(load_settings({}, env), out=io.StringIO(), plain_cache=True)
    return env


def vmhwm_kib() -> int:
    """Peak resident memory of this process (Linux), KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
