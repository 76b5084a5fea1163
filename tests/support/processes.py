"""Start the platform as its own process, the way it runs in production, and stop it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.support.waiting import wait_for

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


class Output:
    """Collects a running process's output as it comes, so that a test can wait for a line
    while the process runs (and the pipe never fills up and stalls it)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None, "start the process with stdout=PIPE"
        self.proc = proc
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; everything it wrote."""
        return self._end(signal.SIGTERM)

    def kill(self) -> str:
        """SIGKILL, as a crash or the kernel's out-of-memory killer ends it, mid-write."""
        return self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> str:
        self.proc.send_signal(how)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.text


def wait_until_serving(proc: subprocess.Popen[str], base: str, seconds: float) -> requests.Response:
    """The first /healthz answer, whatever its status; fails with the process's output if it
    dies or is too slow."""
    answers: list[requests.Response] = []

    def answered() -> bool:
        try:
            answers.append(requests.get(f"{base}/healthz", timeout=2))
        except (requests.ConnectionError, requests.Timeout):
            # Timeout: gunicorn's socket is open while its workers are still booting.
            if proc.poll() is not None:
                raise AssertionError(f"the process ended before serving:\n{stop(proc)}") from None
            return False
        return True

    wait_for(
        answered, seconds, interval=0.2, message=lambda: f"{base} to serve; output:\n{stop(proc)}"
    )
    return answers[0]
