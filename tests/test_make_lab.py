"""`make lab`: the command the Makefile builds starts JupyterLab on notebooks/, as root too."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT

JUPYTER = ROOT / ".venv" / "bin" / "jupyter"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]


def _make_n_lab(*args: str) -> list[str]:
    """Return the lines `make -n lab` prints (what it would run), demo case present or not."""
    run = subprocess.run(  # noqa: S603 - fixed arguments
        ["make", "-n", "--no-print-directory", "lab", *args],  # noqa: S607 - make from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_make_lab_runs_the_venvs_jupyter_lab_on_the_notebooks_and_the_demo_case():
    lines = _make_n_lab("OUT=out")
    assert "[ -f out/demo.duckdb ] || make demo" in lines  # the case the notebooks open
    [lab] = [line for line in lines if line.startswith(".venv/bin/jupyter lab")]
    args = shlex.split(lab)
    assert args[-1] == "notebooks/"
    assert ("--allow-root" in args) == (os.geteuid() == 0)  # jupyter refuses root without it
    # the notebooks' parameters cell opens that case, relative to notebooks/ (the kernel's cwd)
    assert 'case = "../out/demo.duckdb"' in (ROOT / "notebooks" / "01_triage.py").read_text()


@pytest.mark.skipif(not JUPYTER.exists(), reason="no .venv (make test creates it)")
def test_the_lab_command_line_starts_a_server_that_answers(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = os.urandom(16).hex()
    [lab] = [line for line in _make_n_lab() if line.startswith(".venv/bin/jupyter lab")]
    args = shlex.split(lab)
    # The same command with what a test needs: no browser, this port, this token (the
    # Makefile's LAB_ARGS slot takes the same flags from a user).
    args[-1:-1] = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    with (tmp_path / "lab.log").open("wb") as log:
        server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)  # noqa: S603
    try:
        listing = _wait_for(f"http://127.0.0.1:{port}/api/contents/", token, server)
        names = {item["name"] for item in listing["content"]}
        assert {"01_triage.py", "02_identity.py", "03_workload.py"} <= names
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log_text = (tmp_path / "lab.log").read_text(errors="replace")
    assert "Running as root is not recommended" not in log_text


def _wait_for(url: str, token: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"jupyter lab exited {server.returncode} (as uid {os.geteuid()})")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
                return json.loads(answer.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    raise AssertionError("jupyter lab did not answer within 60 s")
