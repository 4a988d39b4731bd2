"""Fixtures for the stand-in's own tests: a temp root, the API server on loopback, the real kubectl."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kubeboot_standin import certs  # noqa: E402

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
# The stand-in runs under the node's interpreter (Debian python3 + python3-cryptography/yaml) when present.
NODE_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def standin_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBEBOOT_STANDIN_ROOT"] = str(root)
    env["PYTHONPATH"] = str(HERE)
    env["HOME"] = str(root / "root")
    env.pop("KUBECONFIG", None)
    return env


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(s):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("api server did not come up")


@dataclass
class Cluster:
    root: Path
    port: int
    kubeconfig: Path
    ca: certs.KeyPair
    proc: subprocess.Popen[bytes]

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        if not KUBECTL.exists():
            pytest.skip(f"the real kubectl 1.33 is not installed at {KUBECTL}")
        cp = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and cp.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {cp.stderr}")
        return cp


def write_pki(root: Path) -> certs.KeyPair:
    pki = root / "etc/kubernetes/pki"
    ca = certs.new_ca()
    certs.write_pair(pki, "ca", ca)
    srv = certs.issue(ca, "kube-apiserver", server=True, dns=["kubernetes", "localhost"], ips=["127.0.0.1"])
    certs.write_pair(pki, "apiserver", srv)
    return ca


def start_apiserver(root: Path, port: int) -> subprocess.Popen[bytes]:
    log = open(root / "apiserver.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [
            NODE_PYTHON,
            "-m",
            "kubeboot_standin.apiserver.main",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--advertise-address=127.0.0.1",
        ],
        env=standin_env(root),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    root = tmp_path / "root"
    root.mkdir()
    ca = write_pki(root)
    admin = certs.issue(ca, "kubernetes-super-admin", ["system:masters"], client=True)
    kc = root / "etc/kubernetes/super-admin.conf"
    port = free_port()
    certs.write_kubeconfig(
        kc,
        certs.kubeconfig(
            f"https://127.0.0.1:{port}",
            ca.cert_pem(),
            "kubernetes-super-admin",
            cert_pem=admin.cert_pem(),
            key_pem_=admin.key_pem(),
        ),
    )
    proc = start_apiserver(root, port)
    try:
        wait_port(port, proc)
        yield Cluster(root, port, kc, ca, proc)
    finally:
        stop(proc)
        if os.environ.get("STANDIN_KEEP_LOGS"):
            shutil.copy(root / "apiserver.log", f"/tmp/apiserver-{port}.log")
