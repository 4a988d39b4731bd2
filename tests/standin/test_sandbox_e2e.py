"""End to end on sandbox nodes: plain apt install from the served repo, kubeadm init, two joins, a CNI
manifest, three Ready nodes. Needs root and `kubeboot sandbox` (systemd-nspawn); skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HERE

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NAME = "standine2e"
REPO = "core:/stable:/v1.33/deb"
CACHE = Path(os.environ.get("KUBEBOOT_STANDIN_CACHE", "/var/cache/kubeboot/standin-build"))


def _kubeboot() -> list[str]:
    exe = shutil.which("kubeboot") or str(Path(sys.executable).with_name("kubeboot"))
    return [exe]


def sandbox_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "sandbox tests need root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not installed"
    if not Path(_kubeboot()[0]).exists():
        return "the kubeboot CLI is not installed in this environment"
    cp = subprocess.run([*_kubeboot(), "sandbox", "up", "--help"], capture_output=True, text=True, check=False)
    if cp.returncode != 0 or "--serve" not in cp.stdout:
        return "`kubeboot sandbox up --serve` is not available"
    return None


def ssh(node: str, script: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(
        [*_kubeboot(), "sandbox", "ssh", "--name", NAME, node, "--", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and cp.returncode != 0:
        raise AssertionError(f"{node}: {script}\n{cp.stdout}\n{cp.stderr}")
    return cp


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    reason = sandbox_unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("served") / "repo"
    subprocess.run(
        [sys.executable, str(HERE / "build_repo.py"), "--out", str(out), "--cache", str(CACHE)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    try:
        up = subprocess.run(
            [*_kubeboot(), "sandbox", "up", "--name", NAME, "--nodes", "3", "--serve", str(out), "--json"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        nodes = {n: v["address"] for n, v in info["nodes"].items()}
        yield nodes
    finally:
        subprocess.run([*_kubeboot(), "sandbox", "down", "--name", NAME], capture_output=True, timeout=300, check=False)


def install(node: str, gateway: str) -> None:
    url = f"http://{gateway}:8088/{REPO}/"
    ssh(
        node,
        f"""set -e
sysctl -w net.ipv4.ip_forward=1 >/dev/null
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq apt-transport-https ca-certificates curl gpg containerd >/dev/null
# containerd as kubeadm's guide configures it (the systemd cgroup driver), plus what runc needs on this host: no
# process here may lower an OOM score.
mkdir -p /etc/containerd
containerd config default | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
  -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' > /etc/containerd/config.toml
systemctl restart containerd
mkdir -p -m 755 /etc/apt/keyrings
curl -fsSL '{url}Release.key' | gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {url} /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
""",
    )


def test_three_ready_nodes_from_plain_apt_kubeadm_and_a_cni_manifest(sandbox: dict[str, str]) -> None:
    names = sorted(sandbox)
    first = names[0]
    gateway = sandbox[first].rsplit(".", 1)[0] + ".1"
    for n in names:
        install(n, gateway)
    init = ssh(first, "kubeadm init --pod-network-cidr=10.244.0.0/16", timeout=600)
    assert "Your Kubernetes control-plane has initialized successfully!" in init.stdout
    join = ssh(first, "kubeadm token create --print-join-command").stdout.strip()
    for n in names[1:]:
        out = ssh(n, join, timeout=600)
        assert "This node has joined the cluster" in out.stdout
    kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
    manifest = (HERE / "manifests/kube-flannel-min.yaml").read_text()
    ssh(first, f"cat > /root/kube-flannel.yml <<'EOF'\n{manifest}EOF\n{kubectl} apply -f /root/kube-flannel.yml")
    deadline = time.monotonic() + 120
    status = ""
    while time.monotonic() < deadline:
        status = ssh(first, f"{kubectl} get nodes --no-headers", check=False).stdout
        if status.count(" Ready ") == 3:
            break
        time.sleep(3)
    assert status.count(" Ready ") == 3, status
    ssh(first, f"{kubectl} wait --for=condition=Ready nodes --all --timeout=60s")
    # a pod on each node: the bridge plugin gives it an address of the node's range, on cni0
    image = ssh(first, "sed -n 's/^ *sandbox_image = \"\\(.*\\)\"/\\1/p' /etc/containerd/config.toml").stdout.strip()
    pods = "\n---\n".join(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: e2e-{n}\nspec:\n  nodeName: {n}\n"
                          f"  containers:\n  - name: pause\n    image: {image}\n" for n in names)
    ssh(first, f"cat > /root/pods.yml <<'EOF'\n{pods}\nEOF\n{kubectl} apply -f /root/pods.yml")
    ssh(first, f"{kubectl} wait --for=condition=Ready pods --all --timeout=120s")
    for n in names:
        assert ssh(n, "ip -4 -o addr show dev cni0").stdout.count(" inet 10.244.") == 1
        assert "vxlan" in ssh(n, "ip -d link show flannel.1").stdout
