"""One sandbox node: an overlay over the shared rootfs, its own identity, booted by systemd-nspawn."""

from __future__ import annotations

import ipaddress
import secrets
import shlex
import socket
import subprocess
import time
from pathlib import Path

from kubeboot.errors import KubebootError
from kubeboot.sandbox import cgroups, naming, services
from kubeboot.sandbox.host import is_mounted, run, spawn
from kubeboot.sandbox.state import NodeState, SandboxState

RUNNER_MARKER = "kubeboot-sandbox-runner"
NSPAWN_REBOOT_EXIT = 133


def runner_marker(state: SandboxState, node: NodeState) -> str:
    return f"{RUNNER_MARKER}:{state.name}:{node.name}"


def mount_overlay(state: SandboxState, node: NodeState) -> Path:
    base = state.node_dir(node.name)
    upper, work, merged = base / "upper", base / "work", base / "rootfs"
    for path in (upper, work, merged, base / "containerd"):
        path.mkdir(parents=True, exist_ok=True)
    if not is_mounted(merged):
        node.mounted = True
        state.save()  # recorded before the mount, so an interrupted `up` is still undone
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={state.rootfs},upperdir={upper},workdir={work}", str(merged)])
    return merged


def customise(state: SandboxState, node: NodeState, root: Path) -> None:
    """Give a new node its identity; a node that already has one keeps it (so `up` twice changes nothing)."""
    stamp = root / "etc/kubeboot-sandbox-node"
    if stamp.exists():
        return
    subnet = ipaddress.IPv4Network(state.subnet)
    gateway = naming.bridge_address(subnet)
    (root / "etc/hostname").write_text(f"{node.name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{node.name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", str(host_key)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(state.key_file.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    (network / f"10-{node.nics[0]}.network").write_text(
        f"[Match]\nName={node.nics[0]}\n\n[Network]\nAddress={node.address}/{subnet.prefixlen}\n"
        f"Gateway={gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# sandbox node: no DNS; apt reaches the mirror through the proxy on the bridge\n")
    (root / "etc/apt/apt.conf.d/01kubeboot-sandbox-proxy").write_text(
        f'Acquire::http::Proxy "http://{gateway}:{state.apt_proxy_port}";\n'
        f'Acquire::http::Proxy::{gateway} "DIRECT";\n'
    )
    (root / "etc/apt/sources.list").write_text(services.sources_list())
    _install_quirks(root)
    stamp.write_text(f"{state.name}/{node.name}\n")


# Boot-time fixes for what systemd-nspawn does differently from a real host; each runs before the network.
QUIRK_UNITS = {
    # nspawn mounts /sys before it joins the node's network namespace, so /sys/class/net would show the
    # host's links: mount a sysfs of the node's own namespace and bind its network part over /sys.
    "kubeboot-sandbox-sysfs": (
        "mkdir -p /run/kubeboot-sandbox-sysfs && "
        "mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /run/kubeboot-sandbox-sysfs && "
        "mount --bind /run/kubeboot-sandbox-sysfs/class/net /sys/class/net && "
        "mount --bind /run/kubeboot-sandbox-sysfs/devices/virtual/net /sys/devices/virtual/net"
    ),
    # The node has its own network namespace, so its net.* sysctls are its own to set, as on a real host
    # (nspawn leaves /proc/sys/net writable only when it made the namespace itself).
    # Checked by writing a value back unchanged, and tried again: once, with 4 nodes booting together, a node kept
    # a read-only /proc/sys/net and kubeadm's sysctls failed there.
    "kubeboot-sandbox-procsys": (
        "for try in 1 2 3 4 5 6 7 8 9 10; do\n"
        "  cat /proc/sys/net/ipv4/ip_forward > /proc/sys/net/ipv4/ip_forward 2>/dev/null && exit 0\n"
        "  mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net\n"
        "  sleep 0.2\n"
        "done\n"
        "echo 'kubeboot sandbox: /proc/sys/net stays read-only' >&2; exit 1"
    ),
    # nspawn mounts some cgroup v1 controllers read-only; container runtimes need them writable.
    "kubeboot-sandbox-cgroups": (
        "for d in /sys/fs/cgroup/*/; do mountpoint -q \"$d\" && mount -o remount,bind,rw \"$d\"; done; exit 0"
    ),
}


def _install_quirks(root: Path) -> None:
    units = root / "etc/systemd/system"
    wants = units / "sysinit.target.wants"
    scripts = root / "usr/local/lib/kubeboot-sandbox"
    for directory in (wants, scripts):
        directory.mkdir(parents=True, exist_ok=True)
    previous = "local-fs.target"
    for name, command in QUIRK_UNITS.items():
        (scripts / f"{name}.sh").write_text(f"#!/bin/sh\n{command}\n")
        unit = units / f"{name}.service"
        # One after another, so that no two of them change mounts at the same time.
        unit.write_text(
            f"[Unit]\nDescription=Sandbox node boot fix ({name})\nDefaultDependencies=no\n"
            f"After={previous}\nBefore=sysinit.target systemd-networkd.service\n\n"
            "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"ExecStart=/bin/sh /usr/local/lib/kubeboot-sandbox/{name}.sh\n\n[Install]\nWantedBy=sysinit.target\n"
        )
        previous = unit.name
        link = wants / unit.name
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{unit.name}")


def runner_script(state: SandboxState, node: NodeState, root: Path, cgroup_dirs: list[str]) -> str:
    """A shell loop that wires the node's NICs, moves itself into the node's own cgroups, boots the node (nspawn
    gives it a cgroup namespace rooted there), and boots it again when it reboots."""
    netns = naming.netns_name(state.name, node.name)
    lines_up: list[str] = []
    lines_down: list[str] = []
    for nic, (ifname, mac) in enumerate(zip(node.nics, node.macs, strict=True)):
        host_if = naming.host_ifname(state.name, node.index, nic)
        peer_if = naming.peer_ifname(state.name, node.index, nic)
        lines_up += [
            f"  ip link delete {host_if} 2>/dev/null",
            f"  ip link add {host_if} type veth peer name {peer_if}",
            f"  ip link set {peer_if} address {mac} netns {netns}",
            f"  ip -n {netns} link set {peer_if} name {ifname}",
            f"  ip link set {host_if} master {state.bridge} up",
        ]
        lines_down.append(f"  ip link delete {host_if} 2>/dev/null")
    nspawn = [
        "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
        f"--machine={node.name}", f"--directory={root}",
        f"--network-namespace-path=/run/netns/{netns}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        f"--bind={state.node_dir(node.name) / 'containerd'}:/var/lib/containerd",
        "--system-call-filter=@keyring", "--capability=CAP_NET_ADMIN",
    ]
    marker = runner_marker(state, node)
    return "\n".join([
        "#!/bin/bash",
        f"# {marker}: boots sandbox node {node.name} and boots it again after a reboot (exit 133).",
        "set -u",
        "stop=0; child=0",
        'trap \'stop=1; [ "$child" -gt 0 ] && kill -TERM "$child" 2>/dev/null\' TERM INT',
        "links_up() {",
        f"  ip netns delete {netns} 2>/dev/null",
        f"  ip netns add {netns}",
        f"  ip -n {netns} link set lo up",
        *lines_up,
        "}",
        "links_down() {",
        f"  ip netns delete {netns} 2>/dev/null",
        *lines_down,
        "  return 0",
        "}",
        *cgroups.runner_lines(cgroup_dirs),
        'while [ "$stop" -eq 0 ]; do',
        "  links_up",
        "  if ! cgroups_join; then",
        f'    echo "{marker}: cannot move into the node\'s cgroups" >&2; links_down; exit 1',
        "  fi",
        f"  {shlex.join(nspawn)} &",
        "  child=$!",
        '  echo "$child" > nspawn.pid',
        '  wait "$child"; rc=$?',
        '  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done',
        "  child=0; rm -f nspawn.pid",
        "  links_down",
        f'  [ "$rc" -eq {NSPAWN_REBOOT_EXIT} ] || break',
        'done',
        "",
    ])


def start(state: SandboxState, node: NodeState, root: Path) -> None:
    base = state.node_dir(node.name)
    script = base / "runner.sh"
    # Recorded before they are made (so `down` removes them even after an interrupted `up`), kept from an earlier
    # start that ran from another cgroup.
    dirs = cgroups.node_cgroup_dirs(naming.cgroup_name(state.name, node.name))
    node.cgroups += [d for d in dirs if d not in node.cgroups]
    state.save()
    script.write_text(runner_script(state, node, root, dirs))
    script.chmod(0o755)
    marker = runner_marker(state, node)
    # The marker is the script's own path argument, so /proc/PID/cmdline identifies the runner.
    node.runner_pid = spawn(["/bin/bash", str(script), marker], base / "console.log", cwd=base)
    state.save()


def wait_for_ssh(state: SandboxState, nodes: list[NodeState], timeout: float = 300.0) -> None:
    """Wait until every node accepts an SSH login with the sandbox key and verified host key."""
    deadline = time.monotonic() + timeout
    pending = {node.name: node for node in nodes}
    while pending and time.monotonic() < deadline:
        for name, node in list(pending.items()):
            if _port_open(node.address, 22) and ssh(state, node, ["true"], check=False, timeout=10).returncode == 0:
                del pending[name]
        if pending:
            time.sleep(0.3)
    if pending:
        names = ", ".join(sorted(pending))
        raise KubebootError(
            f"nodes not answering SSH after {timeout:.0f}s: {names}; see {state.directory}/nodes/<node>/console.log"
        )


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def ssh_args(state: SandboxState, node: NodeState, *, batch: bool = True) -> list[str]:
    return [
        "ssh", "-i", str(state.key_file),
        "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", f"BatchMode={'yes' if batch else 'no'}", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        f"root@{node.address}",
    ]


def ssh(
    state: SandboxState, node: NodeState, command: list[str], *, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*ssh_args(state, node), "--", shlex.join(command)],
        capture_output=True, text=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise KubebootError(f"{node.name}: `{shlex.join(command)}` failed: {result.stderr.strip()}")
    return result


def host_key_line(node: NodeState, root: Path) -> str:
    key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{node.address},{node.name} {key[0]} {key[1]}\n"
