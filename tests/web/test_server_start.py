"""Starting and stopping the server process: the port from --port or GRADIO_SERVER_PORT, the address from
GRADIO_SERVER_NAME, a port in use named with --port, and SIGINT/SIGTERM ending with status 0."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.appserver import ROOT
from tests.browser import free_port


def _app(tmp_path, *args, env=None) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "app.py"), "--data-dir", str(tmp_path), "--serve", "--no-demo", *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})})


def _wait_answering(process: subprocess.Popen, url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout_s:.0f} s")


def test_a_port_in_use_is_named_with_the_option_to_change_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _app(tmp_path, "--port", str(port))
        output, _ = process.communicate(timeout=180)
    assert process.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in output and "--port N" in output


def test_bad_port_in_the_environment_is_a_usage_error(tmp_path):
    process = _app(tmp_path, env={"GRADIO_SERVER_PORT": "eighty"})
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 2 and "not a port number: 'eighty'" in output


def test_gradio_environment_variables_choose_address_and_port_and_sigint_exits_0(tmp_path):
    port = free_port()
    process = _app(tmp_path, env={"GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"})
    try:
        _wait_answering(process, f"http://127.0.0.1:{port}")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert f"serving on http://127.0.0.1:{port}" in output and "stopping: every action finished" in output
