"""The CRI client (cri.py), the pause image and crictl's pod commands against a real containerd 1.6 + runc with
Debian's CNI plugins (bridge + host-local), on one sandbox node. Needs root and `kubeboot sandbox`."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import build_repo
import pytest
import yaml

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NAME = "pytestcri"
SUBNET = "10.213.44.0/24"
POD_SUBNET = "10.244.44.0/24"
DOWNLOADS = Path(os.environ.get("KUBEBOOT_STANDIN_CACHE", "/var/cache/kubeboot/standin-build")) / "downloads"
KUBELET = f"/root/{NAME}-kubelet.pyz"
KUBEADM = f"/root/{NAME}-kubeadm.pyz"

CONTAINERD_CONFIG = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
"""

CONFLIST = {
    "cniVersion": "0.4.0",
    "name": "pytestcri",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}

# Runs on the node from the kubelet zipapp (where the pause image is package data).
CLIENT = f"""
import json, sys
sys.path.insert(0, {KUBELET!r})
from kubeboot_standin import cri

out = {{}}
ref = cri.sandbox_image()
out["sandbox_image"] = ref
out["imported"] = cri.ensure_pause_image(ref)
out["imported_again"] = cri.ensure_pause_image(ref)
rt = cri.Runtime()
out["version"] = rt.version()
out["status"] = rt.status()
out["image"] = rt.image_status(ref)
out["absent_image"] = rt.image_status("registry.k8s.io/absent:none")
labels = {{"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": "u-1"}}
pod = cri.SandboxConfig(name="web", uid="u-1", namespace="default", hostname="web",
                        log_directory="/var/log/pods/default_web_u-1", labels=labels,
                        annotations={{"kubeboot.invalid/test": "yes"}},
                        cgroup_parent="kubepods-besteffort-podu_1.slice", dns_servers=["10.96.0.10"],
                        dns_searches=["default.svc.cluster.local"], dns_options=["ndots:5"])
sid = rt.run_pod_sandbox(pod)
out["sandbox_id"] = sid
out["sandbox"] = rt.pod_sandbox_status(sid, verbose=True)
ctr = cri.ContainerConfig(name="sleeper", image=ref, labels={{**labels, "io.kubernetes.container.name": "sleeper"}},
                          log_path="sleeper/0.log", env={{"A": "1"}})
cid = rt.create_container(sid, ctr, pod)
rt.start_container(cid)
out["container_id"] = cid
out["container"] = rt.container_status(cid)
out["containers"] = rt.list_containers(sid)
out["pods"] = rt.list_pod_sandboxes()
try:
    rt.pod_sandbox_status("0000000000000000000000000000000000000000000000000000000000000000")
except cri.CriError as exc:
    out["missing"] = [exc.code, str(exc)]
rt.close()
print(json.dumps(out))
"""


def ssh(box: Any, node: str, command: str) -> str:
    return str(box.ssh(node, command).stdout)


@pytest.fixture(scope="module")
def node(sandbox_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    web = build_repo.ensure_built(tmp_path_factory.mktemp("cri-web"), downloads=DOWNLOADS)
    box = sandbox_factory(NAME, "--nodes", "1", "--subnet", SUBNET, "--serve", str(web))
    name = next(iter(box.nodes))
    url = yaml.safe_load(box.inventory.read_text())["all"]["vars"]["kubeboot_sandbox_serve_url"]
    info = build_repo.describe(web)
    ssh(box, name, f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq containerd containernetworking-plugins curl \\
    python3-grpcio python3-yaml python3-cryptography >/dev/null
mkdir -p /opt/cni /etc/cni/net.d /etc/containerd
[ -e /opt/cni/bin ] || ln -s /usr/lib/cni /opt/cni/bin
cat > /etc/containerd/config.toml <<'EOF'
{CONTAINERD_CONFIG}EOF
cat > /etc/cni/net.d/10-pytestcri.conflist <<'EOF'
{json.dumps(CONFLIST, indent=1)}
EOF
systemctl restart containerd
curl -fsS -o {KUBELET} {url}/{info['release']}/kubelet
curl -fsS -o {KUBEADM} {url}/{info['release']}/kubeadm
curl -fsS {url}/{info['crictl_tarball']} | tar -xz -C /usr/local/bin crictl
for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
""")
    return box, name


def test_pod_sandbox_and_container_from_the_pause_image(node: tuple[Any, str]) -> None:
    box, name = node
    out = json.loads(ssh(box, name, f"python3 - <<'EOF'\n{CLIENT}EOF"))
    assert out["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert (out["imported"], out["imported_again"]) == (True, False)
    assert out["version"]["runtime_name"] == "containerd" and out["version"]["runtime_api_version"] == "v1"
    conditions = {c["type"]: c["status"] for c in out["status"]["conditions"]}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert "registry.k8s.io/pause:3.10" in out["image"]["repo_tags"] and out["absent_image"] is None

    sandbox = out["sandbox"]
    assert sandbox["state"] == "SANDBOX_READY"
    assert sandbox["metadata"] == {"name": "web", "uid": "u-1", "namespace": "default", "attempt": 0}
    assert sandbox["annotations"]["kubeboot.invalid/test"] == "yes"
    assert ipaddress.ip_address(sandbox["network"]["ip"]) in ipaddress.ip_network(POD_SUBNET)
    spec = sandbox["info"]["info"]["runtimeSpec"]
    netns = next(ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network")
    assert Path(netns).name in ssh(box, name, "ip netns list")
    assert out["container"]["state"] == "CONTAINER_RUNNING"
    assert [c["id"] for c in out["containers"]] == [out["container_id"]]
    assert out["missing"][0] == "NotFound" and out["missing"][1].startswith("rpc error: code = NotFound desc = ")

    sid, cid = out["sandbox_id"], out["container_id"]
    pods = ssh(box, name, "crictl pods")
    assert pods.splitlines()[0].split() == ["POD", "ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT",
                                            "RUNTIME"]
    assert pods.splitlines()[1].split()[:1] == [sid[:13]]
    assert "Ready" in pods.splitlines()[1].split() and " web " in pods
    assert ssh(box, name, "crictl pods -q").split() == [sid]
    assert ssh(box, name, "crictl pods --state notready -q").split() == []
    ps = ssh(box, name, "crictl ps")
    assert cid[:13] in ps and "Running" in ps and "sleeper" in ps
    assert ssh(box, name, f"crictl ps -q --pod {sid[:8]}").split() == [cid]
    inspect = json.loads(ssh(box, name, f"crictl inspectp {sid}"))
    assert inspect["status"]["network"]["ip"] == sandbox["network"]["ip"]
    assert inspect["info"]["pid"] > 0

    assert ssh(box, name, f"crictl stop {cid}").split() == [cid]
    assert ssh(box, name, "crictl ps -q").split() == []
    assert ssh(box, name, f"crictl rm {cid}").split() == [cid]
    assert ssh(box, name, f"crictl stopp {sid}").strip() == f"Stopped sandbox {sid}"
    assert ssh(box, name, f"crictl rmp {sid}").strip() == f"Removed sandbox {sid}"
    assert ssh(box, name, "crictl pods -q").split() == []
    assert ssh(box, name, "crictl ps -a -q").split() == []
    assert Path(netns).name not in ssh(box, name, "ip netns list")


def test_kubeadm_reset_removes_every_pod(node: tuple[Any, str]) -> None:
    box, name = node
    script = f"""
import sys
sys.path.insert(0, {KUBELET!r})
from kubeboot_standin import cri
rt = cri.Runtime()
ref = cri.sandbox_image()
cri.ensure_pause_image(ref)
for n in ("a", "b"):
    # With SystemdCgroup = true the parent must be a slice (containerd 1.6 makes "/k8s.io/<id>" of an empty one,
    # which runc refuses); the kubelet always gives one.
    pod = cri.SandboxConfig(name=n, uid="uid-" + n, namespace="kube-system", hostname=n,
                            cgroup_parent=f"kubepods-besteffort-pod{{n}}.slice")
    sid = rt.run_pod_sandbox(pod)
    rt.start_container(rt.create_container(sid, cri.ContainerConfig(name="c", image=ref), pod))
print(len(rt.list_pod_sandboxes()), len(rt.list_containers()))
"""
    assert ssh(box, name, f"python3 - <<'EOF'\n{script}EOF").split() == ["2", "2"]
    reset = box.ssh(name, f"python3 {KUBEADM} reset -f")
    assert "[reset] Stopping the kubelet service" in reset.stdout
    assert "Failed to remove containers" not in reset.stderr, reset.stderr
    assert ssh(box, name, "crictl pods -q").split() == []
    assert ssh(box, name, "crictl ps -a -q").split() == []
