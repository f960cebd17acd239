"""``autocontour serve`` as a user starts it: a process that listens on 127.0.0.1, answers, and
stops cleanly on SIGTERM; ``autocontour user token`` makes a token it accepts."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from autocontour.cli import main


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_listens_on_loopback_and_a_cli_token_works(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    home = tmp_path / "home"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert main(["user", "add", "carol", "--password-stdin", "--home", str(home)]) == 0
    assert main(["user", "token", "carol", "--label", "tps", "--home", str(home)]) == 0
    out, err = capsys.readouterr()
    token = out.strip().splitlines()[-1]
    assert len(token) >= 40 and "cannot be shown again" in err
    port = _free_port()
    env = {**os.environ, "AUTOCONTOUR_HOME": str(home), "AUTOCONTOUR_WORKERS": "0"}
    server = subprocess.Popen([sys.executable, "-m", "autocontour.cli", "serve", "--port",
                               str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < end, server.stderr.read()
                time.sleep(0.2)
        assert health.json()["status"] == "ok" and health.json()["workers"] == 0
        me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["name"] == "carol"
        server.send_signal(signal.SIGTERM)
        # Uvicorn shuts down gracefully, then re-raises the signal for the exit status
        assert server.wait(30) in (0, -signal.SIGTERM)
        log = server.stderr.read()
        assert f"serving http://127.0.0.1:{port}/" in log and "Finished server process" in log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_user_token_for_nobody_is_one_line(tmp_path: Path, capsys) -> None:
    code = main(["user", "token", "nobody", "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "user nobody: no such user" in err
