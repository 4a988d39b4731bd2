"""Side effects on the host: commands, preflight checks, bridge, guard rules and recorded processes."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from kubeboot.errors import KubebootError, UsageError

# Host commands the sandbox needs, and the Debian package that brings each.
REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "iptables": "iptables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}
# Memory a node may grow to with containerd and the Kubernetes services running.
NODE_MEMORY_BUDGET_MB = 256


def run(args: Sequence[str], *, check: bool = True, capture: bool = True, timeout: float = 120) -> str:
    """Run a host command; on failure raise one line with the command and its stderr."""
    try:
        result = subprocess.run(
            list(args), check=False, capture_output=capture, text=True, timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError as exc:
        raise KubebootError(f"{args[0]}: not found on this host") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        raise KubebootError(f"`{' '.join(args)}` failed: {detail[-1] if detail else f'exit {result.returncode}'}")
    return result.stdout or ""


def check_root() -> None:
    if os.geteuid() != 0:
        raise UsageError("the sandbox needs root (bridges, mounts, systemd-nspawn): run it with sudo or as root")


def check_tools() -> None:
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise UsageError(f"missing host packages for the sandbox: apt-get install {' '.join(missing)}")


def check_kernel() -> None:
    filesystems = Path("/proc/filesystems").read_text()
    problems = []
    if "overlay" not in filesystems:
        problems.append("overlayfs (CONFIG_OVERLAY_FS)")
    if not Path("/proc/sys/net/bridge").exists() and not Path("/sys/class/net").exists():
        problems.append("bridge (CONFIG_BRIDGE)")
    if not Path("/proc/net/ip_tables_names").exists() and not Path("/proc/sys/net/netfilter").exists():
        problems.append("netfilter (CONFIG_NETFILTER)")
    if problems:
        raise UsageError(f"this kernel lacks what the sandbox needs: {', '.join(problems)}")


def check_memory(new_nodes: int) -> None:
    if new_nodes <= 0:
        return
    available_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available_kb = int(line.split()[1])
    needed_mb = new_nodes * NODE_MEMORY_BUDGET_MB
    if available_kb // 1024 < needed_mb:
        fit = available_kb // 1024 // NODE_MEMORY_BUDGET_MB
        raise UsageError(
            f"{new_nodes} more nodes need about {needed_mb} MB but {available_kb // 1024} MB are available: "
            f"ask for at most {fit} nodes"
        )


def host_networks(exclude_link: str | None = None) -> list[tuple[str, ipaddress.IPv4Network]]:
    """Every IPv4 network on a host interface or route, with the interface that holds it."""
    found: list[tuple[str, ipaddress.IPv4Network]] = []
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
        if link.get("ifname") == exclude_link:
            continue
        for info in link.get("addr_info", []):
            net = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
            found.append((str(link.get("ifname")), ipaddress.IPv4Network(net)))
    for route in json.loads(run(["ip", "-j", "-4", "route", "show"]) or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == exclude_link:
            continue
        found.append((str(route.get("dev")), ipaddress.IPv4Network(ipaddress.ip_network(dst, strict=False))))
    return found


def check_subnet_free(subnet: ipaddress.IPv4Network, own_bridge: str) -> None:
    for dev, net in host_networks(exclude_link=own_bridge):
        if net.overlaps(subnet):
            raise UsageError(
                f"--subnet {subnet} overlaps {net} already in use on this host ({dev}): "
                "choose another private subnet with --subnet"
            )


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge(name: str, address: str) -> bool:
    """Create the bridge if missing; return True when this call created it."""
    created = False
    if not link_exists(name):
        run(["ip", "link", "add", name, "type", "bridge"])
        created = True
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", name])
    if address not in addrs:
        run(["ip", "addr", "add", address, "dev", name])
    run(["ip", "link", "set", name, "up"])
    return created


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "delete", name], check=False)


def _iptables(*args: str, check: bool = True) -> str:
    return run(["iptables", "-w", *args], check=check)


def guard_rules(chain: str, bridge: str) -> list[list[str]]:
    """The guard chain's rules: what enters and leaves through the sandbox's own bridge stays between its nodes
    (node to node, and pod to pod routed via another node, e.g. 10.244.x.y with flannel host-gw; br_netfilter makes
    bridged frames traverse FORWARD); anything else that would cross the host from or to the bridge is dropped."""
    return [["-A", chain, "-i", bridge, "-o", bridge, "-j", "RETURN"], ["-A", chain, "-j", "DROP"]]


def ensure_guard(chain: str, bridge: str) -> bool:
    """Drop anything that would leave the sandbox's bridge, or enter it from elsewhere, through this host."""
    created = _iptables("-n", "-L", chain, check=False) == ""
    if created:
        _iptables("-N", chain)
    _iptables("-F", chain)
    for rule in guard_rules(chain, bridge):
        _iptables(*rule)
    for direction in ("-i", "-o"):
        rule = ["FORWARD", direction, bridge, "-j", chain]
        if _rule_missing(rule):
            _iptables("-I", *rule)
    return created


def _rule_missing(rule: list[str]) -> bool:
    result = subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True, check=False)
    return result.returncode != 0


def remove_guard(chain: str, bridge: str) -> None:
    for direction in ("-i", "-o"):
        rule = ["FORWARD", direction, bridge, "-j", chain]
        while not _rule_missing(rule):
            _iptables("-D", *rule)
    if _iptables("-n", "-L", chain, check=False):
        _iptables("-F", chain)
        _iptables("-X", chain)


def guard_rules_present(chain: str) -> bool:
    return chain in _iptables("-S", check=False)


def spawn(args: Sequence[str], log: Path, cwd: Path | None = None) -> int:
    """Start a long-running process in its own session, detached from the caller; return its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, cwd=cwd,
        )
    return proc.pid


def pid_matches(pid: int, marker: str) -> bool:
    """True when PID is alive and its command line holds the marker (so a reused PID is never signalled)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def stop_process(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: only if the PID still is the process recorded."""
    if not pid_matches(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_matches(pid, marker) or _is_zombie(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def is_mounted(path: Path) -> bool:
    target = str(path.resolve()) if path.exists() else str(path)
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1].replace("\\040", " ") == target:
            return True
    return False


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and (fields[1] == prefix or fields[1].startswith(prefix + "/")):
            found.append(fields[1])
    return found


def unmount_tree(path: Path) -> None:
    """Unmount everything at or under path, deepest first."""
    for mountpoint in sorted(mounts_under(path), key=len, reverse=True):
        run(["umount", mountpoint], check=False)
        if mountpoint in mounts_under(path):
            run(["umount", "-l", mountpoint], check=False)
