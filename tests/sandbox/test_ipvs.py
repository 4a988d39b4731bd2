"""site.yml with kube_proxy_mode ipvs on nodes whose kernel has no IPVS stops at playbooks/ipvs_check.yml, before
anything on the nodes changes. The sandbox's nodes share this host's kernel, which is built without IP_VS, so both
nodes are refused, each with its own line. tests/vagrant/test_ha_vm.py shows the other side on a real kernel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, recap, run_ansible

pytestmark = pytest.mark.sandbox

WATCHED = "/etc /usr /opt /root /var/lib"
STAMP = "/run/kubeboot-ipvs-stamp"
# Ansible's own working files on the node (its remote temp directory) are the only writes allowed.
ANSIBLE_TMP = "/root/.ansible"


def changed_since_stamp(box: Sandbox, node: str) -> list[str]:
    result = box.ssh(node, f"find {WATCHED} -xdev -newer {STAMP} -not -path '{ANSIBLE_TMP}*' -print 2>/dev/null"
                           " || true")
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_ipvs_refused_on_a_kernel_without_it_and_nothing_changed(sandbox_factory: Any, tmp_path: Path) -> None:
    box: Sandbox = sandbox_factory("pytestipvs", "--layout", "1cp1w", "--subnet", "10.213.54.0/24")
    data = yaml.safe_load(box.inventory.read_text())
    data["all"]["vars"]["cni_flannel_manifest_checksum"] = "sha256:" + "0" * 64  # the validation's only complaint
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))

    nodes = sorted(box.nodes)
    assert len(nodes) == 2
    for node in nodes:
        # What the refusal rests on: this kernel has no ip_vs, neither as a module nor built in.
        probe = box.ssh(node, "modprobe --dry-run ip_vs; ls /proc/net/ip_vs /sys/module/ip_vs", check=False)
        assert probe.returncode != 0 and "ip_vs" in probe.stderr, probe.stderr
        box.ssh(node, f"touch {STAMP} && sleep 1")
    before = {node: box.ssh(node, "ls -la /etc /etc/modules-load.d /root /usr/local | md5sum").stdout
              for node in nodes}

    result = run_ansible("ansible-playbook", "-i", str(inventory), "site.yml", "-e", "kube_proxy_mode=ipvs",
                         check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, result.stdout[-4000:]
    for node in nodes:
        line = re.search(rf"{node}: kube_proxy_mode ipvs needs IPVS, but its kernel has no ip_vs \(modprobe --dry-run"
                         rf" ip_vs: (.*?); no /proc/net/ip_vs, no /sys/module/ip_vs\); use kube_proxy_mode iptables"
                         r" or nftables, or a kernel with ip_vs \(.*?\)\. Nothing was changed\.", output)
        assert line, output[-4000:]
        print(f"\nipvs: {line[0]}")
        assert "ip_vs" in line[1]  # modprobe's own words, e.g. "Module ip_vs not found in directory /lib/modules/..."
    # The run stopped at the check: no later play started, no node reported a change.
    assert "PLAY [IPVS | The nodes' kernels have IPVS]" in output
    assert "PLAY [Prepare the nodes]" not in output and "PLAY [NIC rename" not in output
    counts = recap(result.stdout)
    assert {node: counts[node]["changed"] for node in nodes} == dict.fromkeys(nodes, 0)
    assert all(counts[node]["failed"] == 1 for node in nodes), counts

    for node in nodes:
        assert changed_since_stamp(box, node) == [], f"{node} changed"
        assert box.ssh(node, "ls -la /etc /etc/modules-load.d /root /usr/local | md5sum").stdout == before[node]
        assert box.ssh(node, "test ! -e /etc/modules-load.d/kubernetes.conf", check=False).returncode == 0
        assert box.ssh(node, "dpkg-query -W kubelet ipvsadm ipset", check=False).returncode != 0
