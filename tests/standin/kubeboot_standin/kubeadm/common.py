"""Shared pieces of the kubeadm commands: phase runner, kubelet start, waits, node identity."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from .. import faults, paths
from ..client import Client
from ..config import parse_duration
from .files import say


class PhaseError(Exception):
    def __init__(self, phase: str, msg: str) -> None:
        super().__init__(f"error execution phase {phase}: {msg}")
        self.phase = phase


def run_phases(
    phases: list[tuple[str, Callable[[], None]]], skip: list[str], command: str, only: str | None = None
) -> None:
    pending = faults.take(command)
    for name, fn in phases:
        if only is not None and not (name == only or name.startswith(only + "/")):
            continue
        if only is None and any(name == s or name.startswith(s + "/") for s in skip):
            continue
        try:
            faults.check(pending, name)
            fn()
        except PhaseError:
            raise
        except Exception as exc:  # every failure inside a phase is reported the way kubeadm reports it
            raise PhaseError(name, str(exc)) from exc


def default_address() -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])
    except OSError:
        raise RuntimeError("unable to select an IP from default routes.") from None
    finally:
        s.close()


def in_test_root() -> bool:
    return bool(os.environ.get("KUBEBOOT_STANDIN_ROOT"))


def systemctl(*args: str) -> None:
    """Drive systemd on a node; under a test root the tests' own supervisor plays systemd."""
    if in_test_root():
        marker = paths.host(f"/run/kubeboot-standin/systemctl-{'-'.join(args)}")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return
    if not shutil.which("systemctl"):
        return
    subprocess.run(["systemctl", *args], check=False, capture_output=True)


def start_kubelet() -> None:
    say("[kubelet-start] Starting the kubelet")
    systemctl("daemon-reload")
    systemctl("restart", "kubelet")


def wait_kubelet(port: int, timeout: str) -> None:
    limit = parse_duration(timeout)
    say(
        f"[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:{port}/healthz. This can take up to "
        f"{timeout}"
    )
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    say(f"[kubelet-check] The kubelet is healthy after {time.monotonic() - start:.6f}s")
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        "The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned error: Get "
        f'"http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: connection refused\n\n'
        "Unfortunately, an error has occurred, likely caused by:\n"
        "\t- The kubelet is not running\n"
        "\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\n"
        "If you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n"
        "\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'"
    )


def wait_api(client: Client, url: str, timeout: str, label: str = "kube-apiserver") -> None:
    limit = parse_duration(timeout)
    say(f"[control-plane-check] Checking {label} at {url}/livez")
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < limit:
        try:
            client.request("GET", "/livez")
            say(f"[control-plane-check] {label} is healthy after {time.monotonic() - start:.6f}s")
            return
        except Exception as exc:  # connection refused while it starts
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"{label} check failed at {url}/livez: {last}")


def wait_for(what: str, fn: Callable[[], Any], timeout: float) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            v = fn()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_admin_home(_: str) -> None:
    paths.host("/root")


def klog_warning(msg: str, where: str = "initconfiguration.go:332") -> None:
    """A klog warning line on stderr, as kubeadm prints non-fatal config decoding problems."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    print(f"W{stamp} {os.getpid():>7} {where}] {msg}", file=sys.stderr, flush=True)


def config_warnings(warnings: list[str]) -> None:
    """Non-fatal config decoding problems: strict decoding errors as klog warnings (stderr), the rest as kubeadm
    prints them (stdout)."""
    for w in warnings:
        if "strict decoding error" in w:
            klog_warning(w)
        else:
            print(w, flush=True)
