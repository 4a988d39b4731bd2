"""`kubeboot validate` and `kubeboot plan` on real inventory files, read by Ansible; the vars plugin's precedence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, kubeboot, run_ansible

DATA = REPO / "tests/data/inventories"
BAD = sorted(p for p in (DATA / "bad").iterdir() if p.is_dir())
GOOD = sorted(p for p in (DATA / "good").iterdir() if p.is_dir())
SAMPLE = REPO / "inventory/sample/hosts.yml"


def source(case: Path) -> Path:
    return next(p for p in sorted(case.iterdir()) if p.name.startswith("hosts."))


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("case", BAD, ids=[p.name for p in BAD])
def test_bad_inventory_rejected(case: Path) -> None:
    expected = (case / "expect.txt").read_text().strip()
    result = kubeboot("validate", "-i", str(source(case)), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR ")]
    assert any(f": {expected}" in line for line in lines), f"no error line names {expected}:\n{result.stderr}"


@pytest.mark.parametrize("inventory", [*[source(p) for p in GOOD], SAMPLE], ids=[*[p.name for p in GOOD], "sample"])
def test_good_inventory_accepted(inventory: Path) -> None:
    result = kubeboot("validate", "-i", str(inventory), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_sample_has_no_warnings() -> None:
    result = kubeboot("validate", "-i", str(SAMPLE), "--json")
    assert json.loads(result.stdout) == {"ok": True, "findings": []}


def test_missing_and_unparsable_inventory(tmp_path: Path) -> None:
    result = kubeboot("validate", "-i", str(tmp_path / "nope.yml"), check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr
    broken = tmp_path / "hosts.yml"
    broken.write_text("all:\n  children: [\n")
    result = kubeboot("plan", "-i", str(broken), check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot be parsed" in result.stderr


def test_json_findings_name_host_and_variable() -> None:
    case = DATA / "bad/taint-effect-typo"
    result = kubeboot("validate", "-i", str(source(case)), "--json", check=False)
    data = json.loads(result.stdout)
    assert result.returncode == 2 and data["ok"] is False
    assert {"level": "error", "host": "worker2", "variable": "node_taints[1]", "value": "dedicated=msms:NoScheduel",
            "message": "effect must be NoSchedule, PreferNoSchedule or NoExecute (did you mean NoSchedule?)"} \
        in data["findings"]


def test_plan_shows_derived_numbers() -> None:
    result = kubeboot("plan", "-i", str(source(DATA / "good/calico-3cp")))
    out = result.stdout
    assert "10.32.0.0/12" in out and "10.100.0.0/16" in out
    assert "10.100.0.10 (cluster.local)" in out
    assert "4096 available for 6 nodes" in out          # /24 node ranges in a /12
    assert "/26: 16384 available for 6 nodes" in out    # calico blocks
    assert "k8s-api.example.org:6443" in out and "calico (IPIPCrossSubnet)" in out
    assert "binary from https://mirror.example.org/k8s" in out
    plan = json.loads(kubeboot("plan", "-i", str(SAMPLE), "--json").stdout)["plan"]
    assert plan["cluster_dns"] == "10.96.0.10" and plan["control_plane_endpoint"] == "192.0.2.10:6443"
    assert plan["node_ranges_available"] == 256 and plan["nodes"] == 4
    assert plan["install_source"] == "https://pkgs.k8s.io/core:/stable:/v1.33"


def test_ini_inventory_with_group_and_host_vars() -> None:
    data = json.loads(kubeboot("plan", "-i", str(source(DATA / "good/ini")), "--json").stdout)["plan"]
    assert data["pod_subnet"] == "10.200.0.0/16" and data["kube_version"] == "1.31.2"
    assert {n["name"]: n["address"] for n in data["node_list"]}["worker2"] == "192.0.2.122"


def host_vars(inventory: Path, host: str) -> dict[str, object]:
    result = run_ansible("ansible-inventory", "-i", str(inventory), "--host", host)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_vars_plugin_defaults_beneath_the_inventory(tmp_path: Path) -> None:
    """Defaults reach every host; `all: vars:`, group_vars/all and host vars each win over a default."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"kube_cni": "calico"}, "children": {
        "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "192.0.2.10", "kube_proxy_mode": "nftables"}}},
        "kube_node": {"hosts": {"w1": {"ansible_host": "192.0.2.11"}}},
        "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
    }}}))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars/all.yml").write_text("kube_pod_subnet: 10.32.0.0/16\n")
    cp1, w1 = host_vars(inventory, "cp1"), host_vars(inventory, "w1")
    assert w1["kube_version"] == "1.33.5" and w1["calico_block_size"] == 26      # defaults
    assert cp1["kube_cni"] == w1["kube_cni"] == "calico"                         # all: vars:
    assert cp1["kube_pod_subnet"] == w1["kube_pod_subnet"] == "10.32.0.0/16"     # group_vars/all
    assert cp1["kube_proxy_mode"] == "nftables" and w1["kube_proxy_mode"] == "iptables"  # host var
    # the validator sees the same values (and refuses the cluster-wide setting that differs on one host)
    result = kubeboot("plan", "-i", str(inventory), "--json", check=False)
    data = json.loads(result.stdout)
    assert data["plan"]["pod_subnet"] == "10.32.0.0/16" and data["plan"]["cni"] == "calico"
    assert [(f["host"], f["variable"]) for f in data["findings"]] == [("w1", "kube_proxy_mode")]


def test_vars_plugin_not_applied_next_to_the_playbook(tmp_path: Path) -> None:
    """group_vars/all of an inventory outside the repository still wins in ansible-playbook runs."""
    shutil.copytree(DATA / "good/calico-3cp", tmp_path / "inv")
    result = run_ansible("ansible", "-i", str(tmp_path / "inv/hosts.yml"), "cp1", "-m", "ansible.builtin.debug",
                         "-a", "var=kube_image_repository")
    assert "registry.example.org:5000/k8s" in result.stdout
