"""kubeadm's etcd manifest and etcdctl's output as the etcd backup and restore roles read and rewrite them."""

from __future__ import annotations

import pytest
import yaml

from kubeboot import etcd

# kubeadm 1.33's etcd.yaml of a control plane that joined (the first one has only itself in --initial-cluster).
MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.12:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.0.12:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --experimental-initial-corrupt-check=true
    - --initial-advertise-peer-urls=https://10.0.0.12:2380
    - --initial-cluster=cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.12:2379
    - --name=cp2
    image: registry.k8s.io/etcd:3.5.21-0
    name: etcd
  hostNetwork: true
"""

MEMBER_ADD = """\
Member 505452a16cc223ec added to cluster c7d176edebf0bc40

ETCD_NAME="cp2"
ETCD_INITIAL_CLUSTER="cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380"
ETCD_INITIAL_ADVERTISE_PEER_URLS="https://10.0.0.12:2380"
ETCD_INITIAL_CLUSTER_STATE="existing"
"""


def test_manifest_flags() -> None:
    flags = etcd.manifest_flags(MANIFEST)
    assert flags["name"] == "cp2"
    assert flags["initial-advertise-peer-urls"] == "https://10.0.0.12:2380"
    assert flags["data-dir"] == "/var/lib/etcd"
    assert flags["listen-client-urls"] == "https://127.0.0.1:2379,https://10.0.0.12:2379"


def test_manifest_flags_default_data_dir_and_refusals() -> None:
    without = MANIFEST.replace("    - --data-dir=/var/lib/etcd\n", "")
    assert etcd.manifest_flags(without)["data-dir"] == "/var/lib/etcd"
    with pytest.raises(etcd.EtcdError, match="--name"):
        etcd.manifest_flags(MANIFEST.replace("    - --name=cp2\n", ""))
    with pytest.raises(etcd.EtcdError, match="not a static pod manifest"):
        etcd.manifest_flags("just text")


def test_member_add() -> None:
    found = etcd.member_add(MEMBER_ADD)
    assert found["ETCD_INITIAL_CLUSTER"] == "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380"
    assert found["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    with pytest.raises(etcd.EtcdError, match="ETCD_INITIAL_CLUSTER"):
        etcd.member_add("Error: etcdserver: Peer URLs already exists\n")


def test_rejoin_manifest_sets_the_members_and_the_state_once() -> None:
    first = MANIFEST.replace("    - --initial-cluster-state=existing\n", "")
    for text in (MANIFEST, first):
        result = etcd.rejoin_manifest(text, "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380")
        command = yaml.safe_load(result)["spec"]["containers"][0]["command"]
        assert [c for c in command if c.startswith("--initial-cluster")] == [
            "--initial-cluster=cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380",
            "--initial-cluster-state=existing"]
        assert "--name=cp2" in command and "--data-dir=/var/lib/etcd" in command
        assert len(command) == len(yaml.safe_load(MANIFEST)["spec"]["containers"][0]["command"])


def test_rejoin_manifest_refusals() -> None:
    with pytest.raises(etcd.EtcdError, match="initial cluster list"):
        etcd.rejoin_manifest(MANIFEST, "")
    with pytest.raises(etcd.EtcdError, match="no --initial-cluster line"):
        etcd.rejoin_manifest(MANIFEST.replace("--initial-cluster=", "--x="), "cp1=https://10.0.0.11:2380")


def test_snapshot_status() -> None:
    status = etcd.snapshot_status('{"hash":3384113085,"revision":4,"totalKey":7,"totalSize":20480}\n')
    assert status == {"hash": "c9b577bd", "revision": 4, "total_keys": 7, "size": 20480}
    with pytest.raises(etcd.EtcdError):
        etcd.snapshot_status("Error: snapshot file integrity check failed")


def test_to_prune_keeps_the_newest() -> None:
    paths = ["/b/k/20261206T101500Z.db", "/b/k/20261204T101500Z.db", "/b/k/20261205T101500Z.db"]
    assert etcd.to_prune(paths, 2) == ["/b/k/20261204T101500Z.db"]
    assert etcd.to_prune(paths, 1) == ["/b/k/20261204T101500Z.db", "/b/k/20261205T101500Z.db"]
    assert etcd.to_prune(paths, 3) == [] and etcd.to_prune([], 7) == []
    with pytest.raises(etcd.EtcdError):
        etcd.to_prune(paths, 0)


def test_member_names() -> None:
    text = ('{"header":{"cluster_id":1},"members":[{"ID":2,"name":"cp2","peerURLs":["https://10.0.0.12:2380"]},'
            '{"ID":1,"name":"cp1"},{"ID":3,"peerURLs":["https://10.0.0.13:2380"]}]}')
    assert etcd.member_names(text) == ["cp1", "cp2"]  # an unstarted member has no name yet


def _members(*names: str, learners: tuple[str, ...] = ()) -> list[dict[str, object]]:
    return [{"ID": i, "name": n, **({"isLearner": True} if n in learners else {})} for i, n in enumerate(names)]


def test_quorum_refusal_allows_what_keeps_a_majority() -> None:
    three = _members("cp1", "cp2", "cp3")
    assert etcd.quorum_refusal(three, ["cp1", "cp2", "cp3"], ["cp3"]) == ""
    assert etcd.quorum_refusal(three, ["cp1", "cp2", "cp3"], ["cp3", "cp2"]) == ""  # 3 -> 2 -> 1, all healthy
    assert etcd.quorum_refusal(three, ["cp1", "cp2"], ["cp3"]) == ""  # the unhealthy one leaves: 2 of 2
    assert etcd.quorum_refusal(three, ["cp1", "cp2"], ["worker1"]) == ""  # not a member: nothing leaves etcd
    # A learner does not vote: it leaves even while a voter is down.
    assert etcd.quorum_refusal(_members("cp1", "cp2", "cp3", "cp4", learners=("cp4",)), ["cp1", "cp2"], ["cp4"]) == ""


def test_quorum_refusal_of_a_step_that_breaks_quorum() -> None:
    three = _members("cp1", "cp2", "cp3")
    line = etcd.quorum_refusal(three, ["cp1", "cp3"], ["cp3"])  # cp2 is down: cp1 alone of cp1, cp2
    assert line.startswith("cp3: not reset: etcd would lose its quorum")
    assert "1 of the 2 members that stay are healthy" in line and "fewer than the 2" in line
    assert "without --limit" in line and "\n" not in line
    # 5 members, cp4 and cp5 down: removing cp3 first (reverse inventory order) leaves 2 healthy of 4.
    five = _members("cp1", "cp2", "cp3", "cp4", "cp5")
    assert etcd.quorum_refusal(five, ["cp1", "cp2", "cp3"], ["cp3", "cp4"]).startswith("cp3: ")
    assert etcd.quorum_refusal(five, ["cp1", "cp2", "cp3"], ["cp5", "cp4"]) == ""  # the down ones go first


def test_quorum_refusal_without_quorum_now_and_of_the_last_member() -> None:
    line = etcd.quorum_refusal(_members("cp1", "cp2", "cp3"), ["cp1"], ["cp3"])
    assert line.startswith("cp3: not reset: etcd has no quorum (1 of 3 members healthy: cp1;")
    # Removing both unhealthy members at once would leave a healthy pair, but nothing can leave a cluster without
    # quorum.
    five = _members("cp1", "cp2", "cp3", "cp4", "cp5")
    assert "no quorum" in etcd.quorum_refusal(five, ["cp1", "cp2"], ["cp5", "cp4", "cp3"])
    last = etcd.quorum_refusal(_members("cp1"), ["cp1"], ["cp1"])
    assert last.startswith("cp1: not reset: it is the last etcd member")
    # The last healthy member of two: etcd has no quorum once the other is down.
    assert "no quorum" in etcd.quorum_refusal(_members("cp1", "cp2"), ["cp1"], ["cp1"])


def test_quorum_refusal_never_stands_in_the_way_of_a_whole_cluster_reset() -> None:
    assert etcd.quorum_refusal(_members("cp1", "cp2", "cp3"), [], ["cp3", "cp2", "cp1"], whole_cluster=True) == ""
    assert etcd.quorum_refusal(_members("cp1"), ["cp1"], ["cp1"], whole_cluster=True) == ""
    with pytest.raises(etcd.EtcdError):
        etcd.quorum_refusal("not a list of members", [], ["cp1"])
