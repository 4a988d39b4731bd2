"""The highly available API endpoint on sandbox nodes: 3 control planes + 1 worker with kube_control_plane_lb
keepalived. The cluster forms through the VIP (kubeadm's config, every kubelet.conf and admin.conf name VIP:8443);
check mode runs clean; a fourth control plane is added to every haproxy (the run changes nothing else on the nodes
there were: it is their second run), and reset with --limit is taken out of them and of etcd again; an etcd restore
of the three control planes brings every member back, through the VIP; then, while a client keeps calling /readyz
through the VIP, the VIP holder is taken away, first by its API server failing (the stand-in's apiserver-down
marker), then by the node being powered off at once: each time the VIP moves and the API answers through it again.
The time without an answer and the failed calls are printed (benchmarks/failover_bench.py measures them over
several tries). VRRP: the adverts on the wire are VRRPv3 every kube_control_plane_vip_advert_interval; control
planes on VRRPv2 configurations (keepalived's usual 1 s) all get VRRPv3 in one api_endpoint.yml run, here switched
to unicast adverts at the same time, and the failovers above then run on unicast VRRPv3."""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

import pytest
import yaml

from tests.conftest import Sandbox, kubeboot, recap, task_results
from tests.sandbox.cluster_helpers import KUBECTL, kubectl_json, ready_nodes
from tests.sandbox.ha_probe import Prober

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SUBNET = "10.213.53"
VIP = f"{SUBNET}.100"
PORT = 8443
ENDPOINT = f"{VIP}:{PORT}"
CONTROL_PLANES = ["cp1", "cp2", "cp3"]
# Built at the stand-in's 1.32 (v1.32.5) for the upgrade through the VIP (calico: the other modules' upgrade is
# flannel's).
LAYOUT = ("--layout", "3cp1w", "--standin", "--standin-minor", "1.32", "--subnet", f"{SUBNET}.0/24")
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
ETCDCTL = ("ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key")


ROUTER_ID = 100  # the VIP's last octet
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
# Reads the VRRP packets a node receives for `seconds` (a raw socket of IP protocol 112) and prints one JSON line
# each: source, destination, VRRP version, type, router id, and the advert interval as the packet carries it
# (VRRPv3: 12 bits of centiseconds; VRRPv2: one byte of seconds).
SNIFF = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.settimeout(1.0)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    v = data[(data[0] & 15) * 4:]
    cs = ((v[4] & 15) << 8 | v[5]) if v[0] >> 4 == 3 else v[5] * 100
    print(json.dumps({"src": socket.inet_ntoa(data[12:16]), "dst": socket.inet_ntoa(data[16:20]),
                      "version": v[0] >> 4, "type": v[0] & 15, "vrid": v[1], "centiseconds": cs}))
"""


def write_vars(box: Sandbox, **more: Any) -> None:
    group_vars = box.inventory.parent / "group_vars"
    group_vars.mkdir(exist_ok=True)
    settings = {"kube_control_plane_lb": "keepalived", "kube_control_plane_vip": VIP, "kube_cni": "calico", **more}
    (group_vars / "all.yml").write_text("---\n" + yaml.safe_dump(settings))


def adverts(box: Sandbox, node: str, seconds: float = 3.0) -> list[dict[str, Any]]:
    """The VRRP adverts `node` receives in `seconds`."""
    out = box.ssh(node, f"python3 -c {shlex.quote(SNIFF)} {seconds}").stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def assert_adverts(box: Sandbox, holder: str, backup: str, version: int, centiseconds: int, unicast: bool) -> None:
    """The holder alone advertises, with this version and interval, to the backup's address or VRRP's group; and
    about as often as the interval says (at least half as often: the machine may be loaded)."""
    seen = [a for a in adverts(box, backup, 3.0) if a["vrid"] == ROUTER_ID]
    print(f"adverts seen on {backup}: {seen[:2]} ... ({len(seen)} in 3 s)")
    destination = box.nodes[backup]["address"] if unicast else "224.0.0.18"
    assert {(a["src"], a["dst"], a["version"], a["type"], a["centiseconds"]) for a in seen} == {
        (box.nodes[holder]["address"], destination, version, 1, centiseconds)}, seen
    assert len(seen) >= 300 / centiseconds / 2, seen


def holders(box: Sandbox, nodes: list[str]) -> list[str]:
    """The control planes that have the VIP on a NIC."""
    return [n for n in nodes if box.ssh(n, f"ip -o -4 addr show to {VIP}/32").stdout.strip()]


def backends(box: Sandbox, node: str) -> list[str]:
    return re.findall(r"^\s*server (\S+) ", box.ssh(node, f"cat {HAPROXY_CFG}").stdout, re.M)


def wait_for_one_holder(box: Sandbox, nodes: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = holders(box, nodes)
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, f"the VIP is held by {found or 'nobody'} after {timeout} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def box(sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = sandbox_factory("pytestha", *LAYOUT)
    write_vars(sandbox)
    sandbox.playbook("site.yml")
    return sandbox


def test_the_cluster_forms_through_the_vip(box: Sandbox) -> None:
    assert ready_nodes(box) == {*CONTROL_PLANES, "worker1"}
    config = kubectl_json(box, "-n kube-system get configmap kubeadm-config")["data"]["ClusterConfiguration"]
    assert f"controlPlaneEndpoint: {ENDPOINT}" in config, config
    for node in [*CONTROL_PLANES, "worker1"]:
        kubeconfigs = ["kubelet.conf", *(["admin.conf"] if node in CONTROL_PLANES else [])]
        for name in kubeconfigs:
            server = box.ssh(node, f"sed -n 's/^ *server: //p' /etc/kubernetes/{name}").stdout.split()
            assert server == [f"https://{ENDPOINT}"], (node, name, server)
        assert box.ssh(node, "systemctl is-active keepalived haproxy", check=False).stdout.split() == (
            ["active", "active"] if node in CONTROL_PLANES else ["inactive", "inactive"])
    assert holders(box, CONTROL_PLANES) == ["cp1"]
    for cp in CONTROL_PLANES:
        assert backends(box, cp) == CONTROL_PLANES
        assert box.ssh(cp, "sysctl -n net.ipv4.ip_nonlocal_bind").stdout.strip() == "1"
        config = box.ssh(cp, f"cat {KEEPALIVED_CONF}").stdout
        assert re.search(r"^ +vrrp_version 3$", config, re.M) and re.search(r"^ +advert_int 0\.50$", config, re.M)
    # On the wire: VRRPv3 adverts from cp1 every 0.5 s (50 centiseconds), by multicast.
    assert_adverts(box, "cp1", "cp2", version=3, centiseconds=50, unicast=False)
    # The VIP is in the API server's certificate, and the API answers through it from every control plane.
    sans = box.ssh("cp2", "openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/pki/apiserver.crt").stdout
    assert f"IP Address:{VIP}" in sans, sans
    for cp in CONTROL_PLANES:
        assert box.ssh(cp, f"{KUBECTL} get --raw /readyz").stdout.strip() == "ok"
    # kubeboot status: who holds the VIP, and every haproxy's backends up.
    status = endpoint_status(box)
    assert status["holders"] == ["cp1"], status
    for view in status["control_planes"]:
        assert {b["name"]: b["status"] for b in view["backends"]} == dict.fromkeys(CONTROL_PLANES, "UP"), view


def endpoint_status(box: Sandbox) -> Any:
    """`kubeboot status --json`'s endpoint part, with the status exit 0 (no drift)."""
    out = kubeboot("status", "-i", str(box.inventory), "--json", check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads(out.stdout)["endpoint"]


def test_check_mode_runs_clean(box: Sandbox) -> None:
    run = box.playbook("site.yml", "--check")
    counts = recap(run.stdout)
    assert {*CONTROL_PLANES, "worker1"} <= set(counts)
    assert all(c["failed"] == 0 for c in counts.values()), task_results(run.stdout, ("fatal", "failed"))
    assert holders(box, CONTROL_PLANES) == ["cp1"]


def test_a_fourth_control_plane_with_limit_reaches_every_haproxy_and_reset_takes_it_out(box: Sandbox) -> None:
    """A control plane added with --limit: playbooks/api_endpoint.yml runs its roles on the new node only and writes
    the backends of the control planes outside the limit from there (delegated); reset.yml --limit takes it out of
    them again. (A full site.yml adding a control plane rewrites every haproxy through the roles themselves.)"""
    box.up("--layout", "4cp1w", *LAYOUT[2:])
    four = [*CONTROL_PLANES, "cp4"]
    keepalived_before = {cp: box.ssh(cp, "md5sum /etc/keepalived/keepalived.conf").stdout for cp in CONTROL_PLANES}
    run = box.playbook("playbooks/api_endpoint.yml", "--limit", "cp4")
    assert {h for h, c in recap(run.stdout).items() if c.get("ok", 0) or c.get("changed", 0)} <= {"cp4", "localhost"}
    for cp in four:
        assert backends(box, cp) == four, cp
    for cp in CONTROL_PLANES:
        assert box.ssh(cp, "md5sum /etc/keepalived/keepalived.conf").stdout == keepalived_before[cp], cp
        assert box.ssh(cp, "systemctl is-active haproxy").stdout.strip() == "active"
    assert holders(box, four) == ["cp1"]
    again = box.playbook("playbooks/api_endpoint.yml", "--limit", "cp4")
    assert recap(again.stdout)["cp4"]["changed"] == 0, task_results(again.stdout)

    reset = box.playbook("playbooks/reset.yml", "--limit", "cp4", "-e", "reset_confirm=true")
    assert set(recap(reset.stdout)) == {"cp4"}, recap(reset.stdout)
    for cp in CONTROL_PLANES:
        assert backends(box, cp) == CONTROL_PLANES, cp
    members = box.ssh("cp1", f"apt-get install -qq etcd-client >/dev/null 2>&1; {ETCDCTL} member list").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == CONTROL_PLANES, members
    assert box.ssh("cp4", "test -e /etc/haproxy/haproxy.cfg || test -e /etc/keepalived/keepalived.conf",
                   check=False).returncode != 0
    assert holders(box, four) == ["cp1"]
    assert box.ssh("cp1", f"{KUBECTL} get nodes -o name").stdout.split() == [
        f"node/{n}" for n in [*CONTROL_PLANES, "worker1"]]
    # The operator's last step: cp4 leaves the inventory.
    inventory = yaml.safe_load(box.inventory.read_text())
    drop_host(inventory, "cp4")
    box.inventory.write_text(yaml.safe_dump(inventory))
    assert endpoint_status(box)["holders"] == ["cp1"]


def drop_host(tree: Any, name: str) -> None:
    """Remove a host from every hosts: mapping of an inventory tree."""
    if isinstance(tree, dict):
        hosts = tree.get("hosts")
        if isinstance(hosts, dict):
            hosts.pop(name, None)
        for value in tree.values():
            drop_host(value, name)


def test_a_restore_of_three_control_planes_brings_every_member_back(box: Sandbox) -> None:
    kept, later = ["keep-1", "keep-2"], ["after-backup-1"]
    for name in kept:
        box.ssh("cp1", f"{KUBECTL} -n default create configmap {name} --from-literal=name={name}")
    box.playbook("playbooks/etcd_backup.yml")
    snapshot = sorted((box.inventory.parent / "etcd-backups" / "kubernetes").glob("*.db"))[-1]
    box.ssh("cp1", f"{KUBECTL} -n default delete configmap {' '.join(kept)}")
    for name in later:
        box.ssh("cp1", f"{KUBECTL} -n default create configmap {name} --from-literal=name={name}")
    run = box.playbook("playbooks/etcd_restore.yml", "-e", f"etcd_restore_snapshot={snapshot}",
                       "-e", "etcd_restore_confirm=true", check=False)
    assert run.returncode == 0, task_results(run.stdout, ("fatal", "failed")) + run.stdout[-3000:]
    assert "members: cp1, cp2, cp3" in " ".join(run.stdout.split())
    members = box.ssh("cp1", f"{ETCDCTL} member list").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == CONTROL_PLANES, members
    assert all(", started, " in line for line in members.splitlines()), members
    endpoints = ",".join(f"https://{box.nodes[cp]['address']}:2379" for cp in CONTROL_PLANES)
    health = box.ssh("cp1", f"{ETCDCTL.replace('--endpoints=https://127.0.0.1:2379', '')} "
                     f"--endpoints={endpoints} endpoint health")
    # etcdctl 3.4 prints the health of each endpoint on stderr
    assert (health.stdout + health.stderr).count("is healthy") == 3, health.stdout + health.stderr
    for cp in CONTROL_PLANES:
        server = f"--server=https://{box.nodes[cp]['address']}:6443"
        assert box.ssh(cp, f"{KUBECTL} {server} get --raw /readyz").stdout.strip() == "ok"
        out = box.ssh(cp, f"{KUBECTL} {server} -n default get configmaps -o name").stdout
        found = {line.removeprefix("configmap/") for line in out.split()}
        assert set(kept) <= found and not set(later) & found, (cp, found)
        assert len(box.ssh(cp, "ls -d /var/lib/etcd.before-restore-*").stdout.split()) == 1
    # Through the VIP again, held by one control plane.
    wait_for_one_holder(box, CONTROL_PLANES)
    assert box.ssh("worker1", "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get --raw /readyz").stdout.strip() \
        == "ok"


def test_an_upgrade_of_three_control_planes_keeps_the_api_answering_through_the_vip(box: Sandbox) -> None:
    """upgrade.yml from 1.32 to 1.33 with calico: apply on cp1, node on cp2 and cp3 one at a time, then worker1;
    a client calling the API through the VIP all along sees it answer at the end (the longest time without an
    answer is printed: each API server restarts once, haproxy takes it out of the backends meanwhile)."""
    target = box.inventory.parent / "v1.33.yml"
    target.write_text(yaml.safe_dump(box.releases["1.33"]))
    prober = Prober(VIP, PORT, interval=0.5, timeout=2.0, limit=3600.0)
    prober.start()
    try:
        run = box.playbook("playbooks/upgrade.yml", "-e", f"@{target}", timeout=3600)
    finally:
        outage = prober.stop_when_steady(time.monotonic(), steady=3.0)
    print(f"API through the VIP during the upgrade: {outage.line()}; errors: {outage.errors}")
    assert outage.answered_after and outage.calls > 100, outage
    # kubeadm's order: apply on cp1, then node on cp2 and cp3 one at a time, then the worker.
    order = re.findall(r"TASK \[kube_upgrade : Upgrade \| kubeadm upgrade (apply|node)[^\n]*\n+changed: \[(\w+)\]",
                       run.stdout)
    assert order == [("apply", "cp1"), ("node", "cp2"), ("node", "cp3"), ("node", "worker1")], order
    nodes = kubectl_json(box, "get nodes")["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == dict.fromkeys(
        [*CONTROL_PLANES, "worker1"], "v1.33.1")
    pods = kubectl_json(box, "-n kube-system get pods -l tier=control-plane")["items"]
    running = sorted((p["spec"]["nodeName"], p["metadata"]["labels"]["component"], p["spec"]["containers"][0]["image"]
                      .rsplit(":", 1)[1]) for p in pods if p["metadata"]["labels"]["component"] != "etcd")
    assert running == sorted((cp, component, "v1.33.1") for cp in CONTROL_PLANES
                             for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"))
    # Everything through the VIP still, and the inventory says the version the cluster runs from here on.
    assert holders(box, CONTROL_PLANES) and box.ssh(
        "worker1", "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get --raw /readyz").stdout.strip() == "ok"
    again = box.playbook("playbooks/upgrade.yml", "-e", f"@{target}")
    assert all(c["changed"] == 0 for c in recap(again.stdout).values()), task_results(again.stdout)


def test_vrrp2_configurations_move_to_unicast_vrrp3_in_one_run(box: Sandbox) -> None:
    """Control planes on VRRPv2 configurations (as api_endpoint.yml wrote them before VRRPv3: no vrrp_version,
    advert_int 1) all get the VRRPv3 one in the same run, reloaded; the API answers through the VIP meanwhile,
    and one node holds it afterwards. Unicast adverts are switched on in the same run. A run limited to one control
    plane is refused while the others speak VRRPv2."""
    holder = wait_for_one_holder(box, CONTROL_PLANES)
    for cp in CONTROL_PLANES:
        box.ssh(cp, f"sed -i -e '/^ *vrrp_version 3$/d' -e 's/^\\( *advert_int\\) .*/\\1 1/' {KEEPALIVED_CONF} "
                    "&& systemctl reload keepalived")
    time.sleep(5)
    holder = wait_for_one_holder(box, CONTROL_PLANES)
    backup = next(cp for cp in CONTROL_PLANES if cp != holder)
    assert_adverts(box, holder, backup, version=2, centiseconds=100, unicast=False)
    # One control plane alone (--limit) would speak VRRPv3 to VRRPv2 peers: refused, nothing changed.
    refused = box.playbook("playbooks/api_endpoint.yml", "--limit", "cp2", check=False)
    assert refused.returncode != 0
    assert ("cp1: keepalived there has advert_int 1 but this run writes advert_int 0.50, vrrp_version 3 "
            "(kube_control_plane_vip_advert_interval)") in " ".join(refused.stdout.split()), refused.stdout[-3000:]
    assert box.ssh("cp2", f"grep -c vrrp_version {KEEPALIVED_CONF}", check=False).stdout.strip() == "0"

    write_vars(box, kube_control_plane_vip_unicast=True)
    prober = Prober(VIP, PORT, interval=0.2, timeout=1.0, limit=600.0)
    prober.start()
    started = time.monotonic()
    run = box.playbook("playbooks/api_endpoint.yml")
    outage = prober.stop_when_steady(started, steady=5.0)
    print(f"VRRPv2 multicast to VRRPv3 unicast in one run: {outage.line()}; errors: {outage.errors}")
    assert outage.answered_after, outage
    counts = recap(run.stdout)
    assert all(counts[cp]["changed"] > 0 for cp in CONTROL_PLANES), counts
    reloaded = task_results(run.stdout, ("changed",))
    assert "Keepalived | Reload keepalived" in reloaded, reloaded
    for cp in CONTROL_PLANES:
        config = box.ssh(cp, f"cat {KEEPALIVED_CONF}").stdout
        assert re.search(r"^ +vrrp_version 3$", config, re.M) and "advert_int 0.50" in config, (cp, config)
        peers = re.search(r"unicast_peer \{([^}]*)\}", config)
        assert peers and sorted(peers[1].split()) == sorted(
            box.nodes[other]["address"] for other in CONTROL_PLANES if other != cp), (cp, config)
    holder = wait_for_one_holder(box, CONTROL_PLANES)
    time.sleep(3)
    assert holders(box, CONTROL_PLANES) == [holder]
    for backup in CONTROL_PLANES:
        if backup != holder:
            assert_adverts(box, holder, backup, version=3, centiseconds=50, unicast=True)


def take_the_vip_away(box: Sandbox, how: str) -> None:
    holder = wait_for_one_holder(box, CONTROL_PLANES)
    prober = Prober(VIP, PORT, interval=0.2, timeout=1.0, limit=120.0)
    prober.start()
    time.sleep(2)
    taken = time.monotonic()
    if how == "api-server-fails":
        box.ssh(holder, "mkdir -p /etc/kubeboot-standin/faults && echo 20 >/etc/kubeboot-standin/faults/apiserver-down")
    else:  # at once, as a power cut: no service is stopped, keepalived sends no goodbye
        box.ssh(holder, "systemctl poweroff --force --force", check=False)
    # Summed up once the VIP is on another node and every call has answered for 5 s since then (an action that
    # takes effect late on a loaded machine must not end the count before its outage).
    others = [cp for cp in CONTROL_PLANES if cp != holder]
    new = wait_for_one_holder(box, others)
    outage = prober.stop_when_steady(time.monotonic(), steady=5.0)
    print(f"failover ({how}, from {holder} to {new}, {time.monotonic() - taken:.1f} s): {outage.line()}; "
          f"errors: {outage.errors}")
    assert outage.answered_after, outage
    assert outage.calls > 10, outage
    assert holders(box, others if how == "power-off" else CONTROL_PLANES) == [new]


def test_failover_when_the_holder_api_server_fails(box: Sandbox) -> None:
    take_the_vip_away(box, "api-server-fails")


def test_failover_when_the_holder_is_powered_off(box: Sandbox) -> None:
    take_the_vip_away(box, "power-off")
