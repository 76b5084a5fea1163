"""Start the platform as its own process, the way it runs in production, and stop it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
DCT = shutil.which("dct", path=str(BIN))
ROOT = Path(__file__).resolve().parents[2]


def process_env(database_url: str | None, instance: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "DATABASE_URL"
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(DCT_INSTANCE_PATH=str(instance), SECRET_KEY="process-test", **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def wait_until_serving(proc: subprocess.Popen[str], base: str, seconds: float) -> requests.Response:
    """The first /healthz answer; fails with the process's output if it dies or is too slow."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return requests.get(f"{base}/healthz", timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            # Timeout: gunicorn's socket is open while its workers are still booting.
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(stop(proc)) from None
            time.sleep(0.2)
