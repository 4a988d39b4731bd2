"""kubeadm's local etcd as the backup and restore roles see it: its static pod's flags, what `etcdctl member add`
and `snapshot status` print, the manifest of a member that joins the restored cluster, and which snapshots to prune.

Pure functions over text; the roles run the commands (plugins/filter/kubeboot_etcd.py exposes these as filters).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_FLAG = re.compile(r"^--([A-Za-z0-9-]+)(?:=(.*))?$")
_MEMBER_ADD_LINE = re.compile(r'^(ETCD_[A-Z_]+)="(.*)"$')
_CLUSTER_LINE = re.compile(r"^(\s*-\s*)--initial-cluster=.*$")
_STATE_LINE = re.compile(r"^\s*-\s*--initial-cluster-state=.*$")


class EtcdError(ValueError):
    """Text that is not what kubeadm or etcdctl write."""


def manifest_flags(text: str) -> dict[str, str]:
    """The `--flag=value` arguments of the etcd container of kubeadm's static pod manifest (etcd.yaml)."""
    try:
        pod = yaml.safe_load(text)
        containers = pod["spec"]["containers"]
    except (yaml.YAMLError, TypeError, KeyError) as exc:
        raise EtcdError(f"not a static pod manifest: {exc}") from exc
    etcd = next((c for c in containers if c.get("name") == "etcd"), containers[0] if containers else None)
    if etcd is None:
        raise EtcdError("the manifest has no container")
    flags: dict[str, str] = {}
    for argument in [*etcd.get("command", []), *etcd.get("args", [])]:
        match = _FLAG.match(str(argument))
        if match:
            flags[match[1]] = match[2] if match[2] is not None else "true"
    for needed in ("name", "initial-advertise-peer-urls"):
        if needed not in flags:
            raise EtcdError(f"the etcd container has no --{needed}")
    flags.setdefault("data-dir", "/var/lib/etcd")
    return flags


def member_add(text: str) -> dict[str, str]:
    """The ETCD_* lines `etcdctl member add` prints, by name (ETCD_INITIAL_CLUSTER is the one a new member needs)."""
    found = {m[1]: m[2] for m in (_MEMBER_ADD_LINE.match(line.strip()) for line in text.splitlines()) if m}
    if "ETCD_INITIAL_CLUSTER" not in found:
        raise EtcdError("etcdctl member add printed no ETCD_INITIAL_CLUSTER")
    return found


def rejoin_manifest(text: str, initial_cluster: str) -> str:
    """kubeadm's etcd manifest of a member joining an existing cluster: `--initial-cluster` set to the members
    `member add` listed, and `--initial-cluster-state=existing` (added after it when missing)."""
    if not initial_cluster or any(c.isspace() for c in initial_cluster):
        raise EtcdError(f"not an initial cluster list: {initial_cluster!r}")
    lines: list[str] = []
    replaced = False
    for line in text.splitlines():
        if _STATE_LINE.match(line):
            continue
        match = _CLUSTER_LINE.match(line)
        if match:
            lines.append(f"{match[1]}--initial-cluster={initial_cluster}")
            lines.append(f"{match[1]}--initial-cluster-state=existing")
            replaced = True
            continue
        lines.append(line)
    if not replaced:
        raise EtcdError("the etcd manifest has no --initial-cluster line")
    return "\n".join(lines) + "\n"


def snapshot_status(text: str) -> dict[str, Any]:
    """`snapshot status -w json` (etcdutl or etcdctl): hash, revision, keys and size."""
    try:
        data = json.loads(text.strip().splitlines()[-1])
        return {"hash": f"{int(data['hash']):08x}", "revision": int(data["revision"]),
                "total_keys": int(data["totalKey"]), "size": int(data["totalSize"])}
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise EtcdError(f"not the output of snapshot status -w json: {text[:200]!r}") from exc


def to_prune(paths: list[str], keep: int) -> list[str]:
    """The snapshots beyond the `keep` newest (their names are UTC times, so the newest sort last), oldest first."""
    if keep < 1:
        raise EtcdError(f"keep must be at least 1, not {keep}")
    ordered = sorted(paths, key=lambda p: p.rsplit("/", 1)[-1])
    return ordered[:-keep] if len(ordered) > keep else []


def member_names(text: str) -> list[str]:
    """The started members' names in `etcdctl member list -w json`."""
    try:
        members = json.loads(text)["members"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EtcdError(f"not the output of member list -w json: {text[:200]!r}") from exc
    return sorted(str(m.get("name", "")) for m in members if m.get("name"))


def _majority(voters: int) -> int:
    return voters // 2 + 1


def quorum_refusal(members: Any, healthy: Any, removing: Any, whole_cluster: bool = False) -> str:
    """Why a reset that removes the control planes `removing` from etcd, one after another in that order, must be
    refused; "" when it may go on.

    members: the `members` of etcd's member list (each a mapping with `name` and, for a learner, `isLearner`);
    healthy: the names of the members whose /health answered true; whole_cluster: every control plane is reset (the
    cluster goes, quorum does not matter). Learners do not vote: removing one never breaks quorum. Refused: etcd has
    no quorum now (a member cannot be removed), a step leaves no member (the last control plane), or a step leaves
    fewer healthy voters than a majority of the voters that stay. The answer is one line naming the host and the way
    out.
    """
    if whole_cluster:
        return ""
    try:
        listed = [(str(m.get("name") or ""), bool(m.get("isLearner", False))) for m in members]
    except (AttributeError, TypeError) as exc:
        raise EtcdError(f"not etcd's member list: {str(members)[:200]!r}") from exc
    names = {name for name, _ in listed if name}
    voters = [name for name, learner in listed if name and not learner]
    well = {str(name) for name in healthy}
    leaving = [str(name) for name in removing if str(name) in names]
    if not leaving:
        return ""
    way_out = ("bring the unhealthy members back first, or reset the whole cluster (playbooks/reset.yml "
               "-e reset_confirm=true without --limit). Nothing was reset.")
    standing = [name for name in voters if name in well]
    if len(standing) < _majority(len(voters)):
        return (f"{leaving[0]}: not reset: etcd has no quorum ({len(standing)} of {len(voters)} members healthy"
                f"{': ' + ', '.join(sorted(standing)) if standing else ''}; a member cannot leave it now); "
                f"{way_out}")
    staying = list(voters)
    for name in leaving:
        if name not in staying:  # a learner
            continue
        staying.remove(name)
        if not staying:
            return (f"{name}: not reset: it is the last etcd member (the last control plane), so resetting it "
                    f"ends the cluster; reset the whole cluster (playbooks/reset.yml -e reset_confirm=true without "
                    f"--limit), or join another control plane first. Nothing was reset.")
        up = [member for member in staying if member in well]
        if len(up) < _majority(len(staying)):
            return (f"{name}: not reset: etcd would lose its quorum (after it leaves, {len(up)} of the "
                    f"{len(staying)} members that stay are healthy, fewer than the {_majority(len(staying))} a "
                    f"majority needs); {way_out}")
    return ""
