"""site.yml on a bad inventory stops at the validation, on the controller: nothing on the nodes changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, run_ansible

pytestmark = pytest.mark.sandbox

WATCHED = "/etc /usr /opt /root /var/lib/kubelet /var/lib/containerd"
STAMP = "/run/kubeboot-validate-stamp"


def changed_since_stamp(box: Sandbox, node: str) -> list[str]:
    result = box.ssh(node, f"find {WATCHED} -xdev -newer {STAMP} -print 2>/dev/null || true")
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_bad_inventory_stops_site_before_any_host(sandbox_factory: Any, tmp_path: Path) -> None:
    box: Sandbox = sandbox_factory("pytestval", "--layout", "1cp1w", "--subnet", "10.213.21.0/24")
    # The sandbox's own inventory (no stand-in: no pod network manifest pinned) stops at the missing checksum.
    unpinned = run_ansible("ansible-playbook", "-i", str(box.inventory), "playbooks/validate.yml", check=False)
    assert unpinned.returncode != 0
    assert "all: cni_flannel_manifest_checksum is empty (kube_cni flannel)" in " ".join(unpinned.stdout.split())

    # With it pinned, the inventory is valid.
    data = yaml.safe_load(box.inventory.read_text())
    data["all"]["vars"]["cni_flannel_manifest_checksum"] = "sha256:" + "0" * 64
    pinned = tmp_path / "pinned.yml"
    pinned.write_text(yaml.safe_dump(data, sort_keys=False))
    good = run_ansible("ansible-playbook", "-i", str(pinned), "playbooks/validate.yml")
    assert "failed=0" in good.stdout.split("PLAY RECAP")[-1]

    data["all"]["vars"]["kube_pod_subnet"] = "10.213.0.0/16"  # holds the nodes' own network
    broken = tmp_path / "hosts.yml"
    broken.write_text(yaml.safe_dump(data, sort_keys=False))

    nodes = sorted(box.nodes)
    for node in nodes:
        box.ssh(node, f"touch {STAMP}")
    before = {node: box.ssh(node, "ls -la /etc /root /usr/local | md5sum").stdout for node in nodes}

    result = run_ansible("ansible-playbook", "-i", str(broken), "site.yml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert 'ansible_host = "10.213.21.' in output and "is inside kube_pod_subnet 10.213.0.0/16" in output
    assert "ERROR cp1: ansible_host" in output
    # Only the validation play ran: no other play started, no host was contacted.
    assert output.count("PLAY [") == 1, output
    assert "PLAY [Inventory | Validate]" in output
    for node in nodes:
        assert f"{node} " not in output.split("PLAY RECAP")[-1], output

    for node in nodes:
        assert changed_since_stamp(box, node) == [], f"{node} changed"
        assert box.ssh(node, "ls -la /etc /root /usr/local | md5sum").stdout == before[node]
        assert box.ssh(node, "test -e /root/.ansible/tmp && echo yes || echo no").stdout.strip() == "no"


def test_an_unsupported_os_family_stops_site_before_any_host_changes(sandbox_factory: Any, tmp_path: Path) -> None:
    """The OS family is known only from the gathered facts: site.yml checks it for every node before the first change
    (the Kubernetes package repository on the supported nodes) and names each node it cannot prepare."""
    box: Sandbox = sandbox_factory("pytestos", "--layout", "1cp1w", "--standin", "--subnet", "10.213.23.0/24")
    # worker1 as Ansible's fact gathering sees an Alpine host.
    box.ssh("worker1", "mv /etc/debian_version /etc/debian_version.away && echo 3.20.3 > /etc/alpine-release && "
                       "cp /etc/os-release /etc/os-release.away && rm /etc/os-release && "
                       "printf 'NAME=\"Alpine Linux\"\\nID=alpine\\nVERSION_ID=3.20.3\\n' > /etc/os-release")
    for node in box.nodes:
        box.ssh(node, f"touch {STAMP}")
    result = box.playbook("site.yml", check=False)
    output = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert ("worker1: os family Alpine is not supported; use Debian 12, Ubuntu 22.04/24.04 or Rocky/Alma 9."
            in output), result.stdout[-3000:]
    for node in box.nodes:
        assert box.ssh(node, "ls /etc/apt/sources.list.d/ /etc/apt/keyrings/ 2>/dev/null | grep -c kubernetes || true"
                       ).stdout.strip() == "0", node
        changed = box.ssh(node, f"find /etc /usr /opt -xdev -newer {STAMP} -print 2>/dev/null || true").stdout.split()
        assert [path for path in changed if path not in ("/etc/os-release", "/etc/alpine-release")] == [], node
