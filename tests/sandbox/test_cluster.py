"""Cluster formation with site.yml on sandbox nodes running the stand-in (kubeadm, kubelet, API server, CNI).

pytestflan (1 control plane + 2 workers, flannel): converge, every node Ready, flannel's net-conf in the cluster is
ours, a second run and check mode change nothing; a third worker joins with every other host unchanged; a join made
to fail half-way by the stand-in's fault marker converges on a plain re-run (both with `--limit` to that node). Then
NFS on the same cluster: the client packages on every node and a bound PersistentVolume per declared volume (on an
external server: sandbox nodes cannot serve NFS), and a sandbox node put in nfs_server is refused with one clear line
before anything changes.
calico with 3 control planes and 3 workers: the molecule scenario `calico` (tests/sandbox/test_molecule.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, recap
from tests.sandbox.cluster_helpers import assert_unchanged, kubectl_json, ready_nodes

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

FLAN_SUBNET = "10.213.15.0/24"
FLAN_POD_SUBNET = "10.80.0.0/16"


@pytest.fixture(scope="module")
def flan(sandbox_factory: Any) -> Sandbox:
    box: Sandbox = sandbox_factory("pytestflan", "--layout", "1cp2w", "--standin", "--subnet", FLAN_SUBNET)
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(
        f"---\nkube_pod_subnet: {FLAN_POD_SUBNET}\nflannel_backend: vxlan-directrouting\n"
        "cluster_report_fetch_kubeconfig: true\n")
    return box


@pytest.fixture(scope="module")
def flan_runs(flan: Sandbox) -> dict[str, str]:
    first = flan.playbook("site.yml")
    second = flan.playbook("site.yml")
    check = flan.playbook("site.yml", "--check", "--diff")
    return {"first": first.stdout, "second": second.stdout, "check": check.stdout}


def test_flannel_cluster_converges_and_is_stable(flan: Sandbox, flan_runs: dict[str, str]) -> None:
    hosts = {"cp1", "worker1", "worker2"}
    assert all(recap(flan_runs["first"])[h]["changed"] > 0 for h in hosts)
    assert_unchanged(flan_runs["second"], hosts)
    assert_unchanged(flan_runs["check"], hosts)
    assert ready_nodes(flan) == hosts
    assert "pod network: flannel" in flan_runs["first"]
    fetched = flan.inventory.parent / "admin.conf"
    assert fetched.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("flan_runs")
def test_flannel_network_config_in_the_cluster_is_ours(flan: Sandbox) -> None:
    cm = kubectl_json(flan, "-n kube-flannel get configmap kube-flannel-cfg")
    conf = json.loads(cm["data"]["net-conf.json"])
    assert conf["Network"] == FLAN_POD_SUBNET
    assert conf["Backend"] == {"Type": "vxlan", "DirectRouting": True}
    assert conf["SubnetLen"] == 24
    ds = kubectl_json(flan, "-n kube-flannel get daemonset kube-flannel-ds")
    assert "--iface=eth0" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
    nodes = kubectl_json(flan, "get nodes")["items"]
    assert all(n["spec"]["podCIDR"].startswith("10.80.") for n in nodes)
    config = flan.ssh("cp1", "cat /etc/kubernetes/kubeadm-config.yaml").stdout
    assert f"podSubnet: \"{FLAN_POD_SUBNET}\"" in config


@pytest.mark.usefixtures("flan_runs")
def test_an_added_worker_joins_and_nothing_else_changes(flan: Sandbox) -> None:
    flan.up("--layout", "1cp3w", "--standin", "--subnet", FLAN_SUBNET)
    run = flan.playbook("site.yml")
    assert recap(run.stdout)["worker3"]["changed"] > 0
    assert_unchanged(run.stdout, {"cp1", "worker1", "worker2"})
    assert "worker3" in ready_nodes(flan)


@pytest.mark.usefixtures("flan_runs")
def test_a_join_failed_half_way_converges_on_a_plain_rerun(flan: Sandbox) -> None:
    flan.up("--layout", "1cp4w", "--standin", "--subnet", FLAN_SUBNET)
    flan.ssh("worker4", "mkdir -p /etc/kubeboot-standin/faults"
             " && echo kubelet-start > /etc/kubeboot-standin/faults/join")
    # Only the node being added runs (site.yml --limit): the credentials come from cp1 on its behalf.
    failed = flan.playbook("site.yml", "--limit", "worker4", check=False)
    assert failed.returncode != 0
    assert recap(failed.stdout) == {"worker4": recap(failed.stdout)["worker4"]}
    assert recap(failed.stdout)["worker4"]["failed"] == 1
    assert "fault injected by marker" in failed.stdout
    rerun = flan.playbook("site.yml", "--limit", "worker4")
    assert set(recap(rerun.stdout)) == {"worker4"}
    assert recap(rerun.stdout)["worker4"]["failed"] == 0
    assert "worker4" in ready_nodes(flan)
    assert flan.ssh("worker4", "cat /etc/kubernetes/kubeboot-join.state").stdout.strip() == "complete"


# NFS volumes on a server outside the sandbox (TEST-NET-1; nothing mounts it: the stand-in's kubelet runs no pods).
NFS_EXTERNAL_SERVER = "192.0.2.50"
NFS_VOLUMES = [
    {"name": "mongodb", "server": NFS_EXTERNAL_SERVER, "path": "/nfs_mongodb/mongodb", "capacity": "5Gi",
     "namespace": "licode"},
    {"name": "media", "server": NFS_EXTERNAL_SERVER, "path": "/srv/media", "access_mode": "ReadWriteMany",
     "claim": "media-files"},
]


@pytest.fixture(scope="module")
def flan_nfs(flan: Sandbox, flan_runs: dict[str, str]) -> dict[str, str]:
    """The converged cluster with NFS volumes declared: site.yml once (its NFS plays do the work), then the NFS
    playbook on its own again."""
    group_vars = flan.inventory.parent / "group_vars/all.yml"
    settings = yaml.safe_load(group_vars.read_text())
    settings["nfs_volumes"] = NFS_VOLUMES
    group_vars.write_text("---\n" + yaml.safe_dump(settings, sort_keys=False))
    first = flan.playbook("site.yml")
    second = flan.playbook("playbooks/nfs.yml")
    return {"first": first.stdout, "second": second.stdout}


def test_nfs_client_packages_on_every_node(flan: Sandbox, flan_nfs: dict[str, str]) -> None:
    nodes = set(flan.nodes)
    counts = recap(flan_nfs["first"])
    assert all(counts[node]["changed"] > 0 for node in nodes), counts
    assert_unchanged(flan_nfs["second"], nodes)
    for node in nodes:
        status = flan.ssh(node, "dpkg-query -W -f '${Status}' nfs-common && test -x /sbin/mount.nfs4").stdout
        assert status == "install ok installed", f"{node}: nfs-common {status!r}"


def test_nfs_volumes_and_bound_claims_in_the_cluster(flan: Sandbox, flan_nfs: dict[str, str]) -> None:
    volumes = {v["metadata"]["name"]: v for v in
               kubectl_json(flan, "get pv -l app.kubernetes.io/managed-by=kubeboot")["items"]}
    assert set(volumes) == {"mongodb", "media"}
    claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in
              kubectl_json(flan, "get pvc -A -l app.kubernetes.io/managed-by=kubeboot")["items"]}
    assert set(claims) == {("licode", "mongodb"), ("default", "media-files")}
    expected = {"mongodb": ("/nfs_mongodb/mongodb", "5Gi", "ReadWriteOnce", "licode", "mongodb"),
                "media": ("/srv/media", "10Gi", "ReadWriteMany", "default", "media-files")}
    for name, (path, size, mode, namespace, claim) in expected.items():
        spec = volumes[name]["spec"]
        assert spec["nfs"] == {"server": NFS_EXTERNAL_SERVER, "path": path, "readOnly": False}
        assert spec["capacity"] == {"storage": size} and spec["accessModes"] == [mode]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain" and spec["storageClassName"] == ""
        assert spec["mountOptions"] == ["hard", "nfsvers=4.2", "noatime"]
        assert (spec["claimRef"]["namespace"], spec["claimRef"]["name"]) == (namespace, claim)
        pvc = claims[(namespace, claim)]["spec"]
        assert pvc["volumeName"] == name and pvc["storageClassName"] == ""
        assert pvc["accessModes"] == [mode] and pvc["resources"]["requests"]["storage"] == size
    assert "NFS volumes | Apply the namespaces, PersistentVolumes and claims" in flan_nfs["first"]


@pytest.mark.usefixtures("flan_nfs")
def test_a_sandbox_node_cannot_serve_nfs_and_nothing_changes(flan: Sandbox) -> None:
    extra = flan.inventory.parent / "nfs-server.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"nfs_server": {"hosts": {"worker1": {
        "nfs_exports": [{"path": "/nfs_mongodb", "directories": [{"path": "mongodb"}]}]}}}}}}))
    try:
        run = flan.playbook("-i", str(extra), "playbooks/nfs.yml", check=False)
    finally:
        extra.unlink()
    assert run.returncode != 0
    fatal = [line for line in run.stdout.splitlines() if line.startswith("fatal: [")]
    assert len(fatal) == 1 and fatal[0].startswith("fatal: [worker1]"), run.stdout[-3000:]
    said = " ".join((run.stdout + run.stderr).split())
    assert "worker1: cannot serve NFS: its kernel has no nfsd" in said
    assert "modprobe nfsd: " in said and "Module nfsd not found" in said
    assert "nothing was changed" in said and "remove worker1 from the nfs_server group" in said
    counts = recap(run.stdout)
    assert counts["worker1"]["failed"] == 1
    assert all(c["changed"] == 0 for c in counts.values()), counts
    assert "Install the NFS client" not in run.stdout  # the run stopped at the servers' play
    leftovers = flan.ssh("worker1", "dpkg-query -W -f '${Status}\\n' nfs-kernel-server 2>/dev/null; for f in "
                         "/nfs_mongodb /etc/exports.d/kubeboot.exports /etc/nfs.conf.d/kubeboot.conf; "
                         "do test -e $f && echo \"exists $f\"; done; true").stdout
    assert "install ok installed" not in leftovers and "exists" not in leftovers, leftovers
