"""``autocontour serve --dicom-node``: the API and the DICOM node in one process, on one store:
a series sent with dcmtk's storescu is contoured by the server's worker and listed by the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import (
    echo,
    free_port,
    needs_dcmtk,
    node_config,
    phantom_series,
    store_series,
    with_users,
)

from autocontour.jobs import AddTokenRequest, add_token


@needs_dcmtk
def test_serve_runs_the_node_beside_the_api(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with_users(home)
    token = add_token(AddTokenRequest("alice", "test", home=home))
    node_port, api_port = free_port(), free_port()
    config = node_config(tmp_path, port=node_port)
    env = {**os.environ, "AUTOCONTOUR_HOME": str(home), "AUTOCONTOUR_DEVICE": "cpu",
           "AUTOCONTOUR_THREADS": "2", "AUTOCONTOUR_POLL_S": "0.1"}
    server = subprocess.Popen([sys.executable, "-m", "autocontour.cli", "serve", "--port",
                               str(api_port), "--dicom-node", str(config)], env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{api_port}"
        end = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < end, server.stderr.read()
                time.sleep(0.2)
        assert echo(node_port).returncode == 0
        sent = store_series(node_port, phantom_series(tmp_path / "series", 91001))
        assert sent.returncode == 0, sent.stderr
        auth = {"Authorization": f"Bearer {token}"}
        end = time.monotonic() + 120
        while time.monotonic() < end:
            cases = httpx.get(f"{url}/api/cases", headers=auth).json()
            if cases and cases[0]["results"]:
                break
            time.sleep(0.5)
        assert len(cases) == 1 and cases[0]["filename"] == "series.zip"
        assert cases[0]["jobs"][0]["state"] == "done"  # run by the server's worker thread
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        log = server.stderr.read()
        assert f"DICOM node AUTOCONTOUR listening on 127.0.0.1:{node_port}" in log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
