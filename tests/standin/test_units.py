"""Fast checks of single stand-in behaviours: image list, preflight ignores, kubelet readiness, CNI agents."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import NODE_PYTHON, standin_env
from kubeboot_standin import cni, cniplugin, config, kubelet
from kubeboot_standin.client import ApiError
from kubeboot_standin.kubeadm.preflight import validate_ignore

REAL_1_33 = [
    "registry.k8s.io/kube-apiserver:v1.33.1",
    "registry.k8s.io/kube-controller-manager:v1.33.1",
    "registry.k8s.io/kube-scheduler:v1.33.1",
    "registry.k8s.io/kube-proxy:v1.33.1",
    "registry.k8s.io/coredns/coredns:v1.12.0",
    "registry.k8s.io/pause:3.10",
    "registry.k8s.io/etcd:3.5.21-0",
]


def kubeadm(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NODE_PYTHON, "-m", "kubeboot_standin.kubeadm.cli", *args],
        env=standin_env(root),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_images_list_defaults_are_kubeadm_1_33s(tmp_path: Path) -> None:
    out = kubeadm(tmp_path, "config", "images", "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == REAL_1_33
    js = json.loads(kubeadm(tmp_path, "config", "images", "list", "-o", "json").stdout)
    assert js == {"kind": "Images", "apiVersion": "output.kubeadm.k8s.io/v1alpha3", "images": REAL_1_33}


def test_images_list_flags_without_config(tmp_path: Path) -> None:
    out = kubeadm(
        tmp_path, "config", "images", "list", "--kubernetes-version", "1.33.0", "--image-repository", "reg.local/k8s"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "reg.local/k8s/kube-apiserver:v1.33.0",
        "reg.local/k8s/kube-controller-manager:v1.33.0",
        "reg.local/k8s/kube-scheduler:v1.33.0",
        "reg.local/k8s/kube-proxy:v1.33.0",
        "reg.local/k8s/coredns:v1.12.0",  # no coredns/ path outside registry.k8s.io, as kubeadm's GetDNSImage
        "reg.local/k8s/pause:3.10",
        "reg.local/k8s/etcd:3.5.21-0",
    ]


def test_images_list_from_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.33.0\n"
        "imageRepository: mirror.example:5000\nunknownThing: 1\n"
        "dns: {imageTag: v1.11.9}\netcd: {local: {imageRepository: quay.example/etcd-io}}\n"
    )
    out = kubeadm(tmp_path, "config", "images", "list", "--config", str(cfg), "--kubernetes-version", "v1.32.9")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "mirror.example:5000/kube-apiserver:v1.33.0",
        "mirror.example:5000/kube-controller-manager:v1.33.0",
        "mirror.example:5000/kube-scheduler:v1.33.0",
        "mirror.example:5000/kube-proxy:v1.33.0",
        "mirror.example:5000/coredns:v1.11.9",
        "mirror.example:5000/pause:3.10",
        "quay.example/etcd-io/etcd:3.5.21-0",
    ]
    # not strict here (unlike `config validate`): a klog warning on stderr, as kubeadm's LoadInitConfiguration
    assert 'strict decoding error: unknown field "unknownThing"' in out.stderr
    assert out.stderr.startswith("W")


def test_images_list_skips_disabled_addons_and_external_etcd(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nproxy: {disabled: true}\n"
        "dns: {disabled: true}\netcd: {external: {endpoints: ['https://10.0.0.9:2379']}}\n"
    )
    out = kubeadm(tmp_path, "config", "images", "list", "--config", str(cfg))
    assert out.stdout.splitlines() == [REAL_1_33[0], REAL_1_33[1], REAL_1_33[2], REAL_1_33[5]]


def test_too_old_control_plane_version_is_refused(tmp_path: Path) -> None:
    out = kubeadm(tmp_path, "config", "images", "list", "--kubernetes-version", "v1.31.4")
    assert out.returncode == 1
    assert (
        "this version of kubeadm only supports deploying clusters with the control plane version >= 1.32.0. "
        "Current version: v1.31.4"
    ) in out.stderr
    assert config.normalize_version("stable-1.33", "v1.33.1") == "v1.33.1"
    assert config.normalize_version("1.32.2", "v1.33.1") == "v1.32.2"


def test_config_mixed_with_flags_is_refused_like_kubeadm(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n")
    out = kubeadm(tmp_path, "init", "--config", str(cfg), "--pod-network-cidr", "10.244.0.0/16")
    assert out.returncode == 1
    assert "can not mix '--config' with arguments [pod-network-cidr]" in out.stderr
    assert not (tmp_path / "etc/kubernetes/pki").exists()


def test_ignore_preflight_errors_validation() -> None:
    assert validate_ignore(["Swap", "CRI"], ["Port-6443"]) == ["cri", "port-6443", "swap"]
    assert validate_ignore(["all"], []) == ["all"]
    with pytest.raises(config.ConfigError, match="don't specify individual checks if 'all' is used"):
        validate_ignore(["all", "Swap"], [])
    with pytest.raises(config.ConfigError, match="'all' cannot be used in configuration file"):
        validate_ignore([], ["all"])


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEBOOT_STANDIN_ROOT", str(tmp_path))
    return tmp_path


def test_kubelet_ready_needs_cni_config_and_containerd(root: Path) -> None:
    cri = "unix:///var/run/containerd/containerd.sock"
    net_d = root / "etc/cni/net.d"
    net_d.mkdir(parents=True)
    (net_d / "10-flannel.conflist").write_text("{}")
    assert kubelet.ready_condition(cri)[:2] == ("False", "KubeletNotReady")  # CNI config but no containerd
    sock = root / "var/run/containerd/containerd.sock"
    sock.parent.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.listen(8)
    try:
        assert kubelet.ready_condition(cri) == ("True", "KubeletReady", "kubelet is posting ready status")
        (net_d / "10-flannel.conflist").unlink()
        status, _, msg = kubelet.ready_condition(cri)
        assert status == "False" and "cni plugin not initialized" in msg
    finally:
        s.close()
    os.unlink(sock)


class FakeApi:
    """Just enough of the client for the CNI agents: list with a name field selector, create, patch."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[str, Any]] = []

    def get(self, path: str) -> dict[str, Any]:
        u = urlparse(path)
        if u.path not in self.objects:
            raise ApiError(404, {"message": "the server could not find the requested resource"})
        items = self.objects[u.path]
        sel = parse_qs(u.query).get("fieldSelector", [""])[0]
        if sel.startswith("metadata.name="):
            items = [i for i in items if i["metadata"]["name"] == sel.split("=", 1)[1]]
        return {"items": items}

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj

    def patch(self, path: str, patch: Any, kind: str = "strategic") -> None:
        self.patches.append((path, patch))


def node(name: str, cidr: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {}}


def flannel_objects(iface: str | None = None, network: str = "10.244.0.0/16") -> dict[str, list[dict[str, Any]]]:
    args = ["--ip-masq", "--kube-subnet-mgr", *([f"--iface={iface}"] if iface else [])]
    ds = {
        "metadata": {"name": "kube-flannel-ds"},
        "spec": {"template": {"spec": {"containers": [{"name": "kube-flannel", "args": args}]}}},
    }
    cm = {
        "metadata": {"name": "kube-flannel-cfg"},
        "data": {
            "net-conf.json": json.dumps({"Network": network, "Backend": {"Type": "vxlan"}}),
            "cni-conf.json": json.dumps({"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}]}),
        },
    }
    return {"/apis/apps/v1/daemonsets": [ds], "/api/v1/configmaps": [cm]}


def links(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "run/kubeboot-standin/links.json").read_text()))


@pytest.fixture
def bridge_nf(root: Path) -> None:
    f = root / "proc/sys/net/bridge/bridge-nf-call-iptables"
    f.parent.mkdir(parents=True)
    f.write_text("1\n")


@pytest.mark.usefixtures("bridge_nf")
def test_flannel_uses_node_pod_cidr_and_configured_iface(root: Path) -> None:
    api = FakeApi(flannel_objects(iface="eth1", network="10.50.0.0/16"))
    cni.Agent("n1").sync(api, node("n1", "10.50.3.0/24"))
    ls = links(root)
    assert "cni0" not in ls  # the bridge plugin makes it, for the first pod
    assert ls["flannel.1"]["kind"] == "vxlan" and ls["flannel.1"]["dev"] == "eth1"
    assert ls["flannel.1"]["addresses"] == ["10.50.3.0/32"]
    assert (
        "FLANNEL_NETWORK=10.50.0.0/16\nFLANNEL_SUBNET=10.50.3.1/24\n" in (root / "run/flannel/subnet.env").read_text()
    )
    assert json.loads((root / "etc/cni/net.d/10-flannel.conflist").read_text())["plugins"][0]["type"] == "flannel"
    assert api.patches and api.patches[0][0] == "/api/v1/nodes/n1"
    annotations = api.patches[0][1]["metadata"]["annotations"]
    assert json.loads(annotations["flannel.alpha.coreos.com/backend-data"])["VtepMAC"] == cni.Links().mac("flannel.1")
    launcher = (root / "opt/cni/bin/flannel").read_text()
    assert launcher.startswith("#!/bin/sh") and "--standin-cni=flannel" in launcher


def cni_call(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str, command: str,
             conf: dict[str, Any], cni_path: Path) -> tuple[int, str]:
    monkeypatch.setenv("CNI_COMMAND", command)
    monkeypatch.setenv("CNI_CONTAINERID", "c0ffee")
    monkeypatch.setenv("CNI_PATH", str(cni_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(conf)))
    rc = cniplugin.main(kind)
    return rc, capsys.readouterr().out


def test_flannel_plugin_delegates_to_the_bridge_and_wraps_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """flannel's CNI plugin: the bridge delegate gets host-local IPAM over FLANNEL_SUBNET, the delegate's error comes
    back wrapped as flannel wraps it, and DEL hands the saved configuration back to the delegate."""
    bins = tmp_path / "bin"
    bins.mkdir()
    seen = tmp_path / "seen"
    (bins / "bridge").write_text(
        f"#!/bin/sh\ncat > {seen}.$CNI_COMMAND\n"
        '[ "$CNI_COMMAND" = DEL ] && exit 0\n'
        'echo \'{"code": 999, "msg": "failed to set bridge addr: \\"cni0\\" already has an IP address different '
        'from 10.60.1.1/24"}\'\nexit 1\n')
    (bins / "bridge").chmod(0o755)
    env = tmp_path / "subnet.env"
    env.write_text("FLANNEL_NETWORK=10.60.0.0/16\nFLANNEL_SUBNET=10.60.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    conf = {"cniVersion": "0.3.1", "name": "cbr0", "type": "flannel", "subnetFile": str(env),
            "dataDir": str(tmp_path / "data"), "delegate": {"hairpinMode": True, "isDefaultGateway": True}}
    rc, out = cni_call(monkeypatch, capsys, "flannel", "ADD", conf, bins)
    assert rc == 1
    assert json.loads(out)["msg"] == ('failed to delegate add: failed to set bridge addr: "cni0" already has an IP '
                                      "address different from 10.60.1.1/24")
    delegated = json.loads(Path(f"{seen}.ADD").read_text())
    assert delegated["type"] == "bridge" and delegated["mtu"] == 1450 and delegated["ipMasq"] is False
    assert delegated["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.60.1.0/24"}]], "routes": []}
    assert json.loads((tmp_path / "data/c0ffee").read_text()) == delegated
    rc, out = cni_call(monkeypatch, capsys, "flannel", "DEL", conf, bins)
    assert (rc, out) == (0, "")
    assert json.loads(Path(f"{seen}.DEL").read_text()) == delegated
    assert not (tmp_path / "data/c0ffee").exists()
    rc, out = cni_call(monkeypatch, capsys, "flannel", "DEL", conf, bins)  # DEL again: nothing left, still fine
    assert (rc, out) == (0, "")
    env.unlink()
    rc, out = cni_call(monkeypatch, capsys, "flannel", "ADD", conf, bins)
    assert rc == 1 and "failed to load flannel 'subnet.env' file" in json.loads(out)["msg"]


def test_flannel_without_br_netfilter_and_with_a_missing_iface(root: Path) -> None:
    api = FakeApi(flannel_objects())
    cni.Agent("n3").sync(api, node("n3", "10.244.2.0/24"))
    assert "br_netfilter" in api.created[0]["message"]
    assert not (root / "etc/cni/net.d").exists()
    (root / "proc/sys/net/bridge").mkdir(parents=True)
    (root / "proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1\n")
    (root / "run/kubeboot-standin").mkdir(parents=True)
    (root / "run/kubeboot-standin/missing-ifaces").write_text("eth9\n")
    api = FakeApi(flannel_objects(iface="eth9"))
    cni.Agent("n3").sync(api, node("n3", "10.244.2.0/24"))
    assert "Failed to find interface to use" in api.created[0]["message"]


def calico_objects(pool: dict[str, Any] | None, env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    ds = {
        "metadata": {"name": "calico-node"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "calico-node", "env": [{"name": k, "value": v} for k, v in env.items()]}]
                }
            }
        },
    }
    cm = {
        "metadata": {"name": "calico-config"},
        "data": {
            "cni_network_config": json.dumps(
                {
                    "name": "k8s-pod-network",
                    "plugins": [{"type": "calico", "nodename": "__KUBERNETES_NODE_NAME__", "mtu": "__CNI_MTU__"}],
                }
            )
        },
    }
    objs: dict[str, list[dict[str, Any]]] = {
        "/apis/apps/v1/daemonsets": [ds],
        "/api/v1/configmaps": [cm],
        "/api/v1/nodes": [node("a", None), node("b", None)],
    }
    if pool is not None:
        objs["/apis/crd.projectcalico.org/v1/ippools"] = [{"metadata": {"name": "default-ipv4-ippool"}, "spec": pool}]
    return objs


def test_calico_ipip_from_daemonset_env(root: Path) -> None:
    api = FakeApi(calico_objects(None, {"CALICO_IPV4POOL_CIDR": "172.20.0.0/16", "CALICO_IPV4POOL_IPIP": "Always"}))
    cni.Agent("b").sync(api, node("b", None))
    ls = links(root)
    assert ls["tunl0"]["kind"] == "ipip" and ls["tunl0"]["addresses"] == ["172.20.0.64/32"]
    assert (root / "var/lib/calico/kubeboot-standin-block").read_text() == "172.20.0.64/26\n"
    assert "vxlan.calico" not in ls and "cni0" not in ls
    conf = json.loads((root / "etc/cni/net.d/10-calico.conflist").read_text())
    assert conf["plugins"][0]["nodename"] == "b"


def test_calico_vxlan_from_ippool(root: Path) -> None:
    api = FakeApi(
        calico_objects(
            {"cidr": "10.70.0.0/16", "vxlanMode": "Always", "ipipMode": "Never"},
            {"CALICO_IPV4POOL_CIDR": "192.168.0.0/16"},
        )
    )
    cni.Agent("a").sync(api, node("a", None))
    ls = links(root)
    assert ls["vxlan.calico"]["kind"] == "vxlan" and ls["vxlan.calico"]["addresses"] == ["10.70.0.0/32"]
    assert "tunl0" not in ls


def test_standin_is_no_default_of_any_role() -> None:
    """Nothing outside tests/ and the opt-in `kubeboot sandbox up --standin` points at the stand-in."""
    repo = Path(__file__).resolve().parents[2]
    needles = ("standin", "stand-in", "kubeboot_standin", "KUBEBOOT_STANDIN")
    offenders = []
    # inventory/sandbox-* is written by `kubeboot sandbox up --standin` itself (the opt-in), so only the sample.
    for top in ("roles", "playbooks", "inventory/sample", "plugins", "site.yml", "ansible.cfg"):
        base = repo / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
        for f in files:
            try:
                text = f.read_text(errors="replace").lower()
            except OSError:
                continue
            offenders += [f"{f.relative_to(repo)}: {n}" for n in needles if n.lower() in text]
    assert offenders == []


def test_kubelet_refuses_swap_unless_fail_swap_on_is_false(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")
    cfg = tmp_path / "var/lib/kubelet/config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n")
    cp = subprocess.run(
        [NODE_PYTHON, "-m", "kubeboot_standin.kubelet", "--config=/var/lib/kubelet/config.yaml"],
        env=standin_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert cp.returncode == 1
    assert "running with swap on is not supported, please disable swap" in cp.stderr


class _Store:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []

    def list(self, group: str, plural: str) -> list[dict[str, Any]]:
        return self.nodes


class _Api:
    def __init__(self) -> None:
        self.store = _Store()
        self.hooks: list[Any] = []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]),
        (
            "controllerManager:\n  extraArgs:\n  - {name: node-cidr-mask-size, value: '26'}\n",
            ["10.244.0.0/26", "10.244.0.64/26", "10.244.0.128/26"],
        ),
    ],
)
def test_node_pod_cidrs_follow_the_controller_manager_mask(root: Path, extra: str, expected: list[str]) -> None:
    from kubeboot_standin.apiserver.controllers import Controllers
    from kubeboot_standin.kubeadm import files

    doc = config.split_documents(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: 10.244.0.0/16}\n"
        + extra,
        strict=True,
    ).docs["ClusterConfiguration"]
    files.write_manifests(config.cluster_settings(doc, "v1.33.1"), "127.0.0.1", 6443, ["kube-controller-manager"])
    manifest = root / "etc/kubernetes/manifests/kube-controller-manager.yaml"
    assert "--allocate-node-cidrs=true" in manifest.read_text()
    api = _Api()
    ctl = Controllers(api, manifest)
    for name in ("a", "b", "c"):
        n: dict[str, Any] = {"metadata": {"name": name}}
        ctl.allocate_cidr(n)
        api.store.nodes.append(n)
    assert [n["spec"]["podCIDR"] for n in api.store.nodes] == expected
