"""Scaling out with `site.yml --limit NEW` and the reset's refusal to break etcd's quorum, on sandbox nodes running
the stand-in.

pytestscale (1 control plane + 1 worker, flannel): a cluster formed by site.yml; then worker2 is added to the
inventory with labels and a taint of its own and `site.yml --limit worker2` joins it: worker2 is Ready and carries
them, and the PLAY RECAP lists worker2 alone (the join credentials, the labels, the Ready wait and the report are
done on cp1 on worker2's behalf, shown as `[worker2 -> cp1]`); a second run with the same limit and check mode
with it change nothing. Then cp2, a control plane that never joined, is put in the inventory: resetting cp1 alone
(the last etcd member) is refused with one line before anything changes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, recap, task_results
from tests.sandbox.cluster_helpers import assert_unchanged, kubectl_json, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.58.0/24"
NEW = "worker2"
NEW_VARS = {"node_labels": {"scale.example.com/pool": "added", "node-role.kubernetes.io/worker": ""},
            "node_taints": ["scale.example.com/fresh=yes:PreferNoSchedule"]}


@pytest.fixture(scope="module")
def scale(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestscale", "--layout", "1cp1w", "--standin", "--subnet", SUBNET)
    box.playbook("site.yml")
    return box


@pytest.fixture(scope="module")
def scale_runs(scale: Sandbox) -> dict[str, str]:
    scale.up("--layout", "1cp2w", "--standin", "--subnet", SUBNET)
    host_vars = scale.inventory.parent / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{NEW}.yml").write_text("---\n" + yaml.safe_dump(NEW_VARS))
    added = scale.playbook("site.yml", "--limit", NEW)
    again = scale.playbook("site.yml", "--limit", NEW)
    check = scale.playbook("site.yml", "--limit", NEW, "--check", "--diff")
    return {"added": added.stdout, "again": again.stdout, "check": check.stdout}


def test_limited_run_joins_the_new_node_and_touches_no_other_host(scale: Sandbox,
                                                                  scale_runs: dict[str, str]) -> None:
    added = scale_runs["added"]
    counts = recap(added)
    assert set(counts) == {NEW}, counts
    assert counts[NEW]["changed"] > 0 and counts[NEW]["failed"] == 0
    assert ready_nodes(scale) == {"cp1", "worker1", NEW}
    # Done on the first control plane for the new node: the join token, the Ready wait, the labels, the report.
    # Ansible shows delegated results as `[worker2 -> cp1(ADDRESS)]`.
    on_cp1 = rf"\[{NEW} -> cp1(\([^)]*\))?\]"
    assert re.search(rf"TASK \[kubeadm_join : Kubeadm join \| Create a bootstrap token\][^\n]*\nchanged: {on_cp1}",
                     added), task_results(added)
    assert re.search(rf"TASK \[node_meta : Node meta \| Reconcile[^\n]*\nchanged: {on_cp1}", added), \
        task_results(added)
    assert re.search(rf"TASK \[cni : Cni \| Wait for every node to be Ready\][^\n]*\n(FAILED - RETRYING[^\n]*\n)*"
                     rf"ok: {on_cp1}", added)
    assert re.search(rf"{NEW}:\s+worker,\s+Ready=True", added)  # the report, from cp1
    # The pod network's manifest is left as cp1's own run applied it.
    assert "Apply the flannel manifest" not in added


def test_the_new_node_carries_its_labels_and_taint(scale: Sandbox, scale_runs: dict[str, str]) -> None:
    node = kubectl_json(scale, f"get node {NEW}")
    labels = node["metadata"]["labels"]
    assert labels["scale.example.com/pool"] == "added"
    assert labels["node-role.kubernetes.io/worker"] == ""
    taints = {f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in node["spec"].get("taints", [])}
    assert "scale.example.com/fresh=yes:PreferNoSchedule" in taints
    assert "scale.example.com/pool" not in kubectl_json(scale, "get node worker1")["metadata"]["labels"]


def test_limited_rerun_and_check_mode_change_nothing(scale_runs: dict[str, str]) -> None:
    for run in ("again", "check"):
        assert set(recap(scale_runs[run])) == {NEW}, run
        assert_unchanged(scale_runs[run], {NEW})


@pytest.mark.usefixtures("scale_runs")
def test_resetting_the_last_etcd_member_alone_is_refused(scale: Sandbox) -> None:
    # cp2 is in the inventory but never joined: resetting cp1 alone would end the cluster.
    scale.up("--layout", "2cp2w", "--standin", "--subnet", SUBNET)
    refused = scale.playbook("playbooks/reset.yml", "--limit", "cp1", "-e", "reset_confirm=true", check=False)
    assert refused.returncode != 0
    said = " ".join(refused.stdout.split())  # the message as one line (the output wraps it)
    assert ("cp1: not reset: it is the last etcd member (the last control plane), so resetting it ends the cluster; "
            "reset the whole cluster (playbooks/reset.yml -e reset_confirm=true without --limit)") in said, \
        task_results(refused.stdout, ("fatal", "failed"))
    counts = recap(refused.stdout)
    assert set(counts) == {"cp1"} and counts["cp1"]["changed"] == 0
    assert ready_nodes(scale) == {"cp1", "worker1", NEW}
    assert scale.ssh("cp1", "test -f /etc/kubernetes/admin.conf && test -f /etc/kubernetes/manifests/etcd.yaml",
                     check=False).returncode == 0
