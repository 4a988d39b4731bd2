"""`up`, `down` and `status` of a sandbox: orchestration over the recorded state."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeboot.errors import UsageError
from kubeboot.sandbox import cgroups, host, naming, node, rootfs, services, standin
from kubeboot.sandbox.state import NodeState, SandboxState, locked, state_root

DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_PRIMARY_NIC = "eth0"
STOP_TIMEOUT = 20.0


@dataclass
class UpOptions:
    name: str = "default"
    layout: str | None = None
    nodes: int | None = None
    subnet: str | None = None
    extra_nics: int = 0
    primary_nic: str = DEFAULT_PRIMARY_NIC
    inventory: Path | None = None
    serve: Path | None = None
    standin: bool = False
    standin_minor: str | None = None  # the minor the inventory gets (default: the newest the stand-in serves)
    mirror: str = rootfs.DEFAULT_MIRROR


@dataclass
class UpResult:
    state: SandboxState
    started: list[str]
    rootfs_build_seconds: float
    seconds: float


def default_inventory_path(name: str) -> Path:
    """inventory/sandbox/hosts.yml in the checkout kubeboot runs from; the state directory otherwise."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "site.yml").exists() and (repo / "inventory").is_dir():
        return repo / "inventory" / ("sandbox" if name == "default" else f"sandbox-{name}") / "hosts.yml"
    return state_root() / name / "inventory" / "hosts.yml"


def _check_options(options: UpOptions, state: SandboxState | None) -> ipaddress.IPv4Network:
    naming.check_sandbox_name(options.name)
    if options.extra_nics < 0 or options.extra_nics > 8:
        raise UsageError(f"--extra-nics {options.extra_nics} is out of range: give 0 to 8")
    if not naming.IFNAME_RE.match(options.primary_nic):
        raise UsageError(f"--primary-nic {options.primary_nic!r} is not an interface name (at most 15 characters)")
    try:
        subnet = ipaddress.IPv4Network(options.subnet or (state.subnet if state else DEFAULT_SUBNET))
    except ValueError as exc:
        raise UsageError(
            f"--subnet {options.subnet!r} is not an IPv4 network ({exc}): write it like 10.213.0.0/24"
        ) from exc
    if options.serve is not None and options.standin:
        raise UsageError("--serve and --standin both serve over HTTP: give one of them")
    if options.serve is not None and not options.serve.is_dir():
        raise UsageError(f"--serve {options.serve}: not a directory; give the directory to serve over HTTP")
    if not subnet.is_private:
        raise UsageError(f"--subnet {subnet} is not a private range: use one inside 10/8, 172.16/12 or 192.168/16")
    if state is not None and state.nodes:
        if state.subnet != str(subnet):
            raise UsageError(
                f"sandbox {options.name!r} runs on {state.subnet}, not {subnet}: run `kubeboot sandbox down` first"
            )
        if state.extra_nics != options.extra_nics or state.primary_nic != options.primary_nic:
            raise UsageError(
                f"sandbox {options.name!r} nodes have {state.extra_nics} extra NICs and primary "
                f"{state.primary_nic!r}: run `kubeboot sandbox down` before changing --extra-nics/--primary-nic"
            )
    return subnet


def up(options: UpOptions) -> UpResult:
    started_at = time.monotonic()
    naming.check_sandbox_name(options.name)
    layout = naming.parse_layout(options.layout, options.nodes)
    host.check_root()
    host.check_tools()
    host.check_kernel()
    builder = standin.builder() if options.standin else None
    with locked(options.name):
        existing = SandboxState.load(options.name)
        subnet = _check_options(options, existing)
        state = existing or SandboxState(name=options.name)
        new_names = [name for name in layout.nodes if name not in state.nodes]
        if len(state.nodes) + len(new_names) > naming.max_nodes(subnet):
            raise UsageError(
                f"{len(state.nodes) + len(new_names)} nodes do not fit in --subnet {subnet}: "
                f"at most {naming.max_nodes(subnet)}; give a larger subnet"
            )
        host.check_memory(len(new_names))
        bridge = naming.bridge_name(options.name)
        if not state.bridge_created:
            if host.link_exists(bridge):
                raise UsageError(
                    f"a link named {bridge} exists but sandbox {options.name!r} did not make it: "
                    "delete it or choose another --name"
                )
            host.check_subnet_free(subnet, own_bridge=bridge)
        state.subnet, state.bridge, state.chain = str(subnet), bridge, naming.chain_name(options.name)
        state.extra_nics, state.primary_nic = options.extra_nics, options.primary_nic
        state.save()
        _ensure_key(state)
        root, build_seconds = rootfs.ensure_rootfs(options.mirror)
        state.rootfs = str(root)
        gateway = str(naming.bridge_address(subnet))
        state.bridge_created = True
        state.save()
        host.ensure_bridge(bridge, f"{gateway}/{subnet.prefixlen}")
        state.chain_created = True
        state.save()
        host.ensure_guard(state.chain, bridge)
        services.ensure_apt_proxy(state, gateway)
        if options.serve is not None:
            services.ensure_http_server(state, gateway, options.serve.resolve())
        if builder is not None:
            repo = standin.ensure_built(builder)
            services.ensure_http_server(state, gateway, repo.directory)
            url = services.served_url(state, gateway)
            state.extra_vars = standin.inventory_vars(repo, url, minor=options.standin_minor)
            state.standin_releases = {minor: standin.inventory_vars(repo, url, minor=minor) for minor in repo.minors}
            state.save()
        _add_nodes(state, layout, new_names, subnet)
        to_start = [n for n in state.nodes.values() if not host.pid_matches(n.runner_pid, node.runner_marker(state, n))]
        for item in to_start:
            node.start(state, item, state.node_dir(item.name) / "rootfs")
        node.wait_for_ssh(state, list(state.nodes.values()))
        inventory = options.inventory or (Path(state.inventory) if state.inventory else None)
        state.inventory = str(write_inventory(state, inventory or default_inventory_path(state.name)))
        state.save()
        return UpResult(state, [n.name for n in to_start], build_seconds, time.monotonic() - started_at)


def _ensure_key(state: SandboxState) -> None:
    if not state.key_file.exists():
        state.key_file.parent.mkdir(parents=True, exist_ok=True)
        host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kubeboot-sandbox-{state.name}",
                  "-f", str(state.key_file)])


def _add_nodes(state: SandboxState, layout: naming.Layout, new_names: list[str], subnet: ipaddress.IPv4Network) -> None:
    groups = {name: ["kube_control_plane"] for name in layout.control_planes}
    groups.update({name: ["kube_node"] for name in layout.workers})
    used = {n.index for n in state.nodes.values()}
    free = (i for i in range(naming.max_nodes(subnet)) if i not in used)
    for name in new_names:
        index = next(free)
        nics = naming.node_nic_names(state.primary_nic, state.extra_nics)
        state.nodes[name] = NodeState(
            name=name, index=index, address=str(naming.node_address(subnet, index)), nics=nics,
            macs=[naming.stable_mac(state.name, name, k) for k in range(len(nics))], groups=groups.get(name, []),
        )
        state.save()

    def prepare(item: NodeState) -> str:
        root = node.mount_overlay(state, item)
        node.customise(state, item, root)
        return node.host_key_line(item, root)

    with ThreadPoolExecutor(max_workers=8) as pool:
        lines = list(pool.map(prepare, [state.nodes[name] for name in new_names]))
    state.save()
    known = {line.split()[0]: line for line in _read_lines(state.known_hosts)}
    known.update({line.split()[0]: line for line in lines})
    state.known_hosts.write_text("".join(known[key] for key in sorted(known)))


def _read_lines(path: Path) -> list[str]:
    return [line + "\n" for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def inventory_data(state: SandboxState) -> dict[str, Any]:
    hosts = {n.name: {"ansible_host": n.address} for n in sorted(state.nodes.values(), key=lambda n: n.index)}
    children: dict[str, Any] = {}
    for group in ("kube_control_plane", "kube_node"):
        members = {n: None for n, v in hosts.items() if group in state.nodes[n].groups}
        if members:
            children[group] = {"hosts": members}
    if children:
        children["k8s_cluster"] = {"children": {group: None for group in children}}
    variables: dict[str, Any] = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(state.key_file),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={state.known_hosts} -o StrictHostKeyChecking=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
        "kubeboot_sandbox": state.name,
        "containerd_restrict_oom_score_adj": True,
    }
    if state.serve_port:
        gateway = naming.bridge_address(ipaddress.IPv4Network(state.subnet))
        variables["kubeboot_sandbox_serve_url"] = services.served_url(state, str(gateway))
    variables.update(state.extra_vars)
    body: dict[str, Any] = {"vars": variables, "hosts": hosts}
    if children:
        body["children"] = children
    return {"all": body}


# Comments written above a variable of the inventory: why the sandbox sets it.
INVENTORY_COMMENTS = {
    "containerd_restrict_oom_score_adj": (
        "Sandbox nodes are containers without CAP_SYS_RESOURCE: no process in them may lower an OOM score, and "
        "runc fails every pod container (\"can't get final child's PID from pipe\") unless containerd keeps "
        "container scores at or above its own."
    ),
}


def write_inventory(state: SandboxState, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `kubeboot sandbox up --name {state.name}`; removed by `kubeboot sandbox down`.\n"
    lines = []
    for line in yaml.safe_dump(inventory_data(state), sort_keys=False, default_flow_style=False).splitlines():
        key = line.strip().split(":", 1)[0]
        if key in INVENTORY_COMMENTS and line.startswith("    ") and not line.startswith("     "):
            lines += [f"    # {part}" for part in textwrap.wrap(INVENTORY_COMMENTS[key], 110)]
        lines.append(line)
    path.write_text(header + "\n".join(lines) + "\n")
    return path


def down(name: str) -> list[str]:
    """Undo everything `up` recorded for this sandbox; return what was removed (for the report)."""
    naming.check_sandbox_name(name)
    host.check_root()
    removed: list[str] = []
    with locked(name):
        state = SandboxState.load(name)
        if state is None:
            shutil.rmtree(state_root() / name, ignore_errors=True)
            return removed
        nodes = list(state.nodes.values())
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
            removed += list(pool.map(lambda item: _remove_node(state, item), nodes))
        services.stop_all(state)
        if state.chain_created:
            host.remove_guard(state.chain, state.bridge)
            removed.append(f"iptables chain {state.chain}")
        if state.bridge_created:
            host.delete_link(state.bridge)
            removed.append(f"bridge {state.bridge}")
        if state.inventory:
            inventory = Path(state.inventory)
            with contextlib.suppress(FileNotFoundError):
                inventory.unlink()
                removed.append(f"inventory {inventory}")
            with contextlib.suppress(OSError):
                inventory.parent.rmdir()
        host.unmount_tree(state.directory)
        shutil.rmtree(state.directory, ignore_errors=True)
    return removed


def _remove_node(state: SandboxState, item: NodeState) -> str:
    base = state.node_dir(item.name)
    marker = node.runner_marker(state, item)
    host.stop_process(item.runner_pid, marker, timeout=STOP_TIMEOUT)
    nspawn_pid = base / "nspawn.pid"
    if nspawn_pid.exists():
        with contextlib.suppress(ValueError):
            host.stop_process(int(nspawn_pid.read_text().strip()), f"--directory={base / 'rootfs'}", timeout=5)
    # The node's processes are gone (or go now): its cgroups, by their recorded paths, sub-cgroups first.
    for directory in item.cgroups:
        cgroups.remove_tree(Path(directory))
    host.run(["ip", "netns", "delete", naming.netns_name(state.name, item.name)], check=False)
    for nic in range(len(item.nics)):
        host.delete_link(naming.host_ifname(state.name, item.index, nic))
    host.unmount_tree(base)
    shutil.rmtree(base, ignore_errors=True)
    return f"node {item.name}"


@dataclass
class NodeStatus:
    name: str
    address: str
    groups: list[str]
    macs: list[str]
    nics: list[str]
    running: bool
    ssh: bool


def status(name: str) -> tuple[SandboxState | None, list[NodeStatus]]:
    naming.check_sandbox_name(name)
    state = SandboxState.load(name)
    if state is None:
        return None, []
    result = []
    for item in sorted(state.nodes.values(), key=lambda n: n.index):
        running = host.pid_matches(item.runner_pid, node.runner_marker(state, item))
        reachable = running and node.ssh(state, item, ["true"], check=False, timeout=10).returncode == 0
        result.append(NodeStatus(item.name, item.address, item.groups, item.macs, item.nics, running, reachable))
    return state, result
