"""NFS: the validator's export and volume rules, the derived volumes, and what the NFS roles render.

The PersistentVolumes and claims of roles/nfs_volumes are validated with kubernetes-validate against the schema of
a supported Kubernetes version; the exports file of roles/nfs_server is parsed back line by line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml

from kubeboot import nfs
from kubeboot.contract import defaults as cluster_defaults
from kubeboot.inventory import checks
from kubeboot.inventory.model import Host, Inventory

REPO = Path(__file__).resolve().parents[2]
SCHEMA_VERSIONS = ["1.31.0", "1.33.0"]
NODES = ["192.0.2.10", "192.0.2.21"]


def errors(found: list[Any]) -> list[str]:
    return [f.variable for f in found if f.level == "error"]


def export_errors(exports: Any, clients: list[str] | None = None) -> list[str]:
    return errors(checks.check_nfs_exports("nfs1", exports, False, NODES if clients is None else clients))


@pytest.mark.parametrize(("exports", "variable"), [
    ([{"path": "nfs_mongodb"}], "nfs_exports[0].path"),
    ([{"path": "/nfs_mongodb/"}], "nfs_exports[0].path"),
    ([{"path": "/srv/../etc"}], "nfs_exports[0].path"),
    ([{"path": "/"}], "nfs_exports[0].path"),
    ([{"path": "/nfs"}, {"path": "/nfs/mongodb"}], "nfs_exports[1].path"),
    ([{"path": "/nfs/mongodb"}, {"path": "/nfs"}], "nfs_exports[1].path"),
    ([{"path": "/nfs", "options": "rw,ro"}], "nfs_exports[0].options"),
    ([{"path": "/nfs", "options": "rw,sync,async"}], "nfs_exports[0].options"),
    ([{"path": "/nfs", "options": ["root_squash", "no_root_squash"]}], "nfs_exports[0].options"),
    ([{"path": "/nfs", "clients": [{"host": "192.0.2.0/24", "options": "rw,async,sync"}]}],
     "nfs_exports[0].clients[0].options"),
    ([{"path": "/nfs", "clients": [{"host": "192.0.2.1/24"}]}], "nfs_exports[0].clients[0].host"),
    ([{"path": "/nfs", "clients": [{"host": "bad host"}]}], "nfs_exports[0].clients[0].host"),
    ([{"path": "/nfs", "clients": [{"host": "192.0.2.5"}, {"host": "192.0.2.5"}]}],
     "nfs_exports[0].clients[1].host"),
    ([{"path": "/nfs", "clients": []}], "nfs_exports[0].clients"),
    ([{"path": "/nfs", "mode": 493}], "nfs_exports[0].mode"),
    ([{"path": "/nfs", "owner": "Mongo DB"}], "nfs_exports[0].owner"),
    ([{"path": "/nfs", "directories": [{"path": "/abs"}]}], "nfs_exports[0].directories[0].path"),
    ([{"path": "/nfs", "directories": [{"path": "../up"}]}], "nfs_exports[0].directories[0].path"),
    ([{"path": "/nfs", "directories": [{"path": "db", "mode": "rwx"}]}], "nfs_exports[0].directories[0].mode"),
    ([{"path": "/nfs", "volume": {"path": "/other"}}], "nfs_exports[0].volume.path"),
    ([{"path": "/nfs", "volume": {"capacity": "ten gigs"}}], "nfs_exports[0].volume.capacity"),
    ([{"path": "/nfs", "volume": {"access_mode": "RWX"}}], "nfs_exports[0].volume.access_mode"),
    ([{"path": "/nfs", "volume": {"name": "Mongo_DB"}}], "nfs_exports[0].volume.name"),
    ([{"path": "/nfs", "volume": {"namespace": "a.b"}}], "nfs_exports[0].volume.namespace"),
    ([{"path": "/nfs", "volume": {"size": "1Gi"}}], "nfs_exports[0].volume.size"),
    ([{"path": "/nfs", "volume": "yes"}], "nfs_exports[0].volume"),
    ([{"path": "/nfs", "export_options": "rw"}], "nfs_exports[0].export_options"),
])
def test_bad_exports_are_refused(exports: Any, variable: str) -> None:
    assert variable in export_errors(exports)


def test_overlap_names_both_exports() -> None:
    found = checks.check_nfs_exports("nfs1", [{"path": "/nfs"}, {"path": "/nfs/mongodb"}], False, NODES)
    assert [f.line() for f in found] == [
        'ERROR nfs1: nfs_exports[1].path = "/nfs/mongodb": is inside nfs_exports[0].path /nfs: exports must not '
        "overlap; export the outer directory only, or move one"]
    assert export_errors([{"path": "/nfs"}, {"path": "/nfsdata"}]) == []  # a common prefix is no overlap


def test_contradiction_message_names_the_pair() -> None:
    found = checks.check_nfs_exports("nfs1", [{"path": "/nfs", "options": "rw,sync,async"}], False, NODES)
    assert found[0].message == "has both sync and async: keep one; see man 5 exports"


def test_default_clients_need_cluster_nodes() -> None:
    assert export_errors([{"path": "/nfs_mongodb"}]) == []
    assert export_errors([{"path": "/nfs_mongodb"}], clients=[]) == ["nfs_exports[0].clients"]


def test_world_no_root_squash_needs_the_switch() -> None:
    exports = [{"path": "/nfs", "clients": [{"host": "*"}]}]  # default options carry no_root_squash
    assert export_errors(exports) == ["nfs_exports[0].options"]
    assert errors(checks.check_nfs_exports("nfs1", exports, True, NODES)) == []
    assert export_errors([{"path": "/nfs", "clients": [{"host": "*", "options": "ro,root_squash"}]}]) == []


def test_operators_mongodb_export_is_accepted() -> None:
    exports = [{"path": "/nfs_mongodb", "directories": [{"path": "mongodb", "owner": "999", "group": 999,
                                                         "mode": "0700"}],
                "volume": {"name": "mongodb", "path": "/nfs_mongodb/mongodb", "capacity": "20Gi",
                           "namespace": "licode", "mount_options": ["hard", "nfsvers=4.1"]}}]
    assert export_errors(exports) == []


@pytest.mark.parametrize(("settings", "variable"), [
    ({"nfs_export_options": "rw,ro"}, "nfs_export_options"),
    ({"nfs_volume_capacity": "lots"}, "nfs_volume_capacity"),
    ({"nfs_volume_access_mode": "ReadWriteAll"}, "nfs_volume_access_mode"),
    ({"nfs_volume_namespace": "Licode"}, "nfs_volume_namespace"),
    ({"nfs_volume_mount_options": {"hard": True}}, "nfs_volume_mount_options"),
    ({"nfs_volumes": {"name": "x"}}, "nfs_volumes"),
    ({"nfs_volumes": [{"name": "mongodb", "path": "/nfs"}]}, "nfs_volumes[0].server"),
    ({"nfs_volumes": [{"name": "mongodb", "server": "nas 1", "path": "/nfs"}]}, "nfs_volumes[0].server"),
    ({"nfs_volumes": [{"name": "mongodb", "server": "192.0.2.50", "path": "nfs"}]}, "nfs_volumes[0].path"),
    ({"nfs_volumes": [{"name": "mongodb", "server": "192.0.2.50", "path": "/nfs", "options": "rw"}]},
     "nfs_volumes[0].options"),
])
def test_bad_nfs_settings_are_refused(settings: dict[str, Any], variable: str) -> None:
    assert variable in errors(checks.check_nfs_settings({**cluster_defaults(), **settings}))


def test_default_nfs_settings_are_valid() -> None:
    assert checks.check_nfs_settings(cluster_defaults()) == []


def inventory(exports: list[dict[str, Any]], **settings: Any) -> Inventory:
    cluster = {**cluster_defaults(), **settings}
    hosts = {"cp1": Host("cp1", ("kube_control_plane", "k8s_cluster"), {**cluster, "ansible_host": "192.0.2.10"}),
             "w1": Host("w1", ("kube_node", "k8s_cluster"), {**cluster, "ansible_host": "192.0.2.21",
                                                           "node_ip": "10.1.0.21"}),
             "nfs1": Host("nfs1", ("nfs_server",), {**cluster, "ansible_host": "192.0.2.40", "nfs_exports": exports})}
    groups = {"kube_control_plane": ["cp1"], "kube_node": ["w1"], "k8s_cluster": ["cp1", "w1"], "nfs_server": ["nfs1"]}
    return Inventory(hosts=hosts, groups=groups, cluster=cluster)


def test_volume_names_and_claims_are_unique() -> None:
    external = [{"name": "mongodb", "server": "192.0.2.50", "path": "/data"}]
    found = checks.validate(inventory([{"path": "/nfs_mongodb", "volume": {"name": "mongodb"}}], nfs_volumes=external))
    assert [(f.variable, f.value) for f in found if f.level == "error"] == [
        ("nfs_exports", "mongodb"), ("nfs_exports", "default/mongodb")]
    found = checks.validate(inventory([{"path": "/a", "volume": {"claim": "data"}},
                                       {"path": "/b", "volume": {"claim": "data", "namespace": "other"}}]))
    assert [f for f in found if f.level == "error"] == []


def test_nfsv3_mounts_need_nfsv3() -> None:
    exports = [{"path": "/nfs", "volume": {"mount_options": ["hard", "nfsvers=3"]}}]
    found = [f for f in checks.validate(inventory(exports)) if f.level == "error"]
    assert [(f.host, f.variable) for f in found] == [("nfs1", "nfs_exports")]
    assert "set nfs_enable_v3: true" in found[0].message
    assert [f for f in checks.validate(inventory(exports, nfs_enable_v3=True)) if f.level == "error"] == []


def test_volumes_derived_from_exports_and_nfs_volumes() -> None:
    inv = inventory([{"path": "/nfs_mongodb", "volume": {"name": "mongodb", "path": "/nfs_mongodb/mongodb",
                                                         "capacity": "20Gi", "namespace": "licode"}},
                     {"path": "/srv/Media_Files"},
                     {"path": "/srv/scratch", "volume": False}],
                    nfs_volumes=[{"name": "nas", "server": "nas.example.org", "path": "/export/nas",
                                  "access_mode": "ReadOnlyMany", "claim": "nas-ro", "mount_options": "hard,ro"}])
    hostvars = {name: host.variables for name, host in inv.hosts.items()}
    volumes = nfs.volumes(inv.groups, hostvars, "cp1")
    assert volumes == [
        {"name": "mongodb", "server": "192.0.2.40", "path": "/nfs_mongodb/mongodb", "capacity": "20Gi",
         "access_mode": "ReadWriteOnce", "namespace": "licode", "claim": "mongodb",
         "mount_options": ["hard", "nfsvers=4.2", "noatime"], "read_only": False},
        {"name": "nfs1-srv-media-files", "server": "192.0.2.40", "path": "/srv/Media_Files", "capacity": "10Gi",
         "access_mode": "ReadWriteOnce", "namespace": "default", "claim": "nfs1-srv-media-files",
         "mount_options": ["hard", "nfsvers=4.2", "noatime"], "read_only": False},
        {"name": "nas", "server": "nas.example.org", "path": "/export/nas", "capacity": "10Gi",
         "access_mode": "ReadOnlyMany", "namespace": "default", "claim": "nas-ro", "mount_options": ["hard", "ro"],
         "read_only": True},
    ]
    assert nfs.cluster_addresses(inv.groups, hostvars) == ["192.0.2.10", "10.1.0.21"]  # node_ip wins
    assert nfs.in_use(inv.groups, hostvars, "cp1")
    assert not nfs.in_use({"k8s_cluster": ["cp1"]}, {"cp1": {}}, "cp1")


def test_server_exports_create_the_volume_directory() -> None:
    exports = [{"path": "/nfs_mongodb", "volume": {"path": "/nfs_mongodb/mongodb/data"}},
               {"path": "/nfs_media", "directories": [{"path": "media", "mode": "0775"}],
                "volume": {"path": "/nfs_media/media"}},
               {"path": "/nfs_plain", "volume": False}]
    assert nfs.server_exports(exports) == [
        {"path": "/nfs_mongodb", "directories": [{"path": "mongodb/data"}]},
        {"path": "/nfs_media", "directories": [{"path": "media", "mode": "0775"}]},
        {"path": "/nfs_plain"},
    ]


def render(role: str, template: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "roles" / role / "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    env.filters["community.general.dict_kv"] = lambda value, key: {key: value}
    return env.get_template(template).render(ansible_managed="Ansible managed", inventory_hostname="nfs1",
                                             **variables)


def server_defaults(**over: Any) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((REPO / "roles/nfs_server/defaults/main.yml").read_text())
    values.update(over)
    return values


def test_exports_file_lines() -> None:
    text = render("nfs_server", "kubeboot.exports.j2", server_defaults(
        nfs_server_default_clients=NODES,
        nfs_server_exports=[
            {"path": "/nfs_mongodb", "directories": [{"path": "mongodb"}]},
            {"path": "/srv/media", "options": ["rw", "async"],
             "clients": [{"host": "192.0.2.0/24"}, {"host": "*.example.org", "options": "ro, sync"}]},
        ]))
    joined = re.sub(r"\\\n\s*", "", text)  # exports(5) continuation lines
    lines = [line.split() for line in joined.splitlines() if line and not line.startswith("#")]
    assert lines == [
        ["/nfs_mongodb", "192.0.2.10(rw,sync,no_subtree_check,no_root_squash)",
         "192.0.2.21(rw,sync,no_subtree_check,no_root_squash)"],
        ["/srv/media", "192.0.2.0/24(rw,async)", "*.example.org(ro,sync)"],
    ]


@pytest.mark.parametrize(("enable_v3", "expected"), [(False, "vers3=n"), (True, "vers3=y")])
def test_nfs_conf_chooses_the_versions(enable_v3: bool, expected: str) -> None:
    text = render("nfs_server", "kubeboot-nfs.conf.j2", server_defaults(nfs_server_enable_v3=enable_v3))
    assert expected in text.splitlines() and "vers4=y" in text.splitlines()


@pytest.mark.parametrize("schema", SCHEMA_VERSIONS)
def test_volume_manifests_are_valid_and_bound_both_ways(schema: str) -> None:
    inv = inventory([{"path": "/nfs_mongodb", "volume": {"name": "mongodb", "path": "/nfs_mongodb/mongodb",
                                                         "namespace": "licode"}}],
                    nfs_volumes=[{"name": "nas", "server": "nas.example.org", "path": "/export",
                                  "access_mode": "ReadOnlyMany"}])
    volumes = nfs.volumes(inv.groups, {n: h.variables for n, h in inv.hosts.items()}, "cp1")
    docs = [d for d in yaml.safe_load_all(render("nfs_volumes", "nfs-volumes.yaml.j2",
                                                 {"nfs_volumes_list": volumes})) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, schema, strict=True)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "licode"), ("PersistentVolume", "mongodb"), ("PersistentVolumeClaim", "mongodb"),
        ("PersistentVolume", "nas"), ("PersistentVolumeClaim", "nas")]
    pvs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolume"}
    pvcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    mongodb = pvs["mongodb"]["spec"]
    assert mongodb["nfs"] == {"server": "192.0.2.40", "path": "/nfs_mongodb/mongodb", "readOnly": False}
    assert mongodb["persistentVolumeReclaimPolicy"] == "Retain"
    assert "hard" in mongodb["mountOptions"] and "nfsvers=4.2" in mongodb["mountOptions"]
    assert pvs["nas"]["spec"]["nfs"]["readOnly"] is True
    for name, pv in pvs.items():
        claim = pvcs[pv["spec"]["claimRef"]["name"]]
        assert claim["metadata"]["namespace"] == pv["spec"]["claimRef"]["namespace"]
        assert claim["spec"]["volumeName"] == name
        assert claim["spec"]["accessModes"] == pv["spec"]["accessModes"]
        assert claim["spec"]["resources"]["requests"]["storage"] == pv["spec"]["capacity"]["storage"]
        assert claim["spec"]["storageClassName"] == pv["spec"]["storageClassName"] == ""


def test_mongodb_example_uses_the_sample_claim() -> None:
    example = yaml.safe_load((REPO / "roles/nfs_volumes/files/mongodb-example.yaml").read_text())
    kubernetes_validate.validate(example, SCHEMA_VERSIONS[-1], strict=True)
    sample = yaml.safe_load((REPO / "inventory/sample/host_vars/nfs1.yml").read_text())
    volume = next(e["volume"] for e in sample["nfs_exports"] if e.get("volume", {}).get("name") == "mongodb")
    claim = example["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert (example["metadata"]["namespace"], claim) == (volume["namespace"], volume["name"])
