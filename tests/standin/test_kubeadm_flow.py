"""kubeadm init / join / token / reset against the stand-in, with "nodes" as temp roots on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import HERE, KUBECTL, free_port
from cryptography import x509
from kubeboot_standin import certs
from nodesim import Node

FLANNEL = HERE / "manifests/kube-flannel-min.yaml"


def init_config(port: int) -> str:
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: {port}}}
nodeRegistration:
  name: cp1
  kubeletExtraArgs: [{{name: node-ip, value: 127.0.0.1}}]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking: {{podSubnet: 10.244.0.0/16}}
apiServer:
  extraArgs: [{{name: bind-address, value: 127.0.0.1}}]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
nodeStatusUpdateFrequency: 1s
"""


@dataclass
class Env:
    base: Path
    port: int
    cp: Node
    w1: Node
    token: str
    ca_hash: str
    init_out: str
    nodes: list[Node]

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.cp.root / "etc/kubernetes/admin.conf"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and cp.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {cp.stderr}")
        return cp

    def node(self, name: str, prepare: Callable[[Node], None] | None = None) -> Node:
        n = Node(self.base, name)
        if prepare is not None:
            prepare(n)
        n.start_kubelet_service()
        self.nodes.append(n)
        return n

    def join(
        self, n: Node, *extra: str, token: str | None = None, ca_hash: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return n.kubeadm(
            "join",
            f"127.0.0.1:{self.port}",
            "--token",
            token or self.token,
            "--discovery-token-ca-cert-hash",
            ca_hash or self.ca_hash,
            "--node-name",
            n.name,
            *extra,
        )


def cluster_base(factory: pytest.TempPathFactory, name: str) -> tuple[Path, int]:
    """A module's directory of node roots and the API server's port (skipping without the real kubectl)."""
    if not KUBECTL.exists():
        pytest.skip(f"the real kubectl 1.33 is not installed at {KUBECTL}")
    return factory.mktemp(name), free_port()


def start_cluster(
    factory: pytest.TempPathFactory, name: str, nodes: list[Node], prepare: Callable[[Node], None] | None = None
) -> Env:
    """cp1 made by `kubeadm init` and w1 joined to it; prepare(node) runs before each node's kubelet starts."""
    base, port = cluster_base(factory, name)
    cp = Node(base, "cp1")
    if prepare is not None:
        prepare(cp)
    nodes.append(cp)
    cp.start_kubelet_service()
    cfg = base / "init.yaml"
    cfg.write_text(init_config(port))
    out = cp.kubeadm("init", "--config", str(cfg), "--upload-certs")
    assert out.returncode == 0, out.stderr + cp.kubelet_log()
    token = re.search(r"--token (\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    ca_hash = re.search(r"--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})", out.stdout).group(1)  # type: ignore[union-attr]
    e = Env(base, port, cp, cp, token, ca_hash, out.stdout, nodes)
    e.w1 = e.node("w1", prepare)
    joined = e.join(e.w1)
    assert joined.returncode == 0, joined.stderr + e.w1.kubelet_log()
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    nodes: list[Node] = []
    try:
        yield start_cluster(tmp_path_factory, "standin-cluster", nodes)
    finally:
        for n in nodes:
            n.stop()


def wait(cond, timeout: float = 30):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def test_init_writes_what_kubeadm_writes(env: Env) -> None:
    root = env.cp.root
    ca = x509.load_pem_x509_certificate((root / "etc/kubernetes/pki/ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certs.ca_cert_hash(ca) == env.ca_hash
    for f in (
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "manifests/kube-apiserver.yaml",
        "manifests/etcd.yaml",
        "pki/sa.key",
        "pki/etcd/ca.crt",
    ):
        assert (root / "etc/kubernetes" / f).exists(), f
    admin = certs.read_kubeconfig(root / "etc/kubernetes/admin.conf")
    assert certs.subject_user(x509.load_pem_x509_certificate(admin["cert_pem"])) == (
        "kubernetes-admin",
        ["kubeadm:cluster-admins"],
    )
    sup = certs.read_kubeconfig(root / "etc/kubernetes/super-admin.conf")
    assert certs.subject_user(x509.load_pem_x509_certificate(sup["cert_pem"]))[1] == ["system:masters"]
    assert (root / "etc/kubernetes/admin.conf").stat().st_mode & 0o777 == 0o600
    assert "containerd.sock" in (root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert "staticPodPath: /etc/kubernetes/manifests" in (root / "var/lib/kubelet/config.yaml").read_text()
    assert "[upload-certs] Using certificate key:" in env.init_out


def test_nodes_registered_marked_and_given_pod_cidrs(env: Env) -> None:
    nodes = wait(
        lambda: (
            [
                n
                for n in json.loads(env.kubectl("get", "nodes", "-o", "json").stdout)["items"]
                if n["metadata"]["name"] in ("cp1", "w1")
            ]
            if True
            else None
        )
    )
    by = {n["metadata"]["name"]: n for n in nodes}
    assert set(by) == {"cp1", "w1"}
    assert "node-role.kubernetes.io/control-plane" in by["cp1"]["metadata"]["labels"]
    assert by["cp1"]["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert "taints" not in by["w1"]["spec"]
    cidrs = {by[n]["spec"]["podCIDR"] for n in by}
    assert len(cidrs) == 2
    assert all(re.fullmatch(r"10\.244\.\d+\.0/24", c) for c in cidrs)


def test_bootstrap_tokens_are_secrets_in_kube_system(env: Env) -> None:
    tid = env.token.split(".")[0]
    s = json.loads(env.kubectl("get", "secret", "-n", "kube-system", f"bootstrap-token-{tid}", "-o", "json").stdout)
    assert s["type"] == "bootstrap.kubernetes.io/token"
    assert {"token-id", "token-secret", "expiration", "usage-bootstrap-authentication"} <= set(s["data"])


def test_token_create_list_and_print_join_command(env: Env) -> None:
    out = env.cp.kubeadm("token", "create", "--print-join-command", "--ttl", "1h", "--description", "extra")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(
        rf"kubeadm join 127\.0\.0\.1:{env.port} --token ([a-z0-9]{{6}}\.[a-z0-9]{{16}}) "
        rf"--discovery-token-ca-cert-hash {env.ca_hash} \n",
        out.stdout,
    )
    assert m, out.stdout
    listing = env.cp.kubeadm("token", "list").stdout
    assert m.group(1) in listing
    assert "extra" in listing


def test_join_with_wrong_ca_hash_fails_with_kubeadm_wording(env: Env) -> None:
    n = env.node("bad1")
    out = env.join(n, ca_hash="sha256:" + "0" * 64)
    assert out.returncode == 1
    assert (
        "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is "
        f'invalid: none of the public keys "{env.ca_hash}" are pinned'
    ) in out.stderr
    assert not (n.root / "etc/kubernetes/kubelet.conf").exists()


def test_join_with_unknown_or_expired_token_fails(env: Env) -> None:
    n = env.node("bad2")
    out = env.join(n, token="zzzzzz.0123456789abcdef")
    assert out.returncode == 1
    assert 'token id "zzzzzz" is invalid for this cluster or it has expired' in out.stderr
    short = env.cp.kubeadm("token", "create", "--ttl", "2s").stdout.strip()
    time.sleep(5)  # expired: the token cleaner deletes it and the signature disappears from cluster-info
    out = env.join(n, token=short)
    assert out.returncode == 1
    assert f'token id "{short[:6]}" is invalid for this cluster or it has expired' in out.stderr


def test_preflight_errors_and_ignores(env: Env) -> None:
    n = env.node("pre1")
    (n.root / "proc/sys/net/ipv4/ip_forward").write_text("0\n")
    (n.root / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n/swap file 1 0 -2\n")
    assert n.containerd is not None
    n.containerd.stop()
    n.containerd = None
    out = env.join(n)
    assert out.returncode == 1
    assert (
        "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"
        in out.stderr
    )
    assert "[ERROR CRI]: container runtime is not running" in out.stderr
    assert "[WARNING Swap]: swap is supported for cgroup v2 only" in out.stderr
    out = env.join(
        n, "--ignore-preflight-errors=CRI,FileContent--proc-sys-net-ipv4-ip_forward", ca_hash="sha256:" + "1" * 64
    )
    assert "[ERROR" not in out.stderr
    assert "[WARNING CRI]" in out.stderr
    assert "none of the public keys" in out.stderr


def test_unknown_config_field_warns_like_kubeadm_and_wrong_type_fails(env: Env, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(init_config(1).replace("networking: {podSubnet", "networking: {podSubnett"))
    out = env.cp.kubeadm("config", "validate", "--config", str(cfg))
    assert out.returncode == 1
    assert 'strict decoding error: unknown field "networking.podSubnett"' in out.stderr
    cfg.write_text(init_config(1).replace("bindPort: 1", 'bindPort: "1"'))
    n = env.node("cfg1")
    out = n.kubeadm("init", "--config", str(cfg))
    assert out.returncode == 1
    assert (
        "cannot unmarshal string into Go struct field InitConfiguration.localAPIEndpoint.bindPort of type int32"
        in out.stderr
    )
    assert not (n.root / "etc/kubernetes/pki").exists()


def test_control_plane_join_with_wrong_certificate_key_fails(env: Env) -> None:
    n = env.node("cp2")
    out = env.join(n, "--control-plane", "--certificate-key", "00" * 32)
    assert out.returncode == 1
    assert "error decoding secret data with provided key: cipher: message authentication failed" in out.stderr


def test_fault_injection_fails_the_named_phase(env: Env) -> None:
    n = env.node("fault1")
    marker = n.root / "etc/kubeboot-standin/faults/join"
    marker.parent.mkdir(parents=True)
    marker.write_text("kubelet-start\n")
    out = env.join(n)
    assert out.returncode == 1
    assert "error execution phase kubelet-start: fault injected by marker" in out.stderr
    assert not marker.exists()


def test_apiserver_outage_fault(env: Env) -> None:
    marker = env.cp.root / "etc/kubeboot-standin/faults/apiserver-down"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("4\n")
    wait(lambda: env.kubectl("get", "--raw", "/livez", check=False).returncode != 0, 10)
    assert "was refused" in env.kubectl("get", "nodes", check=False).stderr
    wait(lambda: env.kubectl("get", "--raw", "/livez", check=False).returncode == 0, 20)


def test_ready_only_with_cni_then_flannel_writes_config_and_links(env: Env) -> None:
    def ready() -> dict[str, str]:
        items = json.loads(env.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return {
            n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
            for n in items
            if n["metadata"]["name"] in ("cp1", "w1")
        }

    assert ready() == {"cp1": "False", "w1": "False"}
    env.kubectl("apply", "-f", str(FLANNEL))
    wait(lambda: ready() == {"cp1": "True", "w1": "True"}, 90)
    for n in (env.cp, env.w1):
        conf = json.loads((n.root / "etc/cni/net.d/10-flannel.conflist").read_text())
        assert conf["plugins"][0]["type"] == "flannel"
        cidr = env.kubectl("get", "node", n.name, "-o", "jsonpath={.spec.podCIDR}").stdout
        gw = cidr.replace(".0/24", ".1/24")
        assert f"FLANNEL_SUBNET={gw}" in (n.root / "run/flannel/subnet.env").read_text()
        links = json.loads((n.root / "run/kubeboot-standin/links.json").read_text())
        assert links["flannel.1"]["kind"] == "vxlan" and "cni0" not in links  # cni0: the bridge plugin's, per pod
        assert (n.root / "opt/cni/bin/flannel").exists()
    # the DaemonSet controller gave every node a flannel pod
    pods = json.loads(env.kubectl("-n", "kube-flannel", "get", "pods", "-o", "json").stdout)["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["cp1", "w1"]


def test_reset_removes_what_real_reset_removes(env: Env) -> None:
    n = env.w1
    kube = n.root / "root/.kube"
    kube.mkdir(parents=True, exist_ok=True)
    (kube / "config").write_text("x")
    out = n.kubeadm("reset", "-f")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(
        "\nThe reset process does not perform cleanup of CNI plugin configuration,\n"
        "network filtering rules and kubeconfig files.\n\n"
        "For information on how to perform this cleanup manually, please see:\n"
        "    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n\n"
    )
    assert (
        "[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]"
        in (out.stdout)
    )
    assert "[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf" in out.stdout
    root = n.root
    assert not (root / "etc/kubernetes/kubelet.conf").exists()
    assert list((root / "etc/kubernetes/pki").iterdir()) == []
    assert list((root / "var/lib/kubelet").iterdir()) == []
    assert (root / "etc/cni/net.d/10-flannel.conflist").exists()
    assert (root / "run/kubeboot-standin/links.json").exists()
    assert (kube / "config").exists()


def test_init_phase_upload_certs_and_certificate_key(env: Env) -> None:
    key = env.cp.kubeadm("certs", "certificate-key").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    out = env.cp.kubeadm(
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--config",
        str(env.base / "init.yaml"),
        "--certificate-key",
        key,
    )
    assert out.returncode == 0, out.stderr
    assert f"[upload-certs] Using certificate key:\n{key}\n" in out.stdout
    secret = json.loads(env.kubectl("get", "secret", "-n", "kube-system", "kubeadm-certs", "-o", "json").stdout)
    assert {"ca.crt", "ca.key", "sa.key", "etcd-ca.crt", "front-proxy-ca.key"} <= set(secret["data"])
