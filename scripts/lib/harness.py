"""Process helpers shared by the stdlib-only harnesses: bench/bench.py and
gauntlet/gauntlet.py (each puts scripts/lib on sys.path)."""

from __future__ import annotations

import shlex
import socket
import subprocess


class CommandFailed(RuntimeError):
    """A command exited non-zero."""


def run(cmd, env=None, timeout=None, check=True) -> subprocess.CompletedProcess:
    """Runs `cmd` to its end, output captured; raises CommandFailed with the
    tails of its output when it fails and `check` is set."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandFailed(
            f"{shlex.join(cmd)} exited {p.returncode}\n--- stdout\n{p.stdout[-2000:]}\n--- stderr\n{p.stderr[-3000:]}"
        )
    return p


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listened on a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
