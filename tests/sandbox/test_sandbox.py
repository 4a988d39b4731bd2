"""The sandbox of local nodes, driven through the `kubeboot sandbox` CLI and used over real SSH."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kubeboot.sandbox import naming
from kubeboot.sandbox.state import state_root
from tests.conftest import VENV_BIN, Sandbox, kubeboot
from tests.sandbox.images import build_busybox_archive

pytestmark = pytest.mark.sandbox


def leftovers(name: str, inventory: Path | None = None) -> list[str]:
    """Everything of sandbox `name` still on the host: links, namespaces, mounts, processes, rules, files."""
    found: list[str] = []
    sid = naming.short_id(name)
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)
    for link in links:
        ifname = link["ifname"]
        if ifname == naming.bridge_name(name) or ifname.startswith(f"kb{sid}n"):
            found.append(f"link {ifname}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if f"kubeboot-{name}-" in line]
    state_dir = state_root() / name
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mountpoint = line.split()[1]
        if mountpoint.startswith(str(state_dir)) or f"kubeboot-{name}-" in mountpoint:
            found.append(f"mount {mountpoint}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state_dir) in cmdline or f"kubeboot-sandbox-runner:{name}:" in cmdline:
            found.append(f"process {proc.name}: {cmdline[:80]}")
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    found += [f"iptables {rule}" for rule in rules.splitlines() if naming.chain_name(name) in rule]
    if state_dir.exists():
        found.append(f"state {state_dir}")
    if (state_root() / f".{name}.lock").exists():
        found.append("state lock file")
    if inventory is not None and inventory.exists():
        found.append(f"inventory {inventory}")
    return found


def test_nodes_answer_ansible_setup_over_ssh(sandbox3: Sandbox) -> None:
    result = sandbox3.ansible("all", "-m", "ansible.builtin.setup", "-o")
    facts = {}
    for line in result.stdout.splitlines():
        host, _, rest = line.partition(" | SUCCESS => ")
        if rest:
            facts[host] = json.loads(rest)["ansible_facts"]
    assert sorted(facts) == ["node1", "node2", "node3"]
    addresses = {facts[n]["ansible_default_ipv4"]["address"] for n in facts}
    assert addresses == {sandbox3.nodes[n]["address"] for n in facts}
    for name, node_facts in facts.items():
        assert node_facts["ansible_hostname"] == name
        assert node_facts["ansible_service_mgr"] == "systemd"
        assert node_facts["ansible_default_ipv4"]["gateway"] == "10.213.7.1"
        # The MAC Ansible reads from /sys must be the node's own, derived from its name.
        assert node_facts["ansible_default_ipv4"]["macaddress"] == sandbox3.nodes[name]["macs"][0]
        assert node_facts["ansible_enp0s8"]["macaddress"] == sandbox3.nodes[name]["macs"][1]
    machine_ids = {sandbox3.ssh(n, "cat /etc/machine-id").stdout.strip() for n in facts}
    host_keys = {sandbox3.ssh(n, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for n in facts}
    assert len(machine_ids) == 3
    assert len(host_keys) == 3


def test_macs_are_stable_and_derived_from_names(sandbox3: Sandbox) -> None:
    for name, node in sandbox3.nodes.items():
        assert node["macs"] == [naming.stable_mac("pytest", name, k) for k in range(2)]
        link = json.loads(sandbox3.ssh(name, "ip -j link show enp0s8").stdout)[0]
        assert link["address"] == node["macs"][1]


def test_reboot_with_ansible_reboot_module(sandbox3: Sandbox) -> None:
    boot_id = sandbox3.ssh("node2", "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    sandbox3.ansible("node2", "-m", "ansible.builtin.reboot", "-a", "reboot_timeout=120")
    after = sandbox3.ssh("node2", "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running --wait",
                         check=False).stdout.split()
    assert after[0] != boot_id
    assert after[1] == "running"
    # After the reboot the node is wired as before: same address, MACs and default route.
    route = json.loads(sandbox3.ssh("node2", "ip -j route show default").stdout)
    assert route[0]["gateway"] == "10.213.7.1"
    link = json.loads(sandbox3.ssh("node2", "ip -j link show eth0").stdout)[0]
    assert link["address"] == sandbox3.nodes["node2"]["macs"][0]


def test_apt_through_proxy_and_containerd_runs_local_image(sandbox3: Sandbox, tmp_path: Path) -> None:
    sandbox3.ssh("node3", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd")
    archive = tmp_path / "busybox.tar"
    reference = build_busybox_archive(archive)
    node = sandbox3.nodes["node3"]
    state = state_root() / "pytest"
    subprocess.run(
        ["scp", "-q", "-i", str(state / "id_ed25519"), "-o", f"UserKnownHostsFile={state / 'known_hosts'}",
         str(archive), f"root@{node['address']}:/root/busybox.tar"], check=True,
    )
    sandbox3.ssh("node3", "ctr image import /root/busybox.tar")
    run = sandbox3.ssh("node3", f"ctr run --rm {reference} kubeboot-test /bin/sh -c 'echo ok-$(hostname)'")
    assert run.stdout.strip() == "ok-node3"
    # runc makes the container's cgroups inside the node's own subtree on the host (cpuset included).
    sandbox3.ssh("node3", f"ctr run -d {reference} kubeboot-cg /bin/sh -c 'sleep 120'")
    try:
        for hierarchy in ("memory", "cpuset", "pids"):
            top = next(p for p in node_cgroups(sandbox3, "node3") if f"/{hierarchy}/" in p)
            assert (Path(top) / "default/kubeboot-cg").is_dir(), hierarchy
    finally:
        sandbox3.ssh("node3", "ctr task rm -f kubeboot-cg; ctr container rm kubeboot-cg", check=False)


def test_extra_nic_can_be_renamed(sandbox3: Sandbox) -> None:
    mac = sandbox3.nodes["node1"]["macs"][1]
    sandbox3.ssh("node1", "ip link set dev enp0s8 down && ip link set dev enp0s8 name pub0 && ip link set pub0 up")
    link = json.loads(sandbox3.ssh("node1", "ip -j link show pub0").stdout)[0]
    assert link["address"] == mac
    assert sandbox3.ssh("node1", "cat /sys/class/net/pub0/address").stdout.strip() == mac
    assert sandbox3.ssh("node1", "ip link show enp0s8", check=False).returncode != 0
    sandbox3.ssh("node1", "ip link set dev pub0 down && ip link set dev pub0 name enp0s8")


def test_guard_rules_keep_traffic_on_the_subnet(sandbox3: Sandbox) -> None:
    rules = subprocess.run(["iptables", "-w", "-S", "KUBEBOOT-PYTEST"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert rules[1:] == ["-A KUBEBOOT-PYTEST -i kb-pytest -o kb-pytest -j RETURN", "-A KUBEBOOT-PYTEST -j DROP"]
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True,
                             check=True).stdout
    assert "-A FORWARD -i kb-pytest -j KUBEBOOT-PYTEST" in forward
    assert "-A FORWARD -o kb-pytest -j KUBEBOOT-PYTEST" in forward
    # Nodes reach each other directly.
    ping = sandbox3.ssh("node1", f"ping -c1 -W2 {sandbox3.nodes['node2']['address']}", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def tcp_check(box: Sandbox, node: str, address: str, port: int = 22) -> subprocess.CompletedProcess[str]:
    """Open a TCP connection from a node (with its python3) and read the first bytes the other end sends."""
    script = (f"import socket; s = socket.create_connection(({address!r}, {port}), timeout=3); "
              "print(s.recv(7).decode())")
    return box.ssh(node, f"python3 -c {shlex.quote(script)}", check=False)


def dropped(chain: str) -> int:
    """Packets the guard chain's DROP rule has dropped so far."""
    listing = subprocess.run(["iptables", "-w", "-L", chain, "-v", "-x", "-n"], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    return sum(int(line.split()[0]) for line in listing[2:] if line.split()[2:3] == ["DROP"])


def test_guard_passes_routed_pod_traffic_between_nodes(sandbox3: Sandbox) -> None:
    # A pod address on node2, outside the node subnet, that node1 reaches through node2 (as flannel host-gw or
    # calico without encapsulation route them): the packet crosses the bridge, and so the host's FORWARD chain.
    node2 = sandbox3.nodes["node2"]["address"]
    sandbox3.ssh("node2", "ip addr replace 10.99.0.2/32 dev lo")
    sandbox3.ssh("node1", f"ip route replace 10.99.0.2 via {node2} dev eth0")
    try:
        before = dropped("KUBEBOOT-PYTEST")
        result = tcp_check(sandbox3, "node1", "10.99.0.2")
        assert result.stdout.strip() == "SSH-2.0", result.stdout + result.stderr
        assert dropped("KUBEBOOT-PYTEST") == before
        # What leaves the bridge through the host is still dropped: test_sandbox_side_by_side.py.
    finally:
        sandbox3.ssh("node1", "ip route del 10.99.0.2", check=False)
        sandbox3.ssh("node2", "ip addr del 10.99.0.2/32 dev lo", check=False)


def node_cgroups(box: Sandbox, node: str) -> list[str]:
    state = json.loads((state_root() / box.name / "state.json").read_text())
    dirs: list[str] = state["nodes"][node]["cgroups"]
    return dirs


def test_each_node_has_its_own_cgroup_subtree(sandbox3: Sandbox) -> None:
    dirs = {name: node_cgroups(sandbox3, name) for name in sandbox3.nodes}
    for name, paths in dirs.items():
        assert {Path(p).name for p in paths} == {f"kubeboot-sandbox-pytest-{name}"}
        hierarchies = {Path(p).relative_to("/sys/fs/cgroup").parts[0] for p in paths}
        assert {"memory", "cpuset", "pids", "systemd", "unified"} <= hierarchies
        for path in paths:
            assert Path(path).is_dir(), path
        # The node's processes are all inside its subtree, in every hierarchy.
        systemd_dir = next(Path(p) for p in paths if "/systemd/" in p)
        assert list(systemd_dir.glob("**/init.scope")), "the node's systemd made its cgroups below the node's own"
        # Inside, the node sees its subtree as the root: no other node's, no host cgroup.
        seen = sandbox3.ssh(name, "cat /proc/1/cgroup; ls /sys/fs/cgroup/memory /sys/fs/cgroup/systemd").stdout
        assert "kubeboot-sandbox" not in seen and "process_api" not in seen
        assert all(line.endswith(":/") or ":/init.scope" in line for line in seen.splitlines()
                   if line[:1].isdigit() and ":" in line), seen
        cpus = sandbox3.ssh(name, "cat /sys/fs/cgroup/cpuset/cpuset.cpus").stdout.strip()
        assert cpus, "the node's cpuset has CPUs"
    memory = [next(p for p in paths if "/memory/" in p) for paths in dirs.values()]
    assert len(set(memory)) == 3


def test_up_twice_is_harmless(sandbox3: Sandbox) -> None:
    known_hosts = (state_root() / "pytest" / "known_hosts").read_text()
    before = {n: v["runner_pid"] for n, v in sandbox3.nodes.items()}
    data = sandbox3.up("--nodes", "3", "--extra-nics", "1", "--subnet", "10.213.7.0/24")
    assert data["started"] == []
    assert {n: v["runner_pid"] for n, v in data["nodes"].items()} == before
    assert (state_root() / "pytest" / "known_hosts").read_text() == known_hosts


def test_status_lists_nodes(sandbox3: Sandbox) -> None:
    result = kubeboot("sandbox", "status", "--name", "pytest", "--json")
    data = json.loads(result.stdout)
    assert [n["name"] for n in data["nodes"]] == ["node1", "node2", "node3"]
    assert all(n["ssh"] for n in data["nodes"])


def test_layout_groups_and_growing_keeps_nodes(sandbox_factory: Any) -> None:
    box: Sandbox = sandbox_factory("pytestgrow", "--layout", "1cp1w", "--subnet", "10.213.8.0/24")
    first = dict(box.nodes)
    inventory = box.inventory.read_text()
    assert "kube_control_plane" in inventory and "kube_node" in inventory
    data = box.up("--layout", "1cp2w", "--subnet", "10.213.8.0/24")
    assert data["started"] == ["worker2"]
    assert data["nodes"]["cp1"]["runner_pid"] == first["cp1"]["runner_pid"]
    assert data["nodes"]["worker1"]["address"] == first["worker1"]["address"]
    graph = box.ansible("k8s_cluster", "--list-hosts").stdout.split()
    assert {"cp1", "worker1", "worker2"} <= set(graph)
    workers = box.ansible("kube_node", "--list-hosts").stdout.split()
    assert "cp1" not in workers and "worker2" in workers
    box.ansible("all", "-m", "ansible.builtin.ping")
    box.down()
    assert leftovers("pytestgrow", box.inventory) == []


def test_down_removes_everything_it_made(sandbox_factory: Any) -> None:
    box: Sandbox = sandbox_factory("pytestdown", "--nodes", "2", "--extra-nics", "2", "--subnet", "10.213.9.0/24")
    assert leftovers("pytestdown", box.inventory) != []  # the checker sees a running sandbox
    box.ssh("node1", "apt-get update -q >/dev/null")  # leaves proxy cache and lists behind on the node
    box.down()
    assert leftovers("pytestdown", box.inventory) == []
    # `down` of a sandbox that is not up is harmless.
    assert "removed 0 items" in box.down().stdout


def test_down_after_interrupted_up(tmp_path: Path, sandbox_factory: Any) -> None:
    del sandbox_factory  # only for the skip when the sandbox cannot run here
    inventory = tmp_path / "hosts.yml"
    proc = subprocess.Popen(
        [str(VENV_BIN / "kubeboot"), "sandbox", "up", "--name", "pytestint", "--nodes", "4",
         "--subnet", "10.213.10.0/24", "--inventory", str(inventory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (state_root() / "pytestint" / "nodes").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kubeboot("sandbox", "down", "--name", "pytestint")
    assert leftovers("pytestint", inventory) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], r"--nodes 0 is not a node count"),
        (["--layout", "2x3"], r"--layout '2x3' is not a layout"),
        (["--nodes", "2", "--subnet", "192.0.2.0/24"], r"overlaps 192\.0\.2\.0/24 already in use on this host"),
        (["--nodes", "2", "--subnet", "10.213.11.0/33"], r"--subnet .* is not an IPv4 network"),
        (["--nodes", "2", "--subnet", "8.8.8.0/24"], r"is not a private range"),
        (["--nodes", "200", "--subnet", "10.213.12.0/24"], r"200 more nodes need about \d+ MB"),
        (["--nodes", "300", "--subnet", "10.213.12.0/24"], r"300 nodes do not fit in --subnet"),
        (["--nodes", "2", "--extra-nics", "9"], r"--extra-nics 9 is out of range"),
        (["--nodes", "2", "--serve", "/nonexistent"], r"--serve /nonexistent: not a directory"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(args: list[str], message: str, sandbox_factory: Any) -> None:
    del sandbox_factory
    result = kubeboot("sandbox", "up", "--name", "pytestbad", *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert leftovers("pytestbad") == []


def test_not_root_is_refused(sandbox_factory: Any) -> None:
    del sandbox_factory
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(VENV_BIN / "kubeboot"),
         "sandbox", "up", "--name", "pytestbad", "--nodes", "1"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "kubeboot: error: the sandbox needs root (bridges, mounts, systemd-nspawn): run it with sudo or as root"
    )
