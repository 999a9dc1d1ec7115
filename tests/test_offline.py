"""Nothing in the tests or the notebook kernels may reach the network, loopback aside."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

OFFLINE = str(Path(__file__).parent / "offline")
PROBE = (
    "import socket\n"
    "try:\n"
    "    socket.create_connection(('192.0.2.1', 80), timeout=2)\n"
    "    print('connected')\n"
    "except ConnectionRefusedError as e:\n"
    "    print('refused:', e)\n"
)


def test_this_process_refuses_the_network():
    with pytest.raises(ConnectionRefusedError, match="offline"):
        socket.create_connection(("192.0.2.1", 80), timeout=2)
    with pytest.raises(ConnectionRefusedError, match="offline"):
        socket.getaddrinfo("pypi.invalid", 443)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(ConnectionRefusedError, match="offline"):
        udp.sendto(b"x", ("192.0.2.1", 53))
    udp.close()


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    peer, _ = server.accept()
    client.sendall(b"ok")
    assert peer.recv(2) == b"ok"
    for s in (client, peer, server):
        s.close()
    assert socket.getaddrinfo("localhost", 80)


def test_child_processes_inherit_the_guard():
    assert OFFLINE in os.environ["PYTHONPATH"].split(os.pathsep)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=os.environ).stdout
    assert out.startswith("refused: ") and "disabled while the book runs offline" in out


def _run_in_kernel(code: str) -> list[dict]:
    """Start a kernel as nbval and the book build do, run ``code``, return its output messages."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        outputs = []
        client.execute_interactive(code, timeout=60, output_hook=outputs.append)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return outputs


def test_notebook_kernels_refuse_the_network():
    outputs = _run_in_kernel(PROBE)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert text.startswith("refused: ") and "disabled while the book runs offline" in text, text


def test_notebook_kernels_still_draw_figures():
    """The test environment must not change the kernels' inline backend: the book needs the figures."""
    assert "MPLBACKEND" not in os.environ or "inline" in os.environ["MPLBACKEND"]
    outputs = _run_in_kernel("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    kinds = [kind for m in outputs if m["msg_type"] == "display_data" for kind in m["content"]["data"]]
    assert "image/png" in kinds, outputs
