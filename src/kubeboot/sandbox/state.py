"""What a sandbox made, recorded before it is made, so `down` can undo exactly that and nothing else."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE_ROOT = Path("/var/lib/kubeboot/sandbox")
DEFAULT_CACHE_ROOT = Path("/var/cache/kubeboot")
_SAVE_LOCK = threading.Lock()  # nodes are prepared in parallel threads that all record into one state


def state_root() -> Path:
    return Path(os.environ.get("KUBEBOOT_SANDBOX_STATE", str(DEFAULT_STATE_ROOT)))


def cache_root() -> Path:
    return Path(os.environ.get("KUBEBOOT_CACHE", str(DEFAULT_CACHE_ROOT)))


@dataclass
class NodeState:
    name: str
    index: int
    address: str
    nics: list[str]
    macs: list[str]
    groups: list[str] = field(default_factory=list)
    mounted: bool = False
    runner_pid: int = 0
    cgroups: list[str] = field(default_factory=list)  # host directories of the node's cgroup, one per hierarchy


@dataclass
class ProcessState:
    pid: int
    marker: str  # a string that must appear in /proc/PID/cmdline before the PID is signalled


@dataclass
class SandboxState:
    name: str
    subnet: str = ""
    bridge: str = ""
    bridge_created: bool = False
    chain: str = ""
    chain_created: bool = False
    primary_nic: str = "eth0"
    extra_nics: int = 0
    rootfs: str = ""
    inventory: str = ""
    serve_dir: str = ""
    serve_port: int = 0
    apt_proxy_port: int = 0
    extra_vars: dict[str, Any] = field(default_factory=dict)  # written into the inventory (e.g. by --standin)
    # --standin: each minor the stand-in repository serves -> the variables that point a cluster at it
    standin_releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    processes: dict[str, ProcessState] = field(default_factory=dict)
    nodes: dict[str, NodeState] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return state_root() / self.name

    @property
    def key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def node_dir(self, node: str) -> Path:
        return self.directory / "nodes" / node

    def save(self) -> None:
        with _SAVE_LOCK:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / "state.json.tmp"
            tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
            tmp.replace(self.directory / "state.json")

    @classmethod
    def load(cls, name: str) -> SandboxState | None:
        path = state_root() / name / "state.json"
        if not path.exists():
            return None
        raw: dict[str, Any] = json.loads(path.read_text())
        nodes = {key: NodeState(**value) for key, value in raw.pop("nodes", {}).items()}
        processes = {key: ProcessState(**value) for key, value in raw.pop("processes", {}).items()}
        return cls(**raw, nodes=nodes, processes=processes)


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise `up` and `down` of one sandbox."""
    directory = state_root()
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / f".{name}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if not (directory / name / "state.json").exists():
                # Nothing recorded (refused input, or `down` finished): leave no trace of the lock.
                lock.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    directory.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)
