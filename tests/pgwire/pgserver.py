"""A real `asof serve` in a subprocess, on a free loopback port and a temporary data
directory, with one user (alice / secret)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

USER = "alice"
PASSWORD = "secret"


class ServerProcess:
    def __init__(self, data: Path, *args: str, users: bool = True) -> None:
        self.data = data
        self.socket_dir = data.parent / f"{data.name}-sock"
        self.socket_dir.mkdir(exist_ok=True)
        env = dict(os.environ, ASOF_PASSWORD=PASSWORD)
        if users:
            subprocess.run(
                [sys.executable, "-m", "asof", "--data", str(data), "user", "add", USER],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asof",
                "--data",
                str(data),
                "serve",
                "--port",
                "0",
                "--socket-dir",
                str(self.socket_dir),
                *args,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"asof serve exited with {self.proc.wait()}")
            found = re.search(r"on 127\.0\.0\.1:(\d+)", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("asof serve did not start in time")

    def dsn(self, dbname: str = "postgres", user: str = USER, password: str = PASSWORD) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} password={password}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    @property
    def socket_path(self) -> str:
        return str(self.socket_dir / f".s.PGSQL.{self.port}")
