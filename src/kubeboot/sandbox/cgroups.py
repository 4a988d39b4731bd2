"""Each sandbox node's own cgroup subtree on the host: where it goes, how it is removed, what it uses.

Every node's runner moves itself, before each systemd-nspawn start, into a cgroup of its own in every hierarchy,
below the cgroup kubeboot runs in. nspawn then gives the node a cgroup namespace rooted there: the node's systemd,
containerd and kubelet see only their own subtree and cannot touch another node's (or another sandbox's) cgroups.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: its controllers as /proc/self/cgroup names them, and where it is mounted."""

    controllers: str  # "memory", "name=systemd", "" for cgroup v2
    mountpoint: Path
    root: str  # the mount's root inside the hierarchy (mountinfo field 4)


def hierarchies(mountinfo: str | None = None) -> list[Hierarchy]:
    """The cgroup hierarchies mounted on this host (v1 controllers, named ones, and cgroup v2)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found: dict[str, Hierarchy] = {}
    for line in text.splitlines():
        head, _, tail = line.partition(" - ")
        fields, after = head.split(), tail.split()
        if len(fields) < 5 or len(after) < 3 or after[0] not in ("cgroup", "cgroup2"):
            continue
        if after[0] == "cgroup2":
            controllers = ""
        else:
            options = after[2].split(",")
            named = [o for o in options if o.startswith("name=")]
            known = [o for o in options if o in V1_CONTROLLERS]
            controllers = ",".join(sorted(known) + named)
        # The first mount of a hierarchy wins (a node's own view may be mounted again further down).
        found.setdefault(controllers, Hierarchy(controllers, Path(fields[4]), fields[3]))
    return list(found.values())


V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "perf_event",
    "hugetlb", "pids", "rdma", "misc",
})


def own_cgroups(proc_cgroup: str | None = None) -> dict[str, str]:
    """This process's cgroup in each hierarchy, keyed like Hierarchy.controllers (sorted controller names)."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else []
        named = [n for n in names if n.startswith("name=")]
        result[",".join(sorted(n for n in names if n not in named) + named)] = parts[2]
    return result


def node_cgroup_dirs(name: str, mountinfo: str | None = None, proc_cgroup: str | None = None) -> list[str]:
    """Host directories of a node's cgroup `name` in every hierarchy, below this process's own cgroup there."""
    own = own_cgroups(proc_cgroup)
    dirs: list[str] = []
    for item in hierarchies(mountinfo):
        current = own.get(item.controllers)
        if current is None:
            continue
        relative = current
        if item.root != "/" and (current == item.root or current.startswith(item.root + "/")):
            relative = current[len(item.root):]
        dirs.append(str(item.mountpoint / relative.lstrip("/") / name))
    return dirs


def runner_lines(dirs: list[str]) -> list[str]:
    """Shell lines that create the node's cgroups (a new v1 cpuset gets its parent's CPUs and memory nodes first,
    or no task may join it) and move the calling shell into them."""
    lines = ["cgroups_join() {"]
    for directory in dirs:
        path, parent = shlex.quote(directory), shlex.quote(str(Path(directory).parent))
        lines.append(f"  [ -d {path} ] || mkdir {path} || return 1")  # never its parents: they are not ours
        if (Path(directory).parent / "cpuset.cpus").exists():
            for name in ("cpuset.cpus", "cpuset.mems"):
                lines.append(f'  [ -n "$(cat {path}/{name})" ] || cat {parent}/{name} > {path}/{name} || return 1')
        lines.append(f"  echo $$ > {path}/cgroup.procs || return 1")
    lines += ["  return 0", "}"]
    return lines


def pids_in(directory: Path) -> list[int]:
    """Every PID in a cgroup directory and its descendants."""
    pids: list[int] = []
    for dirpath, _, _ in os.walk(directory):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split()]
    return pids


def remove_tree(directory: Path, timeout: float = 10.0) -> bool:
    """Remove a recorded cgroup directory and its sub-cgroups, deepest first, once no process is left in them.

    Processes still there after `timeout` (the node's own, its runner gone) are killed: they are in this node's
    cgroup and nowhere else. True when the directory is gone.
    """
    if not directory.is_dir():
        return True
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        left = pids_in(directory)
        if not left:
            break
        if time.monotonic() >= deadline:
            if killed:
                return False
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + timeout
        time.sleep(0.1)
    subdirs = sorted((Path(d) for d, _, _ in os.walk(directory)), key=lambda p: len(p.parts), reverse=True)
    for path in subdirs:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)  # a process that just left may not be accounted out yet
    return not directory.exists()


def memory_dir(dirs: list[str]) -> Path | None:
    """The node's cgroup in the v1 memory hierarchy, from its recorded directories."""
    for directory in dirs:
        path = Path(directory)
        if (path / "memory.usage_in_bytes").exists():
            return path
    return None


@dataclass(frozen=True)
class MemoryUse:
    usage: int  # memory.usage_in_bytes
    rss: int  # total_rss of memory.stat (the node's whole subtree)
    cache: int  # total_cache of memory.stat


def memory_use(dirs: list[str]) -> MemoryUse | None:
    directory = memory_dir(dirs)
    if directory is None:
        return None
    try:
        usage = int((directory / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines() if " " in line)
    except OSError:
        return None
    return MemoryUse(usage, int(stat.get("total_rss", stat.get("rss", 0))),
                     int(stat.get("total_cache", stat.get("cache", 0))))
