"""Processes a sandbox runs on its bridge address: the apt caching proxy and, when asked, a static HTTP server."""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from pathlib import Path

from kubeboot.errors import KubebootError
from kubeboot.sandbox.host import pid_matches, spawn, stop_process
from kubeboot.sandbox.state import ProcessState, SandboxState, cache_root

APT_PROXY_PORT = 3150  # not 3142, so a system apt-cacher-ng service on the host is left alone
SERVE_PORT = 8088
# The Debian suites a node's apt uses (its sources.list) and where their index files are.
APT_SOURCES = (
    ("http://deb.debian.org/debian", "bookworm"),
    ("http://deb.debian.org/debian", "bookworm-updates"),
    ("http://deb.debian.org/debian-security", "bookworm-security"),
)
# apt-cacher-ng 3.7 treats InRelease as volatile and asks the mirror again whenever a client asks; when several
# nodes ask within the same second it fails to move its own copy aside ("errno: File exists") and hands one of them
# a reply that leaves `apt-get update` waiting forever. So for a sandbox InRelease is static: fetched once, at `up`
# (the copy of an earlier run is dropped first), and every node of the run sees the same one.
STATIC_INDEX_PATTERN = r"(^|.*/)InRelease$"


def sources_list() -> str:
    return "".join(f"deb {mirror} {suite} main\n" for mirror, suite in APT_SOURCES)


def wait_port(address: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise KubebootError(f"nothing answers on {address}:{port} after {timeout:.0f}s")


def _running(state: SandboxState, key: str) -> bool:
    proc = state.processes.get(key)
    return proc is not None and pid_matches(proc.pid, proc.marker)


def ensure_apt_proxy(state: SandboxState, address: str) -> None:
    """apt-cacher-ng as a plain caching proxy (no backend remapping: it forwards to the host the node asks for)."""
    if _running(state, "apt-proxy"):
        return
    conf = state.directory / "apt-cacher-ng"
    conf.mkdir(parents=True, exist_ok=True)
    cache = cache_root() / "apt-cacher-ng" / state.name
    cache.mkdir(parents=True, exist_ok=True)
    (conf / "acng.conf").write_text(
        f"CacheDir: {cache}\nLogDir: {conf}\nSupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {APT_PROXY_PORT}\nBindAddress: {address}\nPidFile: {conf}/pid\n"
        "ExThreshold: 4\nFollowIndexFileRemoval: 1\nPassThroughPattern: .*\n"
        f"SPfilePatternEx: {STATIC_INDEX_PATTERN}\n"
    )
    for stale in cache.glob("*/**/dists/*/InRelease*"):
        stale.unlink()
    state.apt_proxy_port = APT_PROXY_PORT
    pid = spawn(["apt-cacher-ng", "-c", str(conf), "ForeGround=1"], conf / "console.log")
    state.processes["apt-proxy"] = ProcessState(pid=pid, marker=str(conf))
    state.save()
    wait_port(address, APT_PROXY_PORT)
    warm_index_files(proxy_url(address))


def warm_index_files(proxy: str, timeout: float = 30.0) -> list[str]:
    """Fetch each suite's InRelease through the proxy, one after another, before any node asks: the nodes then
    get the cached copy (STATIC_INDEX_PATTERN). Returns the URLs that could not be fetched: apt on the nodes
    reports those itself."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    failed = []
    for mirror, suite in APT_SOURCES:
        url = f"{mirror}/dists/{suite}/InRelease"
        try:
            with opener.open(url, timeout=timeout) as reply:
                reply.read()
        except OSError:
            failed.append(url)
    return failed


def ensure_http_server(state: SandboxState, address: str, directory: Path) -> None:
    if _running(state, "http") and state.serve_dir == str(directory):
        return
    stop_service(state, "http")
    pid = spawn(
        [sys.executable, "-m", "http.server", str(SERVE_PORT), "--bind", address, "--directory", str(directory)],
        state.directory / "http.log",
    )
    state.processes["http"] = ProcessState(pid=pid, marker=str(directory))
    state.serve_dir = str(directory)
    state.serve_port = SERVE_PORT
    state.save()
    wait_port(address, SERVE_PORT)


def stop_service(state: SandboxState, key: str) -> None:
    proc = state.processes.get(key)
    if proc is None:
        return
    stop_process(proc.pid, proc.marker)
    del state.processes[key]
    state.save()


def stop_all(state: SandboxState) -> None:
    for key in list(state.processes):
        stop_service(state, key)


def served_url(state: SandboxState, address: str) -> str:
    return f"http://{address}:{state.serve_port}"


def proxy_url(address: str) -> str:
    return f"http://{address}:{APT_PROXY_PORT}"
