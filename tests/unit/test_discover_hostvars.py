"""host_vars planning: create, add, keep hand-written keys and comments, conflicts, unchanged on a second run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeboot.discover import hostvars as hv

VALUES = {"ansible_host": "10.0.0.11", "public_nic_mac": "52:54:00:12:34:56", "node_ip": "10.0.0.11"}
PATH = Path("inv/host_vars/node1.yml")


def test_new_file_has_a_header_and_quoted_values_in_a_fixed_order() -> None:
    plan = hv.update_text("", "node1", PATH, VALUES)
    assert plan.status == "create"
    assert plan.new_text.startswith("# host_vars for node1, written by `kubeboot discover`.\n")
    assert plan.new_text.splitlines()[-3:] == ['ansible_host: "10.0.0.11"', 'public_nic_mac: "52:54:00:12:34:56"',
                                               'node_ip: "10.0.0.11"']
    assert yaml.safe_load(plan.new_text) == VALUES
    assert "+++ inv/host_vars/node1.yml" in plan.diff() and "--- /dev/null" in plan.diff()


def test_all_digit_mac_stays_a_string() -> None:
    plan = hv.update_text("", "node1", PATH, {"public_nic_mac": "10:20:30:40:50:59"})
    assert yaml.safe_load(plan.new_text) == {"public_nic_mac": "10:20:30:40:50:59"}  # not a sexagesimal int


def test_second_run_with_the_same_values_is_unchanged() -> None:
    first = hv.update_text("", "node1", PATH, VALUES)
    again = hv.update_text(first.new_text, "node1", PATH, VALUES)
    assert again.status == "unchanged"
    assert again.new_text == first.new_text
    assert not again.changes


def test_equal_values_written_differently_are_unchanged() -> None:
    text = "ansible_host: 10.0.0.11\npublic_nic_mac: 52:54:00:AB:34:56\nnode_ip: '10.0.0.11'\n"
    assert hv.update_text(text, "node1", PATH, {**VALUES, "public_nic_mac": "52:54:00:ab:34:56"}).status \
        == "unchanged"


def test_unquoted_all_digit_mac_is_a_number_to_ansible_so_a_conflict() -> None:
    plan = hv.update_text("public_nic_mac: 52:54:00:12:34:56\n", "node1", PATH, {"public_nic_mac": "52:54:00:12:34:56"})
    assert plan.status == "conflict"  # YAML 1.1 (PyYAML, Ansible) reads a sexagesimal integer
    assert plan.new_text == 'public_nic_mac: "52:54:00:12:34:56"\n'


def test_operator_keys_order_and_comments_are_kept_and_missing_keys_appended() -> None:
    text = "# rack 4, top\nnode_labels:\n  disk: ssd  # fast\nkubelet_max_pods: 200"
    plan = hv.update_text(text, "node1", PATH, VALUES)
    assert plan.status == "update"
    assert not plan.needs_confirmation
    assert plan.new_text.startswith("# rack 4, top\nnode_labels:\n  disk: ssd  # fast\nkubelet_max_pods: 200\n")
    data = yaml.safe_load(plan.new_text)
    assert list(data) == ["node_labels", "kubelet_max_pods", "ansible_host", "public_nic_mac", "node_ip"]
    assert [c.key for c in plan.changes] == ["ansible_host", "public_nic_mac", "node_ip"]
    assert all(c.old is None for c in plan.changes)


def test_a_different_hand_written_value_is_a_conflict_replaced_in_place() -> None:
    text = "# mine\nnode_ip: 10.9.9.9  # the storage network\nfoo: bar\n"
    plan = hv.update_text(text, "node1", PATH, {"node_ip": "10.0.0.11"})
    assert plan.status == "conflict" and plan.needs_confirmation
    assert plan.conflicts == ("node_ip",)
    assert plan.changes == (hv.Change("node_ip", "10.9.9.9", "10.0.0.11"),)
    assert plan.new_text == '# mine\nnode_ip: "10.0.0.11"  # the storage network\nfoo: bar\n'
    diff = plan.diff()
    assert "-node_ip: 10.9.9.9  # the storage network" in diff
    assert '+node_ip: "10.0.0.11"  # the storage network' in diff


def test_a_value_not_on_one_line_is_left_for_the_operator() -> None:
    text = "node_ip: >-\n  10.9.9.9\n"
    with pytest.raises(hv.HostVarsError, match="node_ip is not a one-line"):
        hv.update_text(text, "node1", PATH, {"node_ip": "10.0.0.11"})


def test_broken_yaml_and_non_mappings_are_reported() -> None:
    with pytest.raises(hv.HostVarsError, match="line 3 is not valid YAML"):
        hv.update_text("a: 1\nb: [\n", "node1", PATH, VALUES)
    with pytest.raises(hv.HostVarsError, match="not a YAML mapping"):
        hv.update_text("- a\n- b\n", "node1", PATH, VALUES)


def test_only_managed_keys_are_written() -> None:
    with pytest.raises(ValueError, match="does not manage"):
        hv.update_text("", "node1", PATH, {"ansible_user": "root"})


def test_paths_read_and_atomic_write(tmp_path: Path) -> None:
    assert hv.host_vars_path(tmp_path, "node1") == tmp_path / "host_vars/node1.yml"
    hosts = tmp_path / "hosts.yml"
    assert hv.host_vars_path(hosts, "node1") == tmp_path / "host_vars/node1.yml"
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars/node2.yaml").write_text("foo: 1\n")
    assert hv.host_vars_path(tmp_path, "node2") == tmp_path / "host_vars/node2.yaml"
    assert hv.read_existing(tmp_path / "host_vars/none.yml") == ("", {})
    assert hv.read_existing(tmp_path / "host_vars/node2.yaml") == ("foo: 1\n", {"foo": 1})
    (tmp_path / "host_vars/node3").mkdir()
    with pytest.raises(hv.HostVarsError, match="is a directory"):
        hv.read_existing(tmp_path / "host_vars/node3")

    target = tmp_path / "host_vars/node2.yaml"
    target.chmod(0o600)
    plan = hv.update_text(target.read_text(), "node2", target, VALUES)
    hv.write(plan)
    assert target.read_text() == plan.new_text
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "host_vars").iterdir()) == ["node2.yaml", "node3"]  # no temp left
    before = target.stat().st_mtime_ns
    hv.write(hv.update_text(target.read_text(), "node2", target, VALUES))  # unchanged: not even rewritten
    assert target.stat().st_mtime_ns == before
