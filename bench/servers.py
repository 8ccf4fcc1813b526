"""What the HTTP benchmarks share: a server in a process of its own (so that it has a core to
itself on a two-core machine), a free port, percentiles."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def spawn(script: str, *args: str, path: str = "") -> tuple[asyncio.subprocess.Process, str]:
    """Run ``script`` with ``args`` until it prints ``ready PORT``; the process and its URL
    (``http://127.0.0.1:PORT`` + ``path``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"the server {args[0]} did not start")
        if line.startswith("ready "):
            return proc, f"http://127.0.0.1:{line.split()[1]}{path}"


async def stop(proc: asyncio.subprocess.Process) -> str:
    """Stop the server as Ctrl-C does; what it printed after it was told to."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        return ""
    return out.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """The ``p`` percentile of ``values`` (seconds), in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000
