"""NFS exports and the PersistentVolumes that point at them.

Pure functions shared by the validator (kubeboot.inventory.checks) and the playbooks (filters in
plugins/filter/kubeboot_nfs.py), so both see the same defaults: the clients of an export default to every cluster
node's address, the options to nfs_export_options, and every export gets a PersistentVolume and a claim bound to it
unless its `volume` is false.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubeboot import contract
from kubeboot.contract import CLUSTER, NFS_SERVER
from kubeboot.derived import host_address

DEFAULT_EXPORT_OPTIONS = "rw,sync,no_subtree_check,no_root_squash"
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
# exports(5) options that cancel each other: an export may carry one of each pair.
CONTRADICTIONS = (
    ("rw", "ro"), ("sync", "async"), ("root_squash", "no_root_squash"), ("all_squash", "no_all_squash"),
    ("secure", "insecure"), ("subtree_check", "no_subtree_check"), ("wdelay", "no_wdelay"), ("hide", "nohide"),
)
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
VOLUME_SETTINGS = ("nfs_volume_capacity", "nfs_volume_access_mode", "nfs_volume_namespace",
                   "nfs_volume_mount_options")


def split_options(raw: Any) -> list[str] | None:
    """exports(5) or mount options written as "a,b" or as a list -> ["a", "b"]; None when neither."""
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, list) and all(isinstance(item, (str, int)) for item in raw):
        items = [str(item) for item in raw]
    else:
        return None
    return [item.strip() for item in items if item.strip()]


def contradiction(options: Iterable[str]) -> str | None:
    """The first pair of options that cancel each other, as a problem, or None."""
    names = {option.partition("=")[0] for option in options}
    for first, second in CONTRADICTIONS:
        if first in names and second in names:
            return f"has both {first} and {second}: keep one"
    return None


def normal_path(value: Any) -> str | None:
    """The problem with an absolute path of a directory, or None."""
    if not isinstance(value, str) or not value.startswith("/"):
        return "must be an absolute path (starting with /)"
    if re.search(r"\s", value):
        return "must not contain whitespace"
    if value == "/":
        return "must be a directory below /, not / itself"
    if posixpath.normpath(value) != value:
        return f"must be written plainly (no trailing /, //, . or ..): write {posixpath.normpath(value)}"
    return None


def inside(path: str, parent: str) -> bool:
    """Whether `path` is `parent` or below it."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def volume_name(server: str, path: str) -> str:
    """A PersistentVolume name for an export: the server's name and the path, e.g. nfs1-nfs-mongodb."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{server}-{path}".lower()).strip("-")
    return slug[:253].rstrip("-")


def cluster_addresses(groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any]) -> list[str]:
    """Every cluster node's address (node_ip, else ansible_host, else its name), in inventory order, once each."""
    return list(dict.fromkeys(host_address(hostvars, name) for name in groups.get(CLUSTER, [])))


def settings_of(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster-wide nfs_ settings from one host's variables, the contract's defaults where a host lacks them."""
    defaults = contract.defaults()
    return {name: variables.get(name, value) for name, value in defaults.items() if name.startswith("nfs_")}


def server_exports(exports: Any) -> list[dict[str, Any]]:
    """nfs_exports of a host as the nfs_server role takes them: the volume's directory (when it lies below the
    export and is not listed) added to `directories`, relative to the export; the `volume` key left out."""
    result = []
    for export in exports if isinstance(exports, list) else []:
        item = {key: value for key, value in export.items() if key != "volume"}
        directories = [dict(d) for d in export.get("directories") or []]
        volume = export.get("volume")
        if isinstance(volume, dict) and isinstance(volume.get("path"), str) and volume["path"] != export["path"] \
                and inside(volume["path"], export["path"]):
            relative = volume["path"][len(export["path"].rstrip("/")) + 1:]
            if relative not in [str(d.get("path")) for d in directories]:
                directories.append({"path": relative})
        if directories:
            item["directories"] = directories
        result.append(item)
    return result


def _volume(base: Mapping[str, Any], settings: Mapping[str, Any], name: str, server: str,
            path: str) -> dict[str, Any]:
    options = base.get("mount_options", settings["nfs_volume_mount_options"])
    access_mode = str(base.get("access_mode", settings["nfs_volume_access_mode"]))
    return {
        "name": str(base.get("name") or name),
        "server": server,
        "path": str(base.get("path") or path),
        "capacity": str(base.get("capacity", settings["nfs_volume_capacity"])),
        "access_mode": access_mode,
        "namespace": str(base.get("namespace", settings["nfs_volume_namespace"])),
        "claim": str(base.get("claim") or base.get("name") or name),
        "mount_options": split_options(options) or [],
        "read_only": access_mode == "ReadOnlyMany",
    }


def volumes(groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any],
            settings_host: str) -> list[dict[str, Any]]:
    """Every PersistentVolume the inventory declares: one per export of an nfs_server host (unless its `volume` is
    false), then nfs_volumes (exports of servers kubeboot does not manage). Cluster-wide settings come from the
    variables of `settings_host`."""
    settings = settings_of(hostvars.get(settings_host, {}))
    found = []
    for server in groups.get(NFS_SERVER, []):
        variables = hostvars.get(server, {})
        exports = variables.get("nfs_exports", [])
        for export in exports if isinstance(exports, list) else []:
            volume = export.get("volume", {})
            if volume is False:
                continue
            path = str(export["path"])
            found.append(_volume(volume if isinstance(volume, dict) else {}, settings, volume_name(server, path),
                                 host_address(hostvars, server), path))
    for entry in settings["nfs_volumes"] or []:
        found.append(_volume(entry, settings, str(entry.get("name", "")), str(entry.get("server", "")),
                             str(entry.get("path", ""))))
    return found


def in_use(groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any], settings_host: str) -> bool:
    """Whether the inventory declares anything NFS: an nfs_server host or an nfs_volumes entry."""
    settings = settings_of(hostvars.get(settings_host, {}))
    return bool(list(groups.get(NFS_SERVER, []))) or bool(settings["nfs_volumes"])
