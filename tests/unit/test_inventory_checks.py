"""Every check of the inventory contract: a failing and a passing example, on the pure functions (no Ansible)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeboot.contract import defaults as cluster_defaults
from kubeboot.derived import control_plane_endpoint, package_repo_url
from kubeboot.inventory import checks, syntax
from kubeboot.inventory.model import Finding, Host, Inventory
from kubeboot.inventory.plan import make_plan


def settings(**overrides: Any) -> dict[str, Any]:
    return {**cluster_defaults(), **overrides}


def inventory(hosts: dict[str, dict[str, Any]] | None = None, groups: dict[str, list[str]] | None = None,
              **cluster: Any) -> Inventory:
    hosts = hosts if hosts is not None else {
        "cp1": {"ansible_host": "192.0.2.10"}, "w1": {"ansible_host": "192.0.2.21"},
        "w2": {"ansible_host": "192.0.2.22"},
    }
    groups = groups if groups is not None else {
        "kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": ["cp1", "w1", "w2"],
    }
    merged = settings(**cluster)
    result = Inventory(groups={"all": list(hosts), **groups}, cluster=merged)
    for name, variables in hosts.items():
        member_of = tuple(g for g, members in groups.items() if name in members)
        result.hosts[name] = Host(name, member_of, {**merged, **variables})
    return result


def errors(findings: list[Finding]) -> list[str]:
    return [f.variable for f in findings if f.level == "error"]


def warnings(findings: list[Finding]) -> list[str]:
    return [f.variable for f in findings if f.level == "warning"]


# ------------------------------------------------------------------ cluster-wide settings

@pytest.mark.parametrize(("version", "ok"), [("1.33.5", True), ("1.31.0", True), ("1.34.1", True),
                                              ("1.30.9", False), ("1.35.0", False), ("1.33", False),
                                              ("v1.33.5", False), (1.33, False)])
def test_version(version: Any, ok: bool) -> None:
    assert (checks.check_version(settings(kube_version=version)) == []) is ok


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("kube_cni", "calico", "weave"), ("kube_proxy_mode", "nftables", "userspace"),
    ("kube_install_method", "binary", "snap"), ("containerd_install_method", "docker", "apt"),
    ("flannel_backend", "host-gw", "udp"), ("calico_encapsulation", "None", "none"),
])
def test_enums(name: str, good: str, bad: str) -> None:
    assert checks.check_types(settings(**{name: good})) == []
    assert errors(checks.check_types(settings(**{name: bad}))) == [name]


def test_enum_suggests_the_near_value() -> None:
    assert "did you mean VXLAN?" in checks.check_types(settings(calico_encapsulation="vxlan"))[0].message


@pytest.mark.parametrize(("value", "ok"), [(True, True), ("false", True), ("maybe", False), (3, False)])
def test_booleans(value: Any, ok: bool) -> None:
    assert (checks.check_types(settings(calico_nat_outgoing=value)) == []) is ok


@pytest.mark.parametrize(("port", "ok"), [(6443, True), ("8443", True), (0, False), (70000, False), ("x", False)])
def test_apiserver_port(port: Any, ok: bool) -> None:
    assert (checks.check_types(settings(kube_apiserver_port=port)) == []) is ok


@pytest.mark.parametrize(("pod", "problem"), [
    ("10.244.0.0/16", None), ("fd00:10:244::/56", None), ("10.244.1.0/16", "host bits set: write 10.244.0.0/16"),
    ("10.244.0.0", "CIDR form"), ("10.244.0.300/16", "not a valid network"), ("10.0.0.0/16,fd00::/56", "dual-stack"),
])
def test_cidr_syntax_and_host_bits(pod: str, problem: str | None) -> None:
    found = checks.check_cidrs(settings(kube_pod_subnet=pod, kube_service_subnet=(
        "fd00:10:96::/112" if ":" in pod and "," not in pod else "10.96.0.0/12")))
    if problem is None:
        assert found == []
    else:
        assert problem in found[0].message and found[0].variable == "kube_pod_subnet"


def test_cidr_families_must_match() -> None:
    found = checks.check_cidrs(settings(kube_service_subnet="fd00:10:96::/112"))
    assert errors(found) == ["kube_service_subnet"]


@pytest.mark.parametrize(("service", "ok"), [
    ("10.96.0.0/12", True), ("10.96.0.0/28", True), ("10.64.0.0/11", False), ("10.96.0.0/29", False),
    ("fd00:10:96::/108", True), ("fd00:10:96::/100", False),
])
def test_service_range_size(service: str, ok: bool) -> None:
    pod = "fd00:10:244::/56" if ":" in service else "10.244.0.0/16"
    assert (checks.check_service_range_size(settings(kube_service_subnet=service, kube_pod_subnet=pod)) == []) is ok


def test_pod_and_service_disjoint() -> None:
    assert checks.check_disjoint_networks(settings(), inventory()) == []
    found = checks.check_disjoint_networks(settings(kube_pod_subnet="10.0.0.0/8"), inventory())
    assert errors(found) == ["kube_service_subnet"]


def test_node_addresses_outside_pod_and_service_ranges() -> None:
    inv = inventory(hosts={"cp1": {"ansible_host": "192.0.2.10", "node_ip": "10.96.1.1"}},
                    groups={"kube_control_plane": ["cp1"], "k8s_cluster": ["cp1"]})
    found = checks.check_disjoint_networks(settings(), inv)
    assert [(f.host, f.variable) for f in found] == [("cp1", "node_ip")]
    found = checks.check_disjoint_networks(settings(kube_pod_subnet="192.0.2.0/24"), inventory())
    assert {f.variable for f in found} == {"ansible_host"} and len(found) == 3


def test_endpoint_outside_ranges() -> None:
    assert checks.check_disjoint_networks(settings(kube_control_plane_endpoint="192.0.2.5:6443"), inventory()) == []
    found = checks.check_disjoint_networks(settings(kube_control_plane_endpoint="10.244.0.5:6443"), inventory())
    assert errors(found) == ["kube_control_plane_endpoint"]


@pytest.mark.parametrize(("pod", "mask", "nodes", "level"), [
    ("10.244.0.0/16", 24, 3, None), ("10.244.0.0/23", 24, 3, "error"), ("10.244.0.0/22", 24, 3, "warning"),
    ("10.244.0.0/16", 15, 3, "error"), ("10.0.0.0/8", 25, 3, "error"), ("10.244.0.0/16", 27, 3, "warning"),
])
def test_node_cidr_mask(pod: str, mask: int, nodes: int, level: str | None) -> None:
    found = checks.check_node_cidr_mask(settings(kube_pod_subnet=pod, kube_node_cidr_mask_size=mask), nodes)
    assert [f.level for f in found] == ([level] if level else [])


def test_node_cidr_mask_must_be_an_integer() -> None:
    assert errors(checks.check_node_cidr_mask(settings(kube_node_cidr_mask_size="x"), 3)) == [
        "kube_node_cidr_mask_size"]


@pytest.mark.parametrize(("overrides", "variable"), [
    ({}, None),
    ({"flannel_subnet_len": 25}, None),
    ({"flannel_subnet_len": 25, "kube_node_cidr_mask_size": 24}, "flannel_subnet_len"),
    ({"flannel_subnet_len": 16}, "flannel_subnet_len"),
    ({"flannel_subnet_len": "x"}, "flannel_subnet_len"),
    ({"flannel_subnet_min": "10.244.10.0", "flannel_subnet_max": "10.244.20.0"}, None),
    ({"flannel_subnet_min": "10.245.0.0"}, "flannel_subnet_min"),
    ({"flannel_subnet_min": "10.244.0.5"}, "flannel_subnet_min"),
    ({"flannel_subnet_min": "10.244.9.0", "flannel_subnet_max": "10.244.1.0"}, "flannel_subnet_max"),
    ({"flannel_subnet_min": "10.244.1.0", "flannel_subnet_max": "10.244.2.0"}, "flannel_subnet_max"),
    ({"kube_pod_subnet": "fd00:10:244::/56", "kube_node_cidr_mask_size": 64, "flannel_subnet_len": 64},
     "kube_pod_subnet"),
])
def test_flannel(overrides: dict[str, Any], variable: str | None) -> None:
    found = checks.check_flannel(settings(**overrides), 3)
    assert errors(found) == ([variable] if variable else [])


def test_flannel_ignored_with_calico() -> None:
    assert checks.check_flannel(settings(kube_cni="calico", flannel_subnet_len=99), 3) == []


@pytest.mark.parametrize(("overrides", "level", "variable"), [
    ({"calico_block_size": 26}, None, None),
    ({"calico_block_size": 19}, "error", "calico_block_size"),
    ({"calico_block_size": 33}, "error", "calico_block_size"),
    ({"kube_pod_subnet": "10.244.0.0/24", "calico_block_size": 20}, "error", "calico_block_size"),
    ({"kube_pod_subnet": "10.244.0.0/24", "calico_block_size": 25}, "error", "calico_block_size"),
    ({"kube_pod_subnet": "10.244.0.0/24", "calico_block_size": 26}, "warning", "calico_block_size"),
    ({"calico_ipv4pool_cidr": "192.168.0.0/16"}, "error", "calico_ipv4pool_cidr"),
])
def test_calico(overrides: dict[str, Any], level: str | None, variable: str | None) -> None:
    found = checks.check_calico(settings(kube_cni="calico", **overrides), 3)
    assert [(f.level, f.variable) for f in found] == ([(level, variable)] if level else [])


@pytest.mark.parametrize(("endpoint", "ok"), [
    ("", True), ("k8s-api.example.org:6443", True), ("192.0.2.5:443", True), ("[2001:db8::1]:6443", True),
    ("k8s-api.example.org", False), ("api:99999", False), ("https://api:6443", False), ("bad_host!:6443", False),
])
def test_control_plane_endpoint(endpoint: str, ok: bool) -> None:
    assert (checks.check_endpoint(settings(kube_control_plane_endpoint=endpoint)) == []) is ok


@pytest.mark.parametrize(("domain", "ok"), [("cluster.local", True), ("k8s.example.org", True),
                                            ("Cluster_Local", False), ("", False), (5, False)])
def test_dns_domain(domain: Any, ok: bool) -> None:
    assert (checks.check_dns_domain(settings(kube_dns_domain=domain)) == []) is ok


@pytest.mark.parametrize(("overrides", "variable"), [
    ({}, None),
    ({"kube_package_repo_url": "https://mirror.example.org/k8s/v1.33"}, None),
    ({"kube_package_repo_url": "ftp://mirror.example.org"}, "kube_package_repo_url"),
    ({"kube_download_url": "dl.k8s.io/release"}, "kube_download_url"),
    ({"kube_image_repository": "registry.example.org:5000/k8s"}, None),
    ({"kube_image_repository": "https://registry.example.org"}, "kube_image_repository"),
    ({"kube_image_repository": "registry.example.org/K8S"}, "kube_image_repository"),
    ({"containerd_registry_mirrors": {"docker.io": ["https://m.example.org"]}}, None),
    ({"containerd_registry_mirrors": {"docker.io": "https://m.example.org"}}, "containerd_registry_mirrors[docker.io]"),
    ({"containerd_registry_mirrors": {"docker.io": ["m.example.org"]}}, "containerd_registry_mirrors[docker.io][0]"),
    ({"containerd_registry_mirrors": {"bad host": ["https://m.example.org"]}},
     "containerd_registry_mirrors[bad host]"),
    ({"containerd_registry_mirrors": ["https://m.example.org"]}, "containerd_registry_mirrors"),
])
def test_urls(overrides: dict[str, Any], variable: str | None) -> None:
    assert errors(checks.check_urls(settings(**overrides))) == ([variable] if variable else [])


@pytest.mark.parametrize(("name", "ok"), [("eth0", True), ("enp0s31f6", True), ("public-interface0", False),
                                          ("eth/0", False), ("eth 0", False), ("", False)])
def test_public_nic_name(name: str, ok: bool) -> None:
    assert (checks.check_public_nic_name(settings(public_nic_name=name)) == []) is ok


def test_check_settings_clean_on_defaults() -> None:
    assert checks.check_settings(settings(), 3) == []


# ------------------------------------------------------------------ groups and hosts

def test_groups_clean() -> None:
    assert checks.check_groups(inventory()) == []


def test_no_control_plane() -> None:
    inv = inventory(groups={"kube_node": ["w1", "w2"], "k8s_cluster": ["w1", "w2"]})
    assert errors(checks.check_groups(inv)) == ["kube_control_plane"]


def test_even_control_planes_warn() -> None:
    inv = inventory(groups={"kube_control_plane": ["cp1", "w1"], "kube_node": ["w2"],
                            "k8s_cluster": ["cp1", "w1", "w2"]})
    assert warnings(checks.check_groups(inv)) == ["kube_control_plane"]


def test_k8s_cluster_is_the_union() -> None:
    inv = inventory(groups={"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": ["cp1", "w1"]})
    assert [(f.host, f.variable) for f in checks.check_groups(inv)] == [("w2", "k8s_cluster")]
    inv = inventory(groups={"kube_control_plane": ["cp1"], "kube_node": ["w1"], "k8s_cluster": ["cp1", "w1", "w2"]})
    assert [(f.host, f.variable) for f in checks.check_groups(inv)] == [("w2", "k8s_cluster")]


def test_msms_inside_the_cluster() -> None:
    base = {"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": ["cp1", "w1", "w2"]}
    assert checks.check_groups(inventory(groups={**base, "msms": ["w2"]})) == []
    hosts = {"cp1": {}, "w1": {}, "w2": {}, "m1": {}}
    assert errors(checks.check_groups(inventory(hosts, groups={**base, "msms": ["m1"]}))) == ["msms"]
    assert warnings(checks.check_groups(inventory(groups={**base, "msms": ["cp1"]}))) == ["msms"]


def test_group_name_typo() -> None:
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": ["cp1", "w1", "w2"],
              "kube_nodes": ["w1"], "databases": ["w2"]}
    assert warnings(checks.check_groups(inventory(groups=groups))) == ["kube_nodes"]


def test_node_names() -> None:
    assert checks.check_node_names(inventory()) == []
    hosts = {"cp1": {}, "Worker_1": {}, "worker-1": {}}
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["Worker_1", "worker-1"],
              "k8s_cluster": ["cp1", "Worker_1", "worker-1"]}
    found = checks.check_node_names(inventory(hosts, groups))
    assert [(f.host, f.variable) for f in found] == [("Worker_1", "inventory_hostname")]
    assert "try 'worker-1'" in found[0].message


def test_node_names_unique_ignoring_case() -> None:
    hosts = {"cp1": {}, "CP1": {}}
    found = checks.check_node_names(inventory(hosts, {"kube_control_plane": ["cp1", "CP1"],
                                                      "k8s_cluster": ["cp1", "CP1"]}))
    assert any("same node name" in f.message for f in found)


def test_unique_addresses() -> None:
    assert checks.check_addresses(inventory()) == []
    found = checks.check_addresses(inventory({"cp1": {"ansible_host": "192.0.2.10"},
                                              "w1": {"ansible_host": "192.0.2.11", "node_ip": "192.0.2.10"},
                                              "w2": {"ansible_host": "192.0.2.12"}}))
    assert [(f.host, f.variable) for f in found] == [("w1", "node_ip")]


def test_node_ip_and_ansible_host_syntax() -> None:
    found = checks.check_addresses(inventory({"cp1": {"ansible_host": "192.0.2.10", "node_ip": "cp1.example.org"},
                                              "w1": {"ansible_host": "bad host!"}, "w2": {}}))
    assert errors(found) == ["node_ip", "ansible_host"]


@pytest.mark.parametrize(("mac", "ok"), [("52:54:00:12:34:56", True), ("52-54-00-12-34-56", True),
                                         ("52:54:00:12:34", False), ("01:00:5e:00:00:01", False),
                                         ("00:00:00:00:00:00", False), ("52:54:00:12:34:5g", False)])
def test_mac_syntax(mac: str, ok: bool) -> None:
    found = checks.check_addresses(inventory({"cp1": {"public_nic_mac": mac}}, {"kube_control_plane": ["cp1"],
                                                                              "k8s_cluster": ["cp1"]}))
    assert (found == []) is ok


def test_unique_macs_ignoring_case() -> None:
    found = checks.check_addresses(inventory({
        "cp1": {"ansible_host": "192.0.2.10", "public_nic_mac": "52:54:00:aa:bb:cc"},
        "w1": {"ansible_host": "192.0.2.11", "public_nic_mac": "52:54:00:AA:BB:CC"},
        "w2": {"ansible_host": "192.0.2.12", "public_nic_mac": "52:54:00:aa:bb:cd"},
    }))
    assert [(f.host, f.variable) for f in found] == [("w1", "public_nic_mac")]


@pytest.mark.parametrize(("labels", "level"), [
    ({"disktype": "ssd", "example.com/media-server": "true", "a.b/c_d.e-f": ""}, None),
    ({"kubernetes.io/hostname": "w1", "topology.kubernetes.io/zone": "a", "node.kubernetes.io/x": "y",
      "kubelet.kubernetes.io/y": "z", "beta.kubernetes.io/arch": "amd64"}, None),
    ({"-disk": "ssd"}, "error"),
    ({"Example.com/disk": "ssd"}, "error"),
    ({"example.com/" + "a" * 64: "x"}, "error"),
    ({"disk": "a" * 64}, "error"),
    ({"disk": "ssd!"}, "error"),
    ({"disk": True}, "error"),
    ({"kubernetes.io/role": "media"}, "error"),
    ({"foo.k8s.io/bar": "x"}, "error"),
    ({"node-role.kubernetes.io/msms": ""}, "warning"),
    ({"node-restriction.kubernetes.io/pool": "media"}, "warning"),
])
def test_labels(labels: dict[str, Any], level: str | None) -> None:
    assert [f.level for f in checks.check_labels("w1", labels)] == ([level] if level else [])


def test_labels_must_be_a_mapping() -> None:
    assert errors(checks.check_labels("w1", ["disk=ssd"])) == ["node_labels"]


@pytest.mark.parametrize(("taints", "ok"), [
    (["dedicated=msms:NoSchedule", "gpu:NoExecute", "example.com/x=y:PreferNoSchedule"], True),
    (["dedicated=msms:NoScheduel"], False), (["dedicated=msms"], False), (["-bad=x:NoSchedule"], False),
    (["dedicated=bad value:NoSchedule"], False), (["a=b:NoSchedule", "a=c:NoSchedule"], False),
    (["a=b:NoSchedule", "a=b:NoExecute"], True), ([{"key": "a", "effect": "NoSchedule"}], False),
])
def test_taints(taints: list[Any], ok: bool) -> None:
    assert (checks.check_taints("w1", taints) == []) is ok


def test_taint_line_names_the_index_and_the_fix() -> None:
    found = checks.check_taints("worker2", ["a=b:NoSchedule", "dedicated=msms:NoScheduel"])
    assert found[0].line().startswith('ERROR worker2: node_taints[1] = "dedicated=msms:NoScheduel": effect must be '
                                      "NoSchedule, PreferNoSchedule or NoExecute")


def test_taints_must_be_a_list() -> None:
    assert errors(checks.check_taints("w1", "a=b:NoSchedule")) == ["node_taints"]


def export(host: str = "192.0.2.0/24", options: Any = "rw,sync,no_root_squash", path: Any = "/srv/nfs") -> list[Any]:
    return [{"path": path, "clients": [{"host": host, "options": options}]}]


@pytest.mark.parametrize(("exports", "allow", "variable"), [
    (export(), False, None),
    (export(host="*.example.org", options=["ro", "sync"]), False, None),
    (export(host="@media", options="rw,fsid=0,anonuid=1000"), False, None),
    (export(host="*", options="rw"), False, None),
    (export(host="*"), True, None),
    (export(host="*"), False, "nfs_exports[0].clients[0].options"),
    (export(path="srv/nfs"), False, "nfs_exports[0].path"),
    (export(host="192.0.2.1/24"), False, "nfs_exports[0].clients[0].host"),
    (export(host="bad host"), False, "nfs_exports[0].clients[0].host"),
    (export(options="rw,no_root_sqash"), False, "nfs_exports[0].clients[0].options"),
    (export(options="rw,ro"), False, "nfs_exports[0].clients[0].options"),
    ([{"path": "/srv/nfs", "clients": []}], False, "nfs_exports[0].clients"),
    ([*export(), *export()], False, "nfs_exports[1].path"),
    ({"path": "/srv"}, False, "nfs_exports"),
])
def test_nfs_exports(exports: Any, allow: bool, variable: str | None) -> None:
    assert errors(checks.check_nfs_exports("nfs1", exports, allow)) == ([variable] if variable else [])


def test_nfs_exports_only_on_nfs_servers() -> None:
    hosts = {"cp1": {"nfs_exports": export()}, "w1": {}, "w2": {}, "nfs1": {"nfs_exports": []}}
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": ["cp1", "w1", "w2"],
              "nfs_server": ["nfs1"]}
    found = checks.check_host_variables(inventory(hosts, groups), settings())
    assert [(f.level, f.host) for f in found] == [("warning", "cp1"), ("warning", "nfs1")]
    hosts = {"cp1": {}, "w1": {}, "w2": {}, "nfs1": {"nfs_exports": export()}}
    assert checks.check_host_variables(inventory(hosts, groups), settings()) == []


def test_cluster_wide_values_agree() -> None:
    assert checks.check_consistency(inventory(), settings()) == []
    inv = inventory({"cp1": {}, "w1": {}, "w2": {"kube_cni": "calico"}})
    assert [(f.host, f.variable) for f in checks.check_consistency(inv, settings())] == [("w2", "kube_cni")]


def test_typos() -> None:
    known = checks.known_variables({"kube_packages_version"})
    inv = inventory({"cp1": {"kube_pod_subnett": "x", "kube_packages_version": "1.33.5", "kube_whatever": 1},
                     "w1": {}, "w2": {}})
    found = checks.check_typos(inv, known)
    assert [(f.level, f.variable) for f in found] == [("warning", "kube_pod_subnett")]
    assert "did you mean kube_pod_subnet?" in found[0].message
    assert checks.check_typos(inventory(), known) == []


def test_validate_sorts_errors_first_and_deduplicates() -> None:
    inv = inventory(kube_cni="weave")
    inv.hosts["w1"].variables["node_labels"] = {"node-role.kubernetes.io/x": ""}
    found = checks.validate(inv)
    assert [f.level for f in found] == ["error", "warning"]
    assert checks.validate(inventory()) == []


# ------------------------------------------------------------------ syntax helpers and derived values

def test_qualified_name_limits() -> None:
    assert syntax.qualified_name("a" * 63) is None
    assert syntax.qualified_name("a" * 64) is not None
    assert syntax.qualified_name(("a" * 63 + ".") * 3 + "b" * 62 + "/x") is not None  # prefix over 253
    assert syntax.qualified_name("/x") is not None


def test_derived_values() -> None:
    assert package_repo_url("1.32.1") == "https://pkgs.k8s.io/core:/stable:/v1.32"
    assert package_repo_url("1.33.5", "https://m/x") == "https://m/x"
    assert control_plane_endpoint(settings(), "192.0.2.10") == "192.0.2.10:6443"
    assert control_plane_endpoint(settings(), "2001:db8::1") == "[2001:db8::1]:6443"
    assert control_plane_endpoint(settings(kube_control_plane_endpoint="api:443"), "192.0.2.10") == "api:443"


def test_plan_numbers() -> None:
    plan = make_plan(inventory(kube_cni="calico", kube_pod_subnet="10.32.0.0/12"))
    assert plan.cluster_dns == "10.96.0.10"
    assert plan.node_ranges_available == 4096 and plan.nodes == 3
    assert plan.calico_blocks_available == 2 ** 14
    assert plan.control_plane_endpoint == "192.0.2.10:6443"
    assert [n.roles for n in plan.node_list] == [["control-plane"], ["worker"], ["worker"]]
    assert "10.96.0.10 (cluster.local)" in plan.table()


# ------------------------------------------------------------------ cluster name and etcd backups

@pytest.mark.parametrize(("name", "ok"), [("kubernetes", True), ("prod-eu-1", True), ("a" * 63, True),
                                          ("Prod_1", False), ("prod.eu", False), ("-prod", False), ("a" * 64, False),
                                          ("", False), (7, False)])
def test_cluster_name(name: Any, ok: bool) -> None:
    found = checks.check_cluster_name(settings(kube_cluster_name=name))
    assert (found == []) is ok
    if not ok:
        assert errors(found) == ["kube_cluster_name"] and "DNS-1123 label" in found[0].message


def test_cluster_name_suggests_a_label() -> None:
    assert "(try 'prod-1')" in checks.check_cluster_name(settings(kube_cluster_name="Prod_1"))[0].message


@pytest.mark.parametrize(("schedule", "ok"), [
    ("", True), ("daily", True), ("weekly UTC", True), ("*-*-* 02:30:00", True), ("Sun *-*-* 03:00:00", True),
    ("Mon..Fri 02:00", True), ("*:0/15", True), ("*-*-* 02:30:00 Europe/Berlin", True), ("2026-*-01 04:00", True),
    ("daily; rm -rf /", False), ("$(reboot)", False), ("daily\nExecStart=/bin/sh", False), ("'daily'", False),
    ("every day", False), ("Mon Tue", False), ("*-*-* 25", False), ("hourly hourly", False), ("   ", False),
    (3, False),
])
def test_etcd_backup_schedule(schedule: Any, ok: bool) -> None:
    found = checks.check_etcd_backup(settings(etcd_backup_schedule=schedule))
    assert errors(found) == ([] if ok else ["etcd_backup_schedule"])
    if not ok:
        assert "OnCalendar expression such as daily" in found[0].message


@pytest.mark.parametrize(("directory", "ok"), [("", True), ("/srv/backups/etcd", True), ("backups", False),
                                               ("~/backups", False), (["/srv"], False)])
def test_etcd_backup_dir(directory: Any, ok: bool) -> None:
    found = checks.check_etcd_backup(settings(etcd_backup_dir=directory))
    assert errors(found) == ([] if ok else ["etcd_backup_dir"])


@pytest.mark.parametrize(("keep", "ok"), [(7, True), ("1", True), (10000, True), (0, False), (-1, False),
                                          ("seven", False), (True, False)])
def test_etcd_backup_keep(keep: Any, ok: bool) -> None:
    found = checks.check_types(settings(etcd_backup_keep=keep))
    assert errors(found) == ([] if ok else ["etcd_backup_keep"])
    if not ok:
        assert found[0].line().startswith("ERROR all: etcd_backup_keep = ")
        assert "between 1 and 10000" in found[0].message


def test_etcd_settings_clean_on_defaults_and_typos_caught() -> None:
    assert checks.check_settings(settings(), 3) == []
    inv = inventory()
    for host in inv.hosts.values():
        host.variables["etcd_backup_kep"] = 3
    assert [f.message for f in checks.check_typos(inv, checks.known_variables())] == \
        ["unknown variable; did you mean etcd_backup_keep?"]

# ------------------------------------------------------------------ the API endpoint's load balancer

def three_control_planes(**cluster: Any) -> Inventory:
    return inventory(
        hosts={"cp1": {"ansible_host": "192.0.2.11"}, "cp2": {"ansible_host": "192.0.2.12"},
               "cp3": {"ansible_host": "192.0.2.13"}, "w1": {"ansible_host": "192.0.2.21"}},
        groups={"kube_control_plane": ["cp1", "cp2", "cp3"], "kube_node": ["w1"],
                "k8s_cluster": ["cp1", "cp2", "cp3", "w1"]},
        **cluster)


def lb_lines(inv: Inventory) -> list[str]:
    return [f.line() for f in checks.check_control_plane_lb(inv.cluster, inv)]


def test_keepalived_clean() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    assert checks.validate(inv) == []
    assert checks.check_types(settings(kube_control_plane_lb="keepalived", kube_control_plane_vip_router_id=7,
                                       kube_control_plane_vip_unicast="true")) == []


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, 'ERROR all: kube_control_plane_vip = "": is required with kube_control_plane_lb keepalived: set a free '
         "IPv4 address of the control planes' subnet"),
    ({"kube_control_plane_vip": "2001:db8::10"}, "must be an IPv4 address such as 192.0.2.100"),
    ({"kube_control_plane_vip": "192.0.2.300"}, "must be an IPv4 address"),
    ({"kube_control_plane_vip": "127.0.0.5"}, "must be a unicast address of the control planes' subnet"),
    ({"kube_control_plane_vip": "224.0.0.18"}, "must be a unicast address"),
    ({"kube_control_plane_vip": "192.0.2.12"}, 'ERROR all: kube_control_plane_vip = "192.0.2.12": is the address '
                                               "of cp2 (ansible_host): the VIP must be an address no host has"),
    ({"kube_control_plane_vip": "10.244.3.1"}, 'ERROR all: kube_control_plane_vip = "10.244.3.1": is inside '
                                               "kube_pod_subnet 10.244.0.0/16: choose a free address of the "
                                               "control planes' subnet"),
    ({"kube_control_plane_vip": "10.96.0.100"}, "is inside kube_service_subnet 10.96.0.0/12"),
    ({"kube_control_plane_vip": "192.0.2.100", "kube_control_plane_endpoint": "api.example.org:6443"},
     'ERROR all: kube_control_plane_endpoint = "api.example.org:6443": must be empty or the VIP and haproxy\'s '
     "port (192.0.2.100:8443) with kube_control_plane_lb keepalived"),
    ({"kube_control_plane_vip": "192.0.2.100", "kube_control_plane_endpoint": "192.0.2.100:6443"},
     "must be empty or the VIP and haproxy's port (192.0.2.100:8443)"),
    ({"kube_control_plane_vip": "192.0.2.100", "kube_control_plane_lb_port": 6443},
     "ERROR all: kube_control_plane_lb_port = 6443: equals kube_apiserver_port (6443): haproxy and the API server "
     "listen on every control plane; choose another port such as 8443"),
    ({"kube_control_plane_vip": "192.0.2.100", "kube_apiserver_port": 8443},
     "equals kube_apiserver_port (8443): haproxy and the API server listen on every control plane; choose another "
     "port such as 9443"),
])
def test_keepalived_refusals(overrides: dict[str, Any], expected: str) -> None:
    lines = lb_lines(three_control_planes(kube_control_plane_lb="keepalived", **overrides))
    assert len(lines) == 1 and expected in lines[0], lines


def test_keepalived_endpoint_may_name_the_vip() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100",
                               kube_control_plane_endpoint="192.0.2.100:8443")
    assert lb_lines(inv) == []


def test_vip_equal_to_a_node_ip_or_a_non_cluster_host() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    inv.hosts["w1"].variables["node_ip"] = "192.0.2.100"
    inv.hosts["nfs1"] = Host("nfs1", ("nfs_server",), {"ansible_host": "192.0.2.100"})
    assert lb_lines(inv) == [
        'ERROR all: kube_control_plane_vip = "192.0.2.100": is the address of w1 (node_ip): the VIP must be an '
        "address no host has",
        'ERROR all: kube_control_plane_vip = "192.0.2.100": is the address of nfs1 (ansible_host): the VIP must be '
        "an address no host has"]


@pytest.mark.parametrize(("router_id", "ok"), [("", True), (1, True), (255, True), ("42", True), (0, False),
                                               (256, False), ("x", False)])
def test_router_id_range(router_id: Any, ok: bool) -> None:
    found = checks.check_types(settings(kube_control_plane_vip_router_id=router_id))
    assert (found == []) is ok
    if not ok:
        assert found[0].line().endswith("must be a VRRP router id between 1 and 255, or empty for the VIP's last "
                                        "octet")


@pytest.mark.parametrize(("interval", "ok"), [
    (0.5, True), ("0.5", True), (1, True), ("2", True), (0.01, True), (0.07, True), (40.95, True), (0.3, True),
    (0, False), (0.0, False), (-1, False), (0.005, False), (0.125, False), (40.96, False), (41, False), (255, False),
    ("half", False), ("0.5s", False), ("", False), (None, False), (True, False)])
def test_vip_advert_interval(interval: Any, ok: bool) -> None:
    """VRRPv3 carries the interval in centiseconds in 12 bits: 0.01 to 40.95 s, whole centiseconds."""
    found = checks.check_types(settings(kube_control_plane_vip_advert_interval=interval))
    assert (found == []) is ok, found
    if not ok:
        shown = "" if interval is None else f" = {json.dumps(interval)}"
        assert [f.line() for f in found] == [
            f"ERROR all: kube_control_plane_vip_advert_interval{shown}: must be a number of seconds between 0.01 "
            "and 40.95 in steps of 0.01 (VRRPv3), such as 0.5"]


def test_vip_advert_interval_must_agree_on_every_control_plane() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    inv.hosts["cp2"].variables["kube_control_plane_vip_advert_interval"] = 1
    assert "kube_control_plane_vip_advert_interval" in errors(checks.validate(inv))


def test_lb_mode_and_ports_typed() -> None:
    assert errors(checks.check_types(settings(kube_control_plane_lb="haproxy"))) == ["kube_control_plane_lb"]
    assert errors(checks.check_types(settings(kube_control_plane_lb_port=0))) == ["kube_control_plane_lb_port"]
    assert errors(checks.check_types(settings(kube_control_plane_vip_unicast="sometimes"))) == [
        "kube_control_plane_vip_unicast"]


def test_vip_interface_per_control_plane() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    inv.hosts["cp2"].variables["kube_control_plane_vip_interface"] = "bond0.12"
    inv.hosts["cp3"].variables["kube_control_plane_vip_interface"] = "eth 1"
    lines = lb_lines(inv)
    assert len(lines) == 1 and lines[0].startswith('ERROR cp3: kube_control_plane_vip_interface = "eth 1": ')
    assert lines[0].endswith("or leave it empty for public_nic_name")


def test_keepalived_needs_ipv4_control_planes() -> None:
    inv = three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    inv.hosts["cp2"].variables["node_ip"] = "2001:db8::12"
    assert [f.host for f in checks.check_control_plane_lb(inv.cluster, inv)] == ["cp2"]


def test_external_needs_an_endpoint() -> None:
    assert lb_lines(three_control_planes(kube_control_plane_lb="external")) == [
        'ERROR all: kube_control_plane_endpoint = "": is required with kube_control_plane_lb external: set your '
        "load balancer's host:port (it forwards to every API server's kube_apiserver_port)"]
    assert lb_lines(three_control_planes(kube_control_plane_lb="external",
                                         kube_control_plane_endpoint="api.example.org:6443")) == []


def test_vip_settings_ignored_without_keepalived() -> None:
    inv = three_control_planes(kube_control_plane_lb="external", kube_control_plane_endpoint="lb:6443",
                               kube_control_plane_vip="192.0.2.100", kube_control_plane_vip_router_id=3)
    assert [(f.level, f.variable) for f in checks.check_control_plane_lb(inv.cluster, inv)] == [
        ("warning", "kube_control_plane_vip"), ("warning", "kube_control_plane_vip_router_id")]


def test_several_control_planes_without_a_load_balancer_warn() -> None:
    assert lb_lines(three_control_planes()) == [
        'WARNING all: kube_control_plane_lb = "none": the API endpoint is cp1\'s address with 3 control planes: it '
        "is lost with cp1; set kube_control_plane_lb: keepalived (a VIP) or external (your load balancer)"]
    assert lb_lines(three_control_planes(kube_control_plane_endpoint="api:6443")) == []
    assert lb_lines(inventory()) == []  # one control plane


def test_even_control_planes_still_warn_with_keepalived() -> None:
    inv = inventory(hosts={"cp1": {"ansible_host": "192.0.2.11"}, "cp2": {"ansible_host": "192.0.2.12"}},
                    groups={"kube_control_plane": ["cp1", "cp2"], "kube_node": [], "k8s_cluster": ["cp1", "cp2"]},
                    kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    found = checks.validate(inv)
    assert [(f.level, f.variable) for f in found] == [("warning", "kube_control_plane")]


def test_keepalived_endpoint_and_plan() -> None:
    lb = settings(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100")
    assert control_plane_endpoint(lb, "192.0.2.11") == "192.0.2.100:8443"
    assert control_plane_endpoint({**lb, "kube_control_plane_lb_port": 7443}, "192.0.2.11") == "192.0.2.100:7443"
    assert control_plane_endpoint({**lb, "kube_control_plane_lb": "none"}, "192.0.2.11") == "192.0.2.11:6443"
    plan = make_plan(three_control_planes(kube_control_plane_lb="keepalived", kube_control_plane_vip="192.0.2.100",
                                          kube_control_plane_vip_unicast=True))
    assert plan.control_plane_endpoint == "192.0.2.100:8443"
    assert plan.control_plane_lb == ("keepalived VIP 192.0.2.100 on eth0 (router id 100, unicast), haproxy on cp1, "
                                     "cp2, cp3 to port 6443")
    assert make_plan(three_control_planes()).control_plane_lb == "none"
