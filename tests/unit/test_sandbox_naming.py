"""Pure parts of the sandbox: layouts, names, addresses, MACs, runner script and written inventory."""

from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from kubeboot.errors import UsageError
from kubeboot.sandbox import manager, naming, node
from kubeboot.sandbox.state import NodeState, SandboxState


def test_layout_names_and_groups() -> None:
    layout = naming.parse_layout("3cp2w", None)
    assert layout.control_planes == ("cp1", "cp2", "cp3")
    assert layout.workers == ("worker1", "worker2")
    assert naming.parse_layout(None, 2).nodes == ("node1", "node2")
    assert naming.parse_layout("1cp0w", None).nodes == ("cp1",)


@pytest.mark.parametrize(("layout", "nodes"), [("0cp2w", None), ("cp2w", None), ("1cp", None), (None, 0),
                                               (None, -1), (None, None), ("1cp1w", 2)])
def test_bad_layouts_are_refused(layout: str | None, nodes: int | None) -> None:
    with pytest.raises(UsageError):
        naming.parse_layout(layout, nodes)


def test_mac_is_stable_unicast_and_locally_administered() -> None:
    mac = naming.stable_mac("default", "cp1", 0)
    assert mac == naming.stable_mac("default", "cp1", 0)
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac)
    first = int(mac[:2], 16)
    assert first & 0x01 == 0 and first & 0x02 == 2
    assert len({naming.stable_mac("default", f"node{i}", k) for i in range(50) for k in range(3)}) == 150


def test_interface_names_fit_the_kernel_limit() -> None:
    for name in ("a", "abcdefghijkl"):
        assert len(naming.bridge_name(name)) <= 15
        assert len(naming.host_ifname(name, 250, 8)) <= 15
        assert len(naming.peer_ifname(name, 250, 8)) <= 15
    assert naming.node_nic_names("eth0", 2) == ["eth0", "enp0s8", "enp0s9"]


def test_addresses() -> None:
    subnet = ipaddress.IPv4Network("10.213.0.0/24")
    assert str(naming.bridge_address(subnet)) == "10.213.0.1"
    assert str(naming.node_address(subnet, 0)) == "10.213.0.11"
    assert naming.max_nodes(subnet) == 244
    naming.node_address(subnet, naming.max_nodes(subnet) - 1)
    with pytest.raises(UsageError, match="has no room"):
        naming.node_address(subnet, naming.max_nodes(subnet))


@pytest.mark.parametrize("name", ["Default", "1abc", "a-b", "abcdefghijklm", ""])
def test_bad_sandbox_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid sandbox name"):
        naming.check_sandbox_name(name)


def _state() -> SandboxState:
    state = SandboxState(name="unit", subnet="10.213.0.0/24", bridge="kb-unit", extra_nics=1)
    state.nodes["cp1"] = NodeState("cp1", 0, "10.213.0.11", ["eth0", "enp0s8"],
                                   [naming.stable_mac("unit", "cp1", k) for k in range(2)], ["kube_control_plane"])
    state.nodes["worker1"] = NodeState("worker1", 1, "10.213.0.12", ["eth0", "enp0s8"],
                                       [naming.stable_mac("unit", "worker1", k) for k in range(2)], ["kube_node"])
    return state


def test_runner_reboots_on_133_and_wires_each_nic() -> None:
    state = _state()
    item = state.nodes["worker1"]
    script = node.runner_script(state, item, state.node_dir("worker1") / "rootfs", [])
    assert '[ "$rc" -eq 133 ] || break' in script
    for nic, mac in zip(item.nics, item.macs, strict=True):
        assert f"address {mac} netns kubeboot-unit-worker1" in script
        assert f"name {nic}" in script
    assert "--network-namespace-path=/run/netns/kubeboot-unit-worker1" in script
    assert "--bind=" in script and ":/var/lib/containerd" in script


def test_inventory_groups_follow_the_contract() -> None:
    data = manager.inventory_data(_state())
    body = data["all"]
    assert body["hosts"] == {"cp1": {"ansible_host": "10.213.0.11"}, "worker1": {"ansible_host": "10.213.0.12"}}
    assert body["children"]["kube_control_plane"] == {"hosts": {"cp1": None}}
    assert body["children"]["kube_node"] == {"hosts": {"worker1": None}}
    assert body["children"]["k8s_cluster"] == {"children": {"kube_control_plane": None, "kube_node": None}}
    assert "StrictHostKeyChecking=yes" in body["vars"]["ansible_ssh_common_args"]
    yaml.safe_load(yaml.safe_dump(data))


def test_index_files_are_warmed_through_the_proxy_one_after_another() -> None:
    import http.server
    import threading

    from kubeboot.sandbox import services

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            status = 404 if "security" in self.path else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        failed = services.warm_index_files(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [f"{mirror}/dists/{suite}/InRelease" for mirror, suite in services.APT_SOURCES]
    assert failed == ["http://deb.debian.org/debian-security/dists/bookworm-security/InRelease"]
    assert services.sources_list().splitlines()[0] == "deb http://deb.debian.org/debian bookworm main"
    assert re.fullmatch(services.STATIC_INDEX_PATTERN, "deb.debian.org/debian/dists/bookworm/InRelease")
    assert not re.fullmatch(services.STATIC_INDEX_PATTERN, "deb.debian.org/debian/dists/bookworm/main/Packages.xz")
