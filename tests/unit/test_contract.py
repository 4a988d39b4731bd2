"""The typed contract is the one source: the vars plugin's defaults, the validator's type rules, the consistency and
typo checks, README.md's tables and the sample inventory all follow it; and each of its rules is enforced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeboot import contract, derived
from kubeboot.inventory import checks
from kubeboot.inventory.model import Host, Inventory
from kubeboot.inventory.validate import validate_inventory
from tests.conftest import REPO, run_ansible

MINIMAL = REPO / "tests/data/inventories/good/minimal/hosts.yml"


def settings(**overrides: Any) -> dict[str, Any]:
    return {**contract.defaults(), **overrides}


def errors(findings: list[checks.Finding]) -> list[str]:
    return [f.line() for f in findings if f.level == "error"]


def three_nodes(per_host: dict[str, dict[str, Any]] | None = None, **cluster: Any) -> Inventory:
    merged = settings(**cluster)
    names = {"cp1": "192.0.2.10", "w1": "192.0.2.21", "w2": "192.0.2.22"}
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["w1", "w2"], "k8s_cluster": list(names)}
    inventory = Inventory(groups={"all": list(names), **groups}, cluster=merged)
    for name, address in names.items():
        member_of = tuple(g for g, members in groups.items() if name in members)
        variables = {**merged, "ansible_host": address, **(per_host or {}).get(name, {})}
        inventory.hosts[name] = Host(name, member_of, variables)
    return inventory


# ---------------------------------------------------------------- the documentation and the defaults follow it

def test_readme_and_sample_are_written_from_the_contract() -> None:
    for path, text in contract.rendered(REPO).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} differs from src/kubeboot/contract.py: run python -m kubeboot.contract --write")


def test_drift_is_caught(tmp_path: Path) -> None:
    (tmp_path / "inventory/sample/group_vars/all").mkdir(parents=True)
    readme = (REPO / "README.md").read_text(encoding="utf-8").replace("| `kube_cni` | `flannel` |",
                                                                      "| `kube_cni` | `calico` |")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    rendered = contract.rendered(tmp_path)
    assert rendered[tmp_path / "README.md"] != readme
    assert "| `kube_cni` | `flannel` |" in rendered[tmp_path / "README.md"]


def test_every_cluster_setting_is_in_the_readme_and_the_sample_once() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sample = (REPO / contract.SAMPLE_PATH).read_text(encoding="utf-8")
    for item in contract.SETTINGS:
        assert readme.count(f"| `{item.name}` |") == 1, item.name
        if item.scope != "host":
            assert sample.count(f"\n# {item.name}: ") == 1, item.name
    # The sample's commented values are the defaults, in YAML that reads back as them.
    for line in sample.splitlines():
        name, _, value = line.removeprefix("# ").partition(": ")
        if name in contract.BY_NAME and line.startswith(f"# {name}: ") and contract.BY_NAME[name].has_default:
            assert yaml.safe_load(value) == contract.BY_NAME[name].default, name


def _plain(value: Any) -> Any:
    """ansible-inventory's JSON without its {"__ansible_unsafe": ...} wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_vars_plugin_gives_every_default_beneath_the_inventory() -> None:
    listed = run_ansible("ansible-inventory", "-i", str(MINIMAL), "--list")
    hostvars = _plain(json.loads(listed.stdout)["_meta"]["hostvars"])
    assert hostvars, listed.stdout
    for name, variables in hostvars.items():
        for key, value in contract.defaults().items():
            if name != "worker1" or key not in ("node_labels", "node_taints"):  # what the inventory sets wins
                assert variables.get(key) == value, f"{name}: {key}"
        for item in contract.SETTINGS:
            if not item.has_default and item.name not in ("ansible_host", "public_nic_mac"):
                assert item.name not in variables, f"{name}: {item.name}"
    assert hostvars["worker1"]["node_labels"] == {"example.com/disk": "ssd"}


def test_known_names_are_the_contract() -> None:
    assert checks.known_variables() == contract.names()
    assert contract.per_host() == {s.name for s in contract.SETTINGS if s.scope == "host"}
    assert set(contract.must_agree()) | {s.name for s in contract.scoped("node", "host")} == contract.names()


# ---------------------------------------------------------------- one test per rule of the schema

TYPED = [s for s in contract.SETTINGS if s.scope != "host" and s.kind in ("enum", "bool", "int", "float", "duration")]


@pytest.mark.parametrize("item", TYPED, ids=[s.name for s in TYPED])
def test_the_default_passes_its_own_rule(item: contract.Setting) -> None:
    assert contract.type_problem(item, item.default) is None
    assert [f for f in checks.check_types(settings()) if f.variable == item.name] == []


def _bad_value(item: contract.Setting) -> Any:
    if item.kind == "enum":
        return "no-such-" + item.choices[0]
    if item.kind == "bool":
        return "maybe"
    return "x"


@pytest.mark.parametrize("item", TYPED, ids=[s.name for s in TYPED])
def test_a_wrong_type_is_one_error_naming_the_variable(item: contract.Setting) -> None:
    found = [f for f in checks.validate(three_nodes(**{item.name: _bad_value(item)})) if f.level == "error"]
    assert [f.variable for f in found] == [item.name], errors(found)
    assert found[0].host == "all" and "must be" in found[0].message


ENUMS = [s for s in contract.SETTINGS if s.kind == "enum"]


@pytest.mark.parametrize("item", ENUMS, ids=[s.name for s in ENUMS])
def test_every_choice_of_an_enum_is_accepted(item: contract.Setting) -> None:
    for choice in item.choices:
        assert contract.type_problem(item, choice) is None
    assert contract.type_problem(item, item.choices[0].upper() + "x") is not None


RANGED = [s for s in contract.SETTINGS if s.minimum is not None or s.maximum is not None]


@pytest.mark.parametrize("item", RANGED, ids=[s.name for s in RANGED])
def test_integers_outside_their_range_are_refused(item: contract.Setting) -> None:
    assert item.minimum is not None and item.maximum is not None
    assert contract.type_problem(item, item.minimum) is None
    assert contract.type_problem(item, item.maximum) is None
    assert contract.type_problem(item, item.minimum - 1) is not None
    assert contract.type_problem(item, item.maximum + 1) is not None


EMPTY_OK = [s for s in contract.SETTINGS if s.empty_ok]


@pytest.mark.parametrize("item", EMPTY_OK, ids=[s.name for s in EMPTY_OK])
def test_optional_settings_take_empty(item: contract.Setting) -> None:
    assert contract.type_problem(item, "") is None
    assert contract.type_problem(item, None) is None


CLUSTER_SCOPED = [s for s in contract.SETTINGS if s.scope == "cluster" and s.has_default]
NODE_SCOPED = [s for s in contract.SETTINGS if s.scope == "node"]


def _other_value(item: contract.Setting) -> Any:
    if item.kind == "enum":
        return next(c for c in item.choices if c != item.default)
    if item.kind == "bool":
        return not item.default
    if item.kind == "int":
        return 25 if item.default in ("", None) else int(item.default) + 1
    if item.kind == "list":
        return ["x"]
    if item.kind == "dict":
        return {"docker.io": ["https://mirror.example.org"]}
    if item.kind == "duration":
        return "720h"
    return "other.example.org"


@pytest.mark.parametrize("item", CLUSTER_SCOPED, ids=[s.name for s in CLUSTER_SCOPED])
def test_cluster_scope_must_agree_on_every_node(item: contract.Setting) -> None:
    inventory = three_nodes({"w2": {item.name: _other_value(item)}})
    found = checks.check_consistency(inventory, inventory.cluster)
    assert [(f.host, f.variable) for f in found] == [("w2", item.name)]
    assert "group_vars/all" in found[0].message


@pytest.mark.parametrize("item", NODE_SCOPED, ids=[s.name for s in NODE_SCOPED])
def test_node_scope_may_differ_per_node(item: contract.Setting) -> None:
    inventory = three_nodes({"w2": {item.name: _other_value(item)}})
    assert checks.check_consistency(inventory, inventory.cluster) == []


def test_host_scope_is_per_host() -> None:
    inventory = three_nodes({"w2": {"node_labels": {"disk": "ssd"}, "public_nic_mac": "52:54:00:00:00:01"}})
    assert checks.check_consistency(inventory, inventory.cluster) == []


def test_settings_without_a_default_are_not_given() -> None:
    for item in contract.SETTINGS:
        assert (item.name in contract.defaults()) is item.has_default


def test_a_misspelt_setting_is_named_with_the_contract_name() -> None:
    inventory = three_nodes({name: {"kube_pod_subnets": "10.244.0.0/16"} for name in ("cp1", "w1", "w2")})
    found = checks.check_typos(inventory, checks.known_variables())
    assert [(f.variable, f.message) for f in found] == [
        ("kube_pod_subnets", "unknown variable; did you mean kube_pod_subnet?")]


# ---------------------------------------------------------------- one fact, one variable: each node's pod range

@pytest.mark.parametrize(("overrides", "mask"), [
    ({}, 24),
    ({"flannel_subnet_len": 25}, 25),
    ({"kube_node_cidr_mask_size": 26}, 26),
    ({"kube_node_cidr_mask_size": 25, "flannel_subnet_len": 25}, 25),
    ({"kube_pod_subnet": "fd00:10:244::/56"}, 64),
    ({"flannel_subnet_len": "x"}, None),
])
def test_node_pod_range_size(overrides: dict[str, Any], mask: int | None) -> None:
    assert derived.node_cidr_mask_size(settings(**overrides)) == mask


@pytest.mark.parametrize("cni", ["flannel", "calico"])
def test_only_flannel_subnet_len_is_valid(cni: str) -> None:
    assert errors(validate_inventory(three_nodes(kube_cni=cni, flannel_subnet_len=25))) == []


@pytest.mark.parametrize("cni", ["flannel", "calico"])
def test_both_set_and_different_is_one_line(cni: str) -> None:
    found = errors(validate_inventory(three_nodes(kube_cni=cni, flannel_subnet_len=25, kube_node_cidr_mask_size=24)))
    assert found == ['ERROR all: flannel_subnet_len = 25: differs from kube_node_cidr_mask_size (24): both name each '
                     "node's pod range size; keep one of them"]


def test_the_alias_is_checked_as_the_node_range() -> None:
    found = checks.validate(three_nodes(flannel_subnet_len=15))
    assert [(f.level, f.variable) for f in found if f.level == "error"] == [("error", "flannel_subnet_len")]


# ---------------------------------------------------------------- derived values, as the playbooks get them

def test_node_facts() -> None:
    hostvars: dict[str, Any] = {
        "cp1": {**settings(), "ansible_host": "192.0.2.10",
                "ansible_facts": {"interfaces": ["lo", "eth0"], "default_ipv4": {"interface": "eth0"}}},
        "w1": {**settings(), "ansible_host": "192.0.2.21", "node_ip": "198.51.100.21",
               "ansible_facts": {"interfaces": ["lo", "ens3"], "default_ipv4": {"interface": "ens3"}}},
    }
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["w1"], "k8s_cluster": ["cp1", "w1"]}
    facts = derived.node_facts("w1", hostvars, groups)
    assert facts["node"] == {
        "name": "w1", "address": "198.51.100.21", "roles": ["worker"], "public_nic": "ens3",
        "etc_hosts": [{"name": "cp1", "address": "192.0.2.10"}, {"name": "w1", "address": "198.51.100.21"}],
        "package_repo_url": "https://pkgs.k8s.io/core:/stable:/v1.33", "pause_image": "registry.k8s.io/pause:3.10",
        "vip_interface": "eth0", "vip_priority": 0,
    }
    assert facts["cluster"] == {
        "first_control_plane": "cp1", "endpoint": "192.0.2.10:6443", "dns_address": "10.96.0.10",
        "node_cidr_mask_size": 24, "cni_iface": "", "nodes_without_public_nic": ["w1"], "public_nic_name": "eth0",
        "vip_router_id": None,
        "control_planes": [{"name": "cp1", "address": "192.0.2.10"}],
    }
    hostvars["w1"]["ansible_facts"]["interfaces"].append("eth0")
    assert derived.node_facts("cp1", hostvars, groups)["cluster"]["cni_iface"] == "eth0"


def test_node_facts_take_the_default_where_a_host_lacks_a_setting() -> None:
    hostvars = {"cp1": {"ansible_host": "192.0.2.10", "kube_apiserver_port": 8443}}
    facts = derived.node_facts("cp1", hostvars, {"kube_control_plane": ["cp1"], "k8s_cluster": ["cp1"]})
    assert facts["cluster"]["endpoint"] == "192.0.2.10:8443"
    assert facts["cluster"]["public_nic_name"] == "eth0"
    assert facts["node"]["public_nic"] == ""


@pytest.mark.parametrize(("text", "seconds"), [
    ("8760h", 8760 * 3600.0), ("2h30m", 9000.0), ("90s", 90.0), ("1.5h", 5400.0), ("8760h0m0s", 8760 * 3600.0),
    ("", None), ("1y", None), ("h", None), ("10", None), ("2h junk", None), (720, None),
])
def test_durations_are_read_as_go_writes_them(text: Any, seconds: float | None) -> None:
    assert contract.duration_seconds(text) == seconds


def test_a_ca_must_outlive_the_certificates_it_signs() -> None:
    assert checks.check_certificate_validity(settings(kube_certificate_validity="2h")) == []
    assert checks.check_certificate_validity(settings(kube_certificate_validity="2h",
                                                      kube_ca_certificate_validity="48h")) == []
    found = checks.check_certificate_validity(settings(kube_ca_certificate_validity="720h"))
    assert [(f.variable, f.value) for f in found] == [("kube_ca_certificate_validity", "720h")]
    assert "longer than kube_certificate_validity (8760h)" in found[0].message
    found = [f for f in checks.validate(three_nodes(kube_certificate_validity="0s")) if f.level == "error"]
    assert [f.variable for f in found] == ["kube_certificate_validity"]
    assert "positive duration" in found[0].message
