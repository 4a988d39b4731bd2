"""What kubeadm, the kubelet and the pod network left on a node, and the state each role reads from that.

One contract for the three roles that look before they act:
- kubeadm_init: initialised / fresh / down / partial / foreign (with the API server's answer);
- kubeadm_join: joined / fresh / partial / foreign;
- node_reset: kubeadm's leftovers and everything else a reset removes (units, the runtime's pods and containers,
  mounts, paths, the pods' network namespaces, copies of the admin kubeconfig, links).

What kubeadm leaves is one list (KUBEADM_FILES, and KUBEADM_DIRS once they hold anything), and kubeboot marks an init
or a join it runs in one way: MARKERS[kind] holds "started" before kubeadm runs and "complete" after it succeeded.

The Ansible module `kubeboot_kubeadm_state` (plugins/modules/) runs this on the node; it reads only. This file is
also the module's module_utils (plugins/module_utils/kubeboot_kubeadm_state.py links to it), so it uses the standard
library only and runs on every Python the nodes have (3.9 and later). Every path is looked up below `root` ("/" on
a node, a canned tree in the tests); commands run through `run` (argv -> rc, stdout, stderr) with binaries the
caller found (`Tools`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# What kubeadm init and join write on a node: these files, and these directories once they hold anything.
KUBEADM_FILES = tuple(
    "/etc/kubernetes/" + name
    for name in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                 "controller-manager.conf", "scheduler.conf")
)
KUBEADM_DIRS = ("/etc/kubernetes/manifests", "/etc/kubernetes/pki", "/var/lib/kubelet", "/var/lib/etcd")
# Before an init or a join, /var/lib/kubelet is no sign of one: the kubelet's package and a kubelet started before
# kubeadm configured it may write there. A reset still empties it.
KUBELET_DIR = "/var/lib/kubelet"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
CA_CERT = "/etc/kubernetes/pki/ca.crt"
# Static pods only a control plane has.
CONTROL_PLANE_MANIFESTS = ("/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml")

# kubeboot's marker of an init or a join it runs on the node: STARTED before kubeadm runs, COMPLETE after it succeeded.
MARKERS = {"init": "/etc/kubernetes/kubeboot-init.state", "join": "/etc/kubernetes/kubeboot-join.state"}
STARTED = "started"
COMPLETE = "complete"

PURPOSES = ("init", "join", "reset")
INIT_STATES = ("initialised", "fresh", "down", "partial", "foreign")
JOIN_STATES = ("joined", "fresh", "partial", "foreign")

# Seconds between two questions to an API server that does not answer yet.
API_RETRY_INTERVAL = 2
MOUNTS_BELOW = re.compile(r"^(/var/lib/kubelet(/|$)|/(var/)?run/netns/cni-)")
NETNS_DIR = "/run/netns"
CRI_ID = re.compile(r"[0-9a-f]{12,64}")

if TYPE_CHECKING:
    # Runs a command (argv) on the node: its exit status, stdout and stderr.
    Run = Callable[[Sequence[str]], tuple[int, str, str]]


@dataclass(frozen=True)
class Tools:
    """The binaries found on the node (None: not installed)."""

    kubectl: str | None = None
    kubeadm: str | None = None
    crictl: str | None = None
    systemctl: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class ResetScope:
    """What node_reset removes besides kubeadm's own files (its role inputs)."""

    paths: Sequence[str] = ()
    emptied_dirs: Sequence[str] = ()
    kubeconfig_copies: Sequence[str] = ()
    links: Sequence[str] = ()
    link_prefixes: Sequence[str] = ()
    cri_socket: str = "unix:///var/run/containerd/containerd.sock"
    runtime_service: str = "containerd"


def at(root: str, path: str) -> str:
    """`path` (absolute, as on the node) below `root`."""
    return os.path.join(root, path.lstrip("/"))


def nonempty(path: str) -> bool:
    """A directory (not a link to one) that holds anything."""
    return os.path.isdir(path) and not os.path.islink(path) and bool(os.listdir(path))


def kubeadm_leftovers(root: str = "/", *, kubelet_dir: bool = True) -> list[str]:
    """kubeadm's files and non-empty directories on the node, as node paths (without /var/lib/kubelet when
    kubelet_dir is false: the signs of an init or a join)."""
    return [f for f in KUBEADM_FILES if os.path.exists(at(root, f))] + [
        d for d in KUBEADM_DIRS if nonempty(at(root, d)) and (kubelet_dir or d != KUBELET_DIR)
    ]


def read_marker(kind: str, root: str = "/") -> str:
    """What kubeboot's marker of an init or join says: STARTED, COMPLETE or "" (none)."""
    try:
        with open(at(root, MARKERS[kind]), encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def init_state(leftovers: Sequence[str], marker: str, api: bool) -> str:
    """The first control plane's state.

    initialised  the API server answers through admin.conf (and no kubeboot init is pending here): nothing to do
    fresh        nothing of an init: run it
    down         kubeboot completed an init here but the API server does not answer: never reset
    partial      an init kubeboot started here failed half-way: reset -f, then init again
    foreign      leftovers of an init kubeboot did not start, and no working API server
    """
    if api and marker != STARTED:
        return "initialised"
    if not leftovers:
        return "fresh"
    if marker == COMPLETE:
        return "down"
    if marker == STARTED:
        return "partial"
    return "foreign"


def join_state(leftovers: Sequence[str], marker: str) -> str:
    """A joining node's state.

    joined   kubelet.conf is here (and no kubeboot join is pending here): left alone
    fresh    nothing of a join: join
    partial  a join kubeboot started here failed half-way: reset -f, then join again
    foreign  leftovers of a join or init kubeboot did not start
    """
    if KUBELET_CONF in leftovers and marker != STARTED:
        return "joined"
    if not leftovers:
        return "fresh"
    if marker == STARTED:
        return "partial"
    return "foreign"


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def api_answers(
    run: Run,
    kubectl: str | None,
    kubeconfig: str,
    wait: int,
    keep_waiting: bool,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> tuple[bool, str]:
    """Whether the API server answers /readyz through `kubeconfig`, and its last error line when it does not.

    Asked once, or, with `keep_waiting` (only a completed init is worth waiting for), until it answers or `wait`
    seconds have passed."""
    if not kubectl:
        return False, "kubectl not found"
    deadline = clock() + wait
    while True:
        rc, out, err = run([kubectl, f"--kubeconfig={kubeconfig}", "get", "--raw=/readyz", "--request-timeout=5s"])
        if rc == 0:
            return True, ""
        error = last_line(err) or last_line(out) or f"kubectl exited with {rc}"
        if not keep_waiting or clock() >= deadline:
            return False, error
        sleep(API_RETRY_INTERVAL)


def probe_init(
    run: Run,
    tools: Tools,
    api_wait: int,
    *,
    root: str = "/",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> dict[str, Any]:
    marker = read_marker("init", root)
    leftovers = kubeadm_leftovers(root, kubelet_dir=False)
    api, api_error = False, ""
    if ADMIN_CONF in leftovers:
        api, api_error = api_answers(run, tools.kubectl, at(root, ADMIN_CONF), api_wait, marker == COMPLETE,
                                     clock=clock, sleep=sleep)
    return {"state": init_state(leftovers, marker, api), "api": api, "api_error": api_error,
            "leftovers": leftovers, "marker": marker, "marker_path": MARKERS["init"]}


def probe_join(root: str = "/") -> dict[str, Any]:
    marker = read_marker("join", root)
    leftovers = kubeadm_leftovers(root, kubelet_dir=False)
    return {"state": join_state(leftovers, marker), "leftovers": leftovers, "marker": marker,
            "marker_path": MARKERS["join"]}


# ---------------------------------------------------------------- node_reset


def unit_exists(run: Run, systemctl: str | None, name: str) -> bool:
    return bool(systemctl) and run([str(systemctl), "cat", f"{name}.service"])[0] == 0


def unescape_mountinfo(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def kubelet_mounts(mountinfo: str) -> list[str]:
    """Mount points below /var/lib/kubelet and the pods' network namespaces, deepest first (the unmount order)."""
    found = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = unescape_mountinfo(fields[4])
            if MOUNTS_BELOW.match(point):
                found.add(point)
    return sorted(found, key=lambda p: (-p.count("/"), p))


def read_mounts(root: str = "/") -> list[str]:
    try:
        with open(at(root, "/proc/self/mountinfo"), encoding="utf-8", errors="replace") as f:
            return kubelet_mounts(f.read())
    except OSError:
        return []


def cri_ids(run: Run, crictl: str | None, socket: str, kind: str, root: str = "/") -> list[str]:
    """IDs of the pods (kind "pods") or containers (kind "ps") the runtime holds; none when it is not there."""
    if not crictl or not os.path.exists(at(root, socket.replace("unix://", "", 1))):
        return []
    flags = ["-a", "-q"] if kind == "ps" else ["-q"]
    rc, out, _ = run([crictl, "--runtime-endpoint", socket, kind, *flags])
    return [w for w in out.split() if CRI_ID.fullmatch(w)] if rc == 0 else []


def kubeconfig_copies(candidates: Sequence[str], root: str = "/") -> list[str]:
    """The candidates that are copies of this cluster's admin kubeconfig: the same bytes as admin.conf, or the
    cluster's CA (base64, as kubeconfigs hold it) in them. Anything else is not ours."""
    admin = b""
    if os.path.isfile(at(root, ADMIN_CONF)):
        with open(at(root, ADMIN_CONF), "rb") as f:
            admin = f.read()
    ca = b""
    if os.path.isfile(at(root, CA_CERT)):
        with open(at(root, CA_CERT), "rb") as f:
            ca = base64.b64encode(f.read())
    found = []
    for path in candidates:
        if not os.path.isfile(at(root, path)):
            continue
        with open(at(root, path), "rb") as f:
            data = f.read()
        if (admin and data == admin) or (ca and ca in data):
            found.append(path)
    return found


def our_links(ip_json: str, names: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """Links to delete from `ip -j -d addr show`: those named, those with a prefix, then those enslaved to them."""
    try:
        infos = [i for i in json.loads(ip_json or "[]") if isinstance(i, dict) and "ifname" in i]
    except ValueError:
        infos = []
    ours = {i["ifname"] for i in infos if i["ifname"] in names or i["ifname"].startswith(tuple(prefixes))}
    # tunl0 may be the kernel's fallback device of its tunnel module: it cannot be deleted, and is ours only while
    # it is up or has an address.
    fallback = {i["ifname"] for i in infos
                if i["ifname"] == "tunl0" and not i.get("addr_info") and "UP" not in i.get("flags", [])}
    enslaved = {i["ifname"] for i in infos if i.get("master") in ours}
    return sorted(ours - fallback) + sorted(enslaved - ours)


def read_links(run: Run, ip: str | None, names: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    if not ip:
        return []
    rc, out, _ = run([ip, "-j", "-d", "addr", "show"])
    return our_links(out, names, prefixes) if rc == 0 else []


def present_paths(paths: Sequence[str], emptied_dirs: Sequence[str], root: str = "/") -> list[str]:
    """The paths that exist, then the entries of the directories to empty."""
    found = [p for p in paths if os.path.lexists(at(root, p))]
    for d in emptied_dirs:
        if nonempty(at(root, d)):
            found += [os.path.join(d, e) for e in sorted(os.listdir(at(root, d)))]
    return found


def pod_netns(root: str = "/") -> list[str]:
    """The pods' network namespaces the CNI plugins left (/run/netns/cni-*)."""
    d = at(root, NETNS_DIR)
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(NETNS_DIR, n) for n in os.listdir(d) if n.startswith("cni-"))


def probe_reset(run: Run, tools: Tools, scope: ResetScope, root: str = "/") -> dict[str, Any]:
    return {
        "leftovers": kubeadm_leftovers(root),
        "kubeadm": bool(tools.kubeadm),
        "control_plane": any(os.path.exists(at(root, m)) for m in CONTROL_PLANE_MANIFESTS),
        "kubelet_unit": unit_exists(run, tools.systemctl, "kubelet"),
        "runtime_unit": unit_exists(run, tools.systemctl, scope.runtime_service),
        "pods": cri_ids(run, tools.crictl, scope.cri_socket, "pods", root),
        "containers": cri_ids(run, tools.crictl, scope.cri_socket, "ps", root),
        "mounts": read_mounts(root),
        "paths": present_paths(scope.paths, scope.emptied_dirs, root),
        "netns": pod_netns(root),
        "kubeconfig_copies": kubeconfig_copies(scope.kubeconfig_copies, root),
        "links": read_links(run, tools.ip, scope.links, scope.link_prefixes),
    }
