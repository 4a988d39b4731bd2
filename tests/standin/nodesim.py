"""Host-side simulation of a node for the stand-in's tests: a temp root with the /proc files kubeadm
checks, a fake containerd socket, and a supervisor that plays systemd for the kubelet unit."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import NODE_PYTHON, free_port, standin_env

KUBELET_ARGS = (
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
    "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml"
)


class FakeContainerd:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
                conn.close()
            except OSError:
                continue

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        self.path.unlink(missing_ok=True)


class Node:
    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.root = base / name
        self.healthz = free_port()
        for f, v in (
            ("proc/sys/net/ipv4/ip_forward", "1\n"),
            ("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n"),
            ("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"),
            ("proc/meminfo", "MemTotal:        4000000 kB\n"),
        ):
            p = self.root / f
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(v)
        (self.root / "root").mkdir(exist_ok=True)
        self.containerd: FakeContainerd | None = FakeContainerd(self.root / "var/run/containerd/containerd.sock")
        self.kubelet: subprocess.Popen[bytes] | None = None
        self.running = False
        self.stopped_unit = False
        self.supervisor: threading.Thread | None = None
        self.log = open(self.root / "kubelet.log", "ab")  # noqa: SIM115
        # The version of the node's stand-in packages (KUBEBOOT_STANDIN_VERSION; "" is the stand-in's default):
        # the kubelet picks it up when it (re)starts, kubeadm on every call unless the call names another.
        self.version = ""

    def env(self, version: str | None = None) -> dict[str, str]:
        env = standin_env(self.root)
        env["KUBEBOOT_STANDIN_HEALTHZ_PORT"] = str(self.healthz)
        v = self.version if version is None else version
        if v:
            env["KUBEBOOT_STANDIN_VERSION"] = v
        return env

    def kubeadm(
        self, *args: str, timeout: float = 120, version: str | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubeadm on the node; version: of another kubeadm package than the node's (upgraded first)."""
        return subprocess.run(
            [NODE_PYTHON, "-m", "kubeboot_standin.kubeadm.cli", *args],
            env=self.env(version),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _kubelet_cmd(self) -> list[str]:
        flags = ""
        env_file = self.root / "var/lib/kubelet/kubeadm-flags.env"
        if env_file.exists():
            line = env_file.read_text().strip()
            flags = line.split("=", 1)[1].strip('"') if "=" in line else ""
        return [NODE_PYTHON, "-m", "kubeboot_standin.kubelet", *shlex.split(KUBELET_ARGS), *shlex.split(flags)]

    def _supervise(self) -> None:
        while self.running:
            self.kubelet = subprocess.Popen(
                self._kubelet_cmd(), env=self.env(), stdout=self.log, stderr=subprocess.STDOUT
            )
            while self.running and self.kubelet.poll() is None:
                time.sleep(0.2)
                if self._marker("restart-kubelet") or self._marker("stop-kubelet"):
                    break
            if self.kubelet.poll() is None:
                self.kubelet.terminate()
                try:
                    self.kubelet.wait(15)
                except subprocess.TimeoutExpired:
                    self.kubelet.kill()
                    self.kubelet.wait()
            for _ in range(5):  # RestartSec, shortened
                if not self.running or self._marker("restart-kubelet"):
                    break
                time.sleep(0.2)
            while self.running and self.stopped_unit:
                if self._marker("restart-kubelet"):
                    self.stopped_unit = False
                time.sleep(0.2)

    def _marker(self, name: str) -> bool:
        m = self.root / f"run/kubeboot-standin/systemctl-{name}"
        if m.exists():
            m.unlink()
            if name == "stop-kubelet":
                self.stopped_unit = True
            return True
        return False

    def start_kubelet_service(self) -> None:
        self.running = True
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def restart_kubelet(self) -> None:
        """systemctl restart kubelet."""
        if self.kubelet is not None and self.kubelet.poll() is None:
            self.kubelet.terminate()

    def stop(self) -> None:
        self.running = False
        if self.supervisor is not None:
            self.supervisor.join(30)
        if self.containerd is not None:
            self.containerd.stop()
            self.containerd = None
        self.log.close()

    def kubelet_log(self) -> str:
        return (self.root / "kubelet.log").read_text(errors="replace")


_ = os
