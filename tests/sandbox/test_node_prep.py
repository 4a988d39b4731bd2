"""os_prep and containerd roles on sandbox nodes: converge, idempotence, check mode, and the nodes read back."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Sandbox, recap

pytestmark = pytest.mark.sandbox

PLAYBOOK = "tests/sandbox/playbooks/node_prep.yml"


@pytest.fixture(scope="module")
def prepared(sandbox_factory: Any) -> dict[str, Any]:
    box: Sandbox = sandbox_factory("pytestprep", "--nodes", "2", "--subnet", "10.213.13.0/24")
    # A swap entry as an installer would leave it, to be turned off for good.
    box.ssh("node1", "echo '/swapfile none swap sw 0 0' >> /etc/fstab")
    check_fresh = box.playbook(PLAYBOOK, "--check", "--limit", "node2")
    containerd_after_check = box.ssh("node2", "command -v containerd", check=False).returncode
    first = box.playbook(PLAYBOOK)
    second = box.playbook(PLAYBOOK)
    check = box.playbook(PLAYBOOK, "--check", "--diff")
    return {"box": box, "check_fresh": check_fresh.stdout, "containerd_after_check": containerd_after_check,
            "first": first.stdout, "second": second.stdout, "check": check.stdout}


def test_check_mode_on_a_fresh_node_predicts_and_changes_nothing(prepared: dict[str, Any]) -> None:
    counts = recap(prepared["check_fresh"])["node2"]
    assert counts["failed"] == 0
    assert counts["changed"] > 0
    assert prepared["containerd_after_check"] != 0  # containerd was not installed by the check run


def test_converge_then_second_run_and_check_mode_change_nothing(prepared: dict[str, Any]) -> None:
    assert all(c["changed"] > 0 and c["failed"] == 0 for c in recap(prepared["first"]).values())
    for run in ("second", "check"):
        counts = recap(prepared[run])
        assert set(counts) == {"node1", "node2"}
        assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), prepared[run][-3000:]


def test_swap_sysctls_and_modules(prepared: dict[str, Any]) -> None:
    box: Sandbox = prepared["box"]
    fstab = box.ssh("node1", "cat /etc/fstab").stdout
    assert re.search(r"^# /swapfile none swap sw 0 0", fstab, re.MULTILINE)
    assert box.ssh("node1", "swapon --show --noheadings").stdout.strip() == ""
    values = box.ssh("node1", "sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables").stdout.split()
    assert values == ["1", "1"]
    persisted = box.ssh("node1", "cat /etc/sysctl.d/99-kubernetes.conf").stdout
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        assert re.search(rf"^{re.escape(key)}\s*=\s*1$", persisted, re.MULTILINE)
    modules = box.ssh("node1", "cat /etc/modules-load.d/kubernetes.conf").stdout.split("\n")
    assert "overlay" in modules and "br_netfilter" in modules


def test_hostname_and_hosts_entries(prepared: dict[str, Any]) -> None:
    box: Sandbox = prepared["box"]
    for name, node in box.nodes.items():
        assert box.ssh(name, "hostname").stdout.strip() == name
        hosts = box.ssh(name, "cat /etc/hosts").stdout
        for other, other_node in box.nodes.items():
            assert f"{other_node['address']} {other}" in hosts
        del node


def test_containerd_config_has_systemd_cgroup_in_the_runc_table_and_mirrors(prepared: dict[str, Any]) -> None:
    box: Sandbox = prepared["box"]
    dump = box.ssh("node1", "containerd config dump").stdout
    runc_options = dump.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]')[1]
    assert re.search(r"^\s*SystemdCgroup = true$", runc_options.split("\n[")[0], re.MULTILINE)
    assert 'sandbox_image = "mirror.example.org/k8s/pause:3.10"' in dump
    assert 'config_path = "/etc/containerd/certs.d"' in dump
    hosts = box.ssh("node1", "cat /etc/containerd/certs.d/docker.io/hosts.toml").stdout
    assert 'server = "https://registry-1.docker.io"' in hosts
    assert '[host."https://docker.mirror.example.org"]' in hosts
    assert box.ssh("node1", "systemctl is-active containerd").stdout.strip() == "active"
    assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in box.ssh("node1", "cat /etc/crictl.yaml").stdout
