"""Every kubeadm config and pod network manifest the cluster roles render, for each supported option.

Kubernetes objects are validated with kubernetes-validate against the schema of the target version; kubeadm configs
through the stand-in's strict v1beta4 decoding (what `kubeadm config validate` does); the calico Installation against
the schema of the stand-in's operator.tigera.io CRD.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import kubernetes_validate
import pytest
import yaml

from kubeboot import cni, derived

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "standin"))

from kubeboot_standin import config as standin_config  # noqa: E402

VERSIONS = ["1.31.13", "1.32.9", "1.33.5", "1.34.1"]
SCHEMA_VERSION = "1.33.0"
FLANNEL_MIN = (REPO / "tests/standin/manifests/kube-flannel-min.yaml").read_text()
OPERATOR_MIN = (REPO / "tests/standin/manifests/tigera-operator-min.yaml").read_text()


def render(role: str, template: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "roles" / role / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    env.filters["regex_replace"] = lambda value, pattern, repl: re.sub(pattern, repl, value)
    return env.get_template(template).render(**variables)


def kubeadm_init_vars(**over: Any) -> dict[str, Any]:
    values = yaml.safe_load((REPO / "roles/kubeadm_init/defaults/main.yml").read_text())
    values.update(kubeadm_init_node_name="cp1", __kubeadm_init_address="10.0.0.11",
                  kubeadm_init_control_plane_endpoint="10.0.0.11:6443")
    values.update(over)
    return values


def strict_decode(text: str) -> standin_config.Documents:
    docs = standin_config.split_documents(text, strict=True)
    assert not docs.warnings, docs.warnings
    return docs


def validate_objects(text: str) -> list[dict[str, Any]]:
    docs = cni.load_documents(text)
    for doc in docs:
        if doc["apiVersion"].startswith("operator.tigera.io/"):
            continue
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
    return docs


@pytest.mark.parametrize("proxy_mode", ["iptables", "ipvs", "nftables"])
@pytest.mark.parametrize("version", VERSIONS)
def test_kubeadm_init_config_decodes_strictly(version: str, proxy_mode: str) -> None:
    text = render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars(
        kubeadm_init_version=version, kubeadm_init_proxy_mode=proxy_mode, kubeadm_init_node_cidr_mask_size=25,
        kubeadm_init_pod_subnet="10.32.0.0/16", kubeadm_init_service_subnet="10.96.0.0/16",
        kubeadm_init_dns_domain="k8s.example", kubeadm_init_image_repository="mirror.example:5000/k8s"))
    docs = strict_decode(text)
    init, cluster = docs.docs["InitConfiguration"], docs.docs["ClusterConfiguration"]
    assert init["nodeRegistration"]["name"] == "cp1"
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.0.0.11"}]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.11", "bindPort": 6443}
    assert cluster["kubernetesVersion"] == f"v{version}"
    assert cluster["networking"] == {"podSubnet": "10.32.0.0/16", "serviceSubnet": "10.96.0.0/16",
                                     "dnsDomain": "k8s.example"}
    assert cluster["controllerManager"]["extraArgs"] == [{"name": "node-cidr-mask-size", "value": "25"}]
    assert cluster["imageRepository"] == "mirror.example:5000/k8s"
    assert docs.component["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert docs.component["KubeProxyConfiguration"] == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": proxy_mode,
        "clusterCIDR": "10.32.0.0/16"}
    if version >= "1.32":  # the stand-in kubeadm (1.33) deploys control planes of 1.32 and later
        settings = standin_config.cluster_settings(cluster, "v1.33.1")
        assert settings.node_cidr_mask == 25
        assert settings.pod_subnet == "10.32.0.0/16"


def test_kubeadm_init_config_carries_the_certificate_validity_only_when_set() -> None:
    cluster = strict_decode(render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars(
        kubeadm_init_certificate_validity="2h", kubeadm_init_ca_certificate_validity="48h"))
    ).docs["ClusterConfiguration"]
    assert (cluster["certificateValidityPeriod"], cluster["caCertificateValidityPeriod"]) == ("2h", "48h")
    cluster = strict_decode(render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars())).docs[
        "ClusterConfiguration"]
    assert "certificateValidityPeriod" not in cluster and "caCertificateValidityPeriod" not in cluster


def test_kubeadm_init_config_names_the_cluster() -> None:
    cluster = strict_decode(render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars(
        kubeadm_init_cluster_name="prod-eu-1"))).docs["ClusterConfiguration"]
    assert cluster["clusterName"] == "prod-eu-1"
    assert standin_config.cluster_settings(cluster, "v1.33.1").cluster_name == "prod-eu-1"
    default = strict_decode(render("kubeadm_init", "kubeadm-config.yaml.j2", kubeadm_init_vars())).docs[
        "ClusterConfiguration"]
    assert default["clusterName"] == "kubernetes"


@pytest.mark.parametrize("control_plane", [False, True])
def test_kubeadm_join_config_decodes_strictly(control_plane: bool) -> None:
    values = yaml.safe_load((REPO / "roles/kubeadm_join/defaults/main.yml").read_text())
    values.update(kubeadm_join_node_name="worker1", kubeadm_join_endpoint="10.0.0.11:6443",
                  kubeadm_join_control_plane=control_plane, __kubeadm_join_address="10.0.0.12",
                  __kubeadm_join_token="abcdef.0123456789abcdef", __kubeadm_join_ca_hash="a" * 64,
                  __kubeadm_join_certificate_key="b" * 64)
    docs = strict_decode(render("kubeadm_join", "kubeadm-join.yaml.j2", values))
    join = docs.docs["JoinConfiguration"]
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.0.0.11:6443", "token": "abcdef.0123456789abcdef",
        "caCertHashes": ["sha256:" + "a" * 64]}
    assert join["nodeRegistration"]["name"] == "worker1"
    assert ("controlPlane" in join) is control_plane
    if control_plane:
        assert join["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "10.0.0.12", "bindPort": 6443},
                                        "certificateKey": "b" * 64}


FLANNEL_CASES = [
    ("vxlan", {"Type": "vxlan"}),
    ("vxlan-directrouting", {"Type": "vxlan", "DirectRouting": True}),
    ("host-gw", {"Type": "host-gw"}),
]


@pytest.mark.parametrize(("backend", "expected"), FLANNEL_CASES, ids=[c[0] for c in FLANNEL_CASES])
def test_flannel_manifest(backend: str, expected: dict[str, Any]) -> None:
    text = cni.flannel_manifest(FLANNEL_MIN, {
        "network": "10.32.0.0/16", "backend": backend, "subnet_len": 25, "subnet_min": "10.32.4.0",
        "subnet_max": "10.32.200.0", "iface": "eth0", "image_mirror": "mirror.example:5000/flannel-io"})
    docs = validate_objects(text)
    conf = cni.flannel_net_conf_of(text)
    assert conf == {"Network": "10.32.0.0/16", "EnableNFTables": False, "SubnetLen": 25, "SubnetMin": "10.32.4.0",
                    "SubnetMax": "10.32.200.0", "Backend": expected}
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "--iface=eth0" and container["args"].count("--iface=eth0") == 1
    assert container["image"].startswith("mirror.example:5000/flannel-io/flannel:")
    # Transforming the result again changes nothing (the role's output is stable, so kubectl apply is unchanged).
    assert cni.flannel_manifest(text, {"network": "10.32.0.0/16", "backend": backend, "subnet_len": 25,
                                       "subnet_min": "10.32.4.0", "subnet_max": "10.32.200.0", "iface": "eth0",
                                       "image_mirror": "mirror.example:5000/flannel-io"}) == text


def test_flannel_without_iface_or_mirror_keeps_upstream_images() -> None:
    text = cni.flannel_manifest(FLANNEL_MIN, {"network": "10.244.0.0/16", "backend": "vxlan"})
    assert cni.images(text) == cni.images(FLANNEL_MIN)
    assert not any("--iface" in line for line in text.splitlines())


@pytest.mark.parametrize("bad", [{"backend": "wireguard"}, {"subnet_min": "10.99.0.0"}, {"network": "10.0.0.0/33"}])
def test_flannel_refuses_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(cni.CniError):
        cni.flannel_manifest(FLANNEL_MIN, {"network": "10.244.0.0/16", "backend": "vxlan", **bad})


def test_flannel_refuses_a_manifest_without_its_config() -> None:
    with pytest.raises(cni.CniError, match="kube-flannel-cfg"):
        cni.flannel_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", {"network": "10.244.0.0/16"})


def installation_schema() -> dict[str, Any]:
    crd = next(d for d in cni.load_documents(OPERATOR_MIN)
               if d["kind"] == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == "Installation")
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("nat", [True, False])
@pytest.mark.parametrize("encapsulation", list(cni.CALICO_ENCAPSULATIONS))
def test_calico_installation(encapsulation: str, nat: bool) -> None:
    values = yaml.safe_load((REPO / "roles/cni/defaults/main.yml").read_text())
    values.update(cni_pod_subnet="10.32.0.0/16", cni_calico_block_size=27, cni_calico_encapsulation=encapsulation,
                  cni_calico_nat_outgoing=nat, cni_iface="eth0", cni_image_mirror="mirror.example:5000/calico")
    docs = cni.load_documents(render("cni", "calico-installation.yaml.j2", values))
    installation = next(d for d in docs if d["kind"] == "Installation")
    jsonschema.validate(installation, installation_schema())
    pool = installation["spec"]["calicoNetwork"]["ipPools"][0]
    assert pool == {"name": "default-ipv4-ippool", "cidr": "10.32.0.0/16", "blockSize": 27,
                    "encapsulation": encapsulation, "natOutgoing": "Enabled" if nat else "Disabled",
                    "nodeSelector": "all()"}
    assert installation["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"] == {"interface": "eth0"}
    assert installation["spec"]["registry"] == "mirror.example:5000/"
    assert {d["kind"] for d in docs} == {"Installation", "APIServer"}


def test_operator_manifest_objects_validate_and_take_the_mirror() -> None:
    text = cni.manifest_with_mirror(OPERATOR_MIN, "mirror.example:5000/tigera")
    validate_objects(text)
    assert cni.images(text) == ["mirror.example:5000/tigera/operator:v1.38.6"]
    assert cni.manifest_with_mirror(OPERATOR_MIN, "") == OPERATOR_MIN


def test_iface_everywhere() -> None:
    hostvars: dict[str, Any] = {"a": {"ansible_facts": {"interfaces": ["lo", "eth0"]}}, "b": {}}
    assert derived.cni_iface("eth0", ["a", "b"], hostvars) == ("eth0", [])
    hostvars["b"] = {"ansible_facts": {"interfaces": ["lo", "ens3"]}}
    assert derived.cni_iface("eth0", ["a", "b"], hostvars) == ("", ["b"])
