"""playbooks/upgrade.yml on a 1cp2w flannel cluster built at 1.32 (the stand-in's v1.32.5), taken to v1.33.1.

In order: bad targets refused before anything changes; a run that stops at a fault in `kubeadm upgrade apply`; a
PodDisruptionBudget that blocks a worker's drain (the run stops naming it, the worker schedulable again); a worker
lost in the middle of its batch; each finished by a plain re-run; then every version at the target, a second run that
changes nothing and check mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, VENV_BIN, Sandbox, recap

pytestmark = pytest.mark.sandbox

SUBNET = "10.213.63.0/24"
LAYOUT = ("--layout", "1cp2w", "--standin", "--standin-minor", "1.32", "--subnet", SUBNET)
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
FAULTS = "/etc/kubeboot-standin/faults"


def flat(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module")
def cluster(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestupg", *LAYOUT)
    box.playbook("site.yml")
    return box


@pytest.fixture(scope="module")
def target(cluster: Sandbox) -> Path:
    """-e @file: the stand-in's 1.33 release (kube_version 1.33.1 and its repository)."""
    path = cluster.inventory.parent / "v1.33.yml"
    path.write_text(yaml.safe_dump(cluster.releases["1.33"]))
    return path


def upgrade(box: Sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return box.playbook("playbooks/upgrade.yml", *args, check=check, timeout=2400)


def node_versions(box: Sandbox) -> dict[str, tuple[str, bool]]:
    """Node -> (kubelet version, unschedulable) as the API server has them."""
    data = json.loads(box.ssh("cp1", f"{KUBECTL} get nodes -o json").stdout)
    return {n["metadata"]["name"]: (n["status"]["nodeInfo"]["kubeletVersion"], bool(n["spec"].get("unschedulable")))
            for n in data["items"]}


def packages(box: Sandbox, node: str) -> str:
    return box.ssh(node, "dpkg-query -W -f '${Package}=${Version} ' kubeadm kubelet kubectl; "
                         "apt-mark showhold | sort | tr '\\n' ' '").stdout.strip()


def apiserver_image(box: Sandbox) -> str:
    return box.ssh("cp1", "sed -n 's/^ *image: *//p' /etc/kubernetes/manifests/kube-apiserver.yaml").stdout.strip()


def test_bad_targets_are_refused_before_anything_changes(cluster: Sandbox, target: Path) -> None:
    before = {name: packages(cluster, name) for name in cluster.nodes}
    cases = {
        "1.34.0": "cp1: kube_version = 1.34.0 skips a minor: the API servers run v1.32.5; upgrade one minor at a time "
                  "(first to the latest 1.33.x)",
        # A downgrade is refused by the same check (tests/unit/test_upgrade.py has its line).
        "1.33.9": "has no kubeadm, kubelet, kubectl at 1.33.9; give a kube_version it serves (its kubeadm versions: "
                  "1.33.1-1.1)",
    }
    for version, line in cases.items():
        result = upgrade(cluster, "-e", f"@{target}", "-e", f"kube_version={version}", check=False)
        assert result.returncode != 0, version
        assert line in flat(result.stdout), (version, result.stdout[-3000:])
        assert all(counts["changed"] == 0 for counts in recap(result.stdout).values()), version
    # An unreachable repository for the target minor: named with the node.
    result = upgrade(cluster, "-e", f"@{target}", "-e", "kube_package_repo_url=http://10.213.63.1:9/nothing",
                     check=False)
    assert result.returncode != 0
    assert "worker1: http://10.213.63.1:9/nothing/deb/Release does not answer" in flat(result.stdout)
    assert {name: packages(cluster, name) for name in cluster.nodes} == before
    assert all(version == "v1.32.5" and not cordoned for version, cordoned in node_versions(cluster).values())


def test_a_fault_in_upgrade_apply_stops_the_run_and_a_plain_rerun_goes_on(cluster: Sandbox, target: Path) -> None:
    """The fault at `addon`: kubeadm has already rewritten the manifests and kubeadm-config; the re-run must run
    `kubeadm upgrade apply` again (the cluster does not run the target yet: kube-proxy is old) and go on."""
    cluster.ssh("cp1", f"mkdir -p {FAULTS} && echo addon > {FAULTS}/upgrade")
    # The PodDisruptionBudget case needs a pod on worker1 that its budget protects.
    manifest = {
        "apiVersion": "v1", "kind": "List", "items": [
            # Owned by a ReplicaSet, as a Deployment's pod is (kubectl drain deletes no pod without a controller).
            {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "guarded", "namespace": "default", "labels": {"app": "guarded"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "guarded-6d4cf56db6",
                                     "uid": "0f0e7a52-8f57-4a63-9d2a-5b1f3c0d9e11", "controller": True}]},
             "spec": {"nodeName": "worker1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}},
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "guarded-budget", "namespace": "default"},
             "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}},
        ]}
    cluster.ssh("cp1", f"{KUBECTL} apply -f - <<'EOF'\n{json.dumps(manifest)}\nEOF")
    result = upgrade(cluster, "-e", f"@{target}", "-e", "kube_upgrade_drain_timeout=30", check=False)
    assert result.returncode != 0
    assert "error execution phase addon: fault injected by marker: phase addon failed" in flat(result.stdout)
    assert apiserver_image(cluster).endswith(":v1.33.1")  # kubeadm got that far
    assert recap(result.stdout)["worker1"]["changed"] == 0  # no worker was touched

    # The re-run finishes the apply and the control plane, then worker1's drain meets the budget.
    result = upgrade(cluster, "-e", f"@{target}", "-e", "kube_upgrade_drain_timeout=30", check=False)
    assert result.returncode != 0
    assert ("worker1: kubectl drain did not finish within kube_upgrade_drain_timeout (30s): eviction refused for "
            "default/guarded (PodDisruptionBudget default/guarded-budget: 0 disruptions allowed). The node is "
            "schedulable again") in flat(result.stdout)
    versions = node_versions(cluster)
    assert versions["cp1"] == ("v1.33.1", False)
    assert versions["worker1"] == ("v1.32.5", False)  # schedulable again, still at the old version
    assert cluster.ssh("worker1", "test -e /var/lib/kubeboot/upgrade/cordoned", check=False).returncode != 0
    proxy = cluster.ssh("cp1", f"{KUBECTL} -n kube-system get ds kube-proxy "
                               "-o jsonpath='{.spec.template.spec.containers[0].image}'").stdout
    assert proxy.endswith(":v1.33.1")
    cluster.ssh("cp1", f"{KUBECTL} delete pdb guarded-budget")


def test_a_worker_lost_in_its_batch_is_finished_by_a_plain_rerun(cluster: Sandbox, target: Path) -> None:
    """Both workers in one batch; worker2 is powered off once its kubeadm is at the target. The run stops; with
    worker2 back, a plain re-run finishes it (and whatever worker1 had left)."""
    log = cluster.inventory.parent / "lost-worker.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(cluster.inventory),
             "playbooks/upgrade.yml", "-e", f"@{target}", "-e", "kube_upgrade_batch=2"],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env=run_ansible_env())
        try:
            deadline = time.monotonic() + 1200
            while time.monotonic() < deadline and run.poll() is None:
                probe = cluster.ssh("worker2", "kubeadm version -o short", check=False)
                if probe.stdout.strip() == "v1.33.1":
                    cluster.ssh("worker2", "systemctl poweroff --force --force", check=False)
                    break
                time.sleep(2)
            else:
                pytest.fail(f"worker2's kubeadm never reached v1.33.1 during the run:\n{log.read_text()[-3000:]}")
            run.wait(timeout=1800)
        finally:
            if run.poll() is None:
                run.kill()
    output = log.read_text()
    assert run.returncode != 0
    assert recap(output)["worker2"]["unreachable"] + recap(output)["worker2"]["failed"] > 0
    cluster.up(*LAYOUT)  # worker2 boots again
    # A real host applies /etc/sysctl.d at boot; systemd-sysctl does not run in a sandbox node (/proc/sys is read-only
    # there, ConditionPathIsReadWrite fails), so worker2 would come back with net.ipv4.ip_forward=0.
    cluster.ssh("worker2", "sysctl -q -p /etc/sysctl.d/99-kubernetes.conf")
    deadline = time.monotonic() + 300
    while node_versions(cluster).get("worker2") is None or cluster.ssh(
            "cp1", f"{KUBECTL} get node worker2 -o jsonpath='{{.status.conditions[?(@.type==\"Ready\")].status}}'"
    ).stdout.strip() != "True":
        assert time.monotonic() < deadline, "worker2 did not come back Ready"
        time.sleep(5)
    result = upgrade(cluster, "-e", f"@{target}")
    assert "not at v1.33.1" not in result.stdout


def test_every_version_is_at_the_target_and_a_second_run_changes_nothing(cluster: Sandbox, target: Path) -> None:
    assert node_versions(cluster) == {name: ("v1.33.1", False) for name in ("cp1", "worker1", "worker2")}
    for name in cluster.nodes:
        assert packages(cluster, name) == ("kubeadm=1.33.1-1.1 kubectl=1.33.1-1.1 kubelet=1.33.1-1.1 "
                                           "kubeadm kubectl kubelet"), name
    pods = json.loads(cluster.ssh("cp1", f"{KUBECTL} -n kube-system get pods -l tier=control-plane -o json").stdout)
    images = {p["metadata"]["labels"]["component"]: p["spec"]["containers"][0]["image"] for p in pods["items"]}
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert images[component].endswith(":v1.33.1"), images
    result = upgrade(cluster, "-e", f"@{target}")
    assert all(counts["changed"] == 0 for counts in recap(result.stdout).values()), result.stdout[-3000:]
    assert "cp1: kubelet v1.33.1, kubeadm v1.33.1, kubectl v1.33.1" in flat(result.stdout)
    checked = upgrade(cluster, "-e", f"@{target}", "--check")
    assert all(counts["changed"] == 0 for counts in recap(checked.stdout).values())
    # The inventory at the new version from here on: site.yml finds every node as upgrade.yml left it.
    converged = cluster.playbook("site.yml", "-e", f"@{target}")
    assert all(counts["changed"] == 0 for counts in recap(converged.stdout).values()), converged.stdout[-3000:]


def run_ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
