"""Decisions of playbooks/upgrade.yml, on what the cluster and each node report (filters: kubeboot_upgrade_*).

- preflight: the version policy (one minor at a time, no downgrade), every node Ready, no kubelet newer than the
  API servers; each problem one line naming what to fix.
- node_steps: what is still to do on one node for the target, read from the node itself (so that a re-run after a
  stop continues where it stopped and never repeats `kubeadm upgrade apply` where the control plane runs the target).
- drain_blockers: the pods (and their PodDisruptionBudgets) that kept `kubectl drain` from finishing.
- versions_report: every node's kubelet, kubeadm and kubectl and every control-plane component, against the target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def parse(text: Any) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "v1.33.1", "1.33.1", "1.33.1-1.1", "Kubernetes v1.33.1"; None when there is none."""
    found = _VERSION.search(str(text or ""))
    return (int(found.group(1)), int(found.group(2)), int(found.group(3))) if found else None


def show(version: tuple[int, int, int] | None) -> str:
    return "v" + ".".join(map(str, version)) if version else "unknown"


def image_version(image: Any) -> tuple[int, int, int] | None:
    """The version of an image reference's tag (registry.k8s.io/kube-apiserver:v1.33.1)."""
    tag = str(image or "").rsplit("/", 1)[-1].partition(":")[2].partition("@")[0]
    return parse(tag)


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _node_rows(nodes: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in nodes.get("items") or []:
        info = (item.get("status") or {}).get("nodeInfo") or {}
        rows.append({"name": (item.get("metadata") or {}).get("name", "?"), "ready": _ready(item),
                     "kubelet": parse(info.get("kubeletVersion")),
                     "unschedulable": bool((item.get("spec") or {}).get("unschedulable"))})
    return rows


def _component_versions(pods: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The control-plane static pods: component, node and the version of its image."""
    rows = []
    for pod in pods.get("items") or []:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("component")
        if component not in COMPONENTS:
            continue
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        rows.append({"component": component, "node": (pod.get("spec") or {}).get("nodeName", "?"),
                     "version": image_version(containers[0].get("image"))})
    return rows


def preflight(target: str, nodes: Mapping[str, Any], pods: Mapping[str, Any], inventory_nodes: Iterable[str],
              first: str) -> list[str]:
    """The refusals before any node changes, each one line (empty: the upgrade may go on).

    nodes and pods: `kubectl get nodes -o json` and `kubectl -n kube-system get pods -o json` read on the first
    control plane; inventory_nodes: the cluster nodes of the inventory.
    """
    wanted = parse(target)
    if wanted is None or not re.fullmatch(r"v?\d+\.\d+\.\d+", str(target).strip()):
        return [f"{first}: kube_version = {target!r} is not a full patch version; give the target such as "
                "-e kube_version=1.33.5"]
    problems = []
    rows = {row["name"]: row for row in _node_rows(nodes)}
    servers = [row["version"] for row in _component_versions(pods)
               if row["component"] == "kube-apiserver" and row["version"]]
    if not servers:
        return [f"{first}: no kube-apiserver static pod with a version was found in kube-system; the cluster must "
                "run (site.yml) before it can be upgraded"]
    oldest, newest = min(servers), max(servers)
    if wanted < newest:
        problems.append(f"{first}: kube_version = {target} is older than the cluster's API server ({show(newest)}); "
                        "downgrades are not supported: give a version at or above it")
    elif wanted[:2] > (oldest[0], oldest[1] + 1):
        problems.append(f"{first}: kube_version = {target} skips a minor: the API servers run {show(oldest)}; "
                        f"upgrade one minor at a time (first to the latest 1.{oldest[1] + 1}.x)")
    if problems:
        return problems
    for name in inventory_nodes:
        row = rows.get(name)
        if row is None:
            problems.append(f"{name}: is not a node of the cluster (kubectl get nodes); join it with site.yml "
                            "first, or leave it out of the inventory")
            continue
        if not row["ready"]:
            problems.append(f"{name}: is not Ready; every node must be Ready before an upgrade (kubectl describe "
                            f"node {name})")
        if row["kubelet"] and row["kubelet"] > newest:
            problems.append(f"{name}: its kubelet ({show(row['kubelet'])}) is newer than the API servers "
                            f"({show(newest)}); kubeadm supports no such skew: reinstall the kubelet at "
                            f"{show(newest)}")
        elif row["kubelet"] and row["kubelet"] > wanted:
            problems.append(f"{name}: its kubelet ({show(row['kubelet'])}) is newer than kube_version = {target}; "
                            "downgrades are not supported")
    return problems


def node_steps(target: str, local: Mapping[str, Any], node: Mapping[str, Any], role: str) -> dict[str, Any]:
    """What is left to do on one node (role: first, control_plane or worker).

    local: what the node reports of itself: kubeadm, kubelet, kubectl (their version output); apiserver (the image
    of its kube-apiserver manifest, "" on a worker); cordoned (the upgrade's marker that it cordoned the node);
    on the first control plane also applied (the version its last successful `kubeadm upgrade apply` reached),
    cluster (kubeadm-config's kubernetesVersion) and proxy (kube-proxy's image, "" without kube-proxy);
    unheld (the names among kubeadm, kubelet and kubectl whose dpkg selection is not hold, space-separated: a run
    stopped between a package's install and its hold leaves it so).
    node: its Node object (kubectl get node -o json).
    """
    wanted = parse(target)
    kubeadm, kubelet, kubectl = (parse(local.get(name)) for name in ("kubeadm", "kubelet", "kubectl"))
    reported = parse(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion"))
    manifests = image_version(local.get("apiserver")) if role != "worker" else wanted
    control_plane = role != "worker" and manifests != wanted
    # The cluster runs the target once kubeadm-config and kube-proxy (its last phases) say so; an apply that stopped
    # before them is run again, one that finished (the marker) or whose work is all there never is.
    proxy = image_version(local.get("proxy")) if local.get("proxy") else wanted
    applied = parse(local.get("applied")) == wanted or (parse(local.get("cluster")) == wanted and proxy == wanted)
    apply = role == "first" and (control_plane or not applied)
    packages = kubelet != wanted or kubectl != wanted
    restart = packages or reported != wanted
    work = kubeadm != wanted or control_plane or apply or restart
    unheld = [name for name in str(local.get("unheld") or "").split() if name in ("kubeadm", "kubelet", "kubectl")]
    due = (
        (f"kubeadm {show(kubeadm)}", kubeadm != wanted),
        (f"control plane {show(manifests)}", control_plane),
        ("kubeadm upgrade apply unfinished", apply and not control_plane),
        (f"kubelet {show(kubelet)}", kubelet != wanted),
        (f"kubectl {show(kubectl)}", kubectl != wanted),
        (f"running kubelet {show(reported)}", reported != wanted and kubelet == wanted),
    )
    return {
        "kubeadm": kubeadm != wanted,
        "apply": apply,
        # `kubeadm upgrade node`: on another control plane while its manifests are not at the target; on a worker
        # (its kubelet configuration) while its kubelet package is not.
        "node": (role == "control_plane" and control_plane) or (role == "worker" and packages),
        "drain": work,
        "packages": packages,
        "restart": restart,
        "uncordon": work or bool(local.get("cordoned")),
        "done": not work,
        # Held again without a drain: the version is already right.
        "hold": unheld,
        "summary": (f"at {show(wanted)}" if not work else
                    ", ".join(part for part, is_due in due if is_due) + f" -> {show(wanted)}")
        + (f"; not held: {' '.join(unheld)}" if unheld else ""),
    }


_EVICTING = re.compile(r'error when evicting pods/"([^"]+)" -n "([^"]+)"')


def _matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    if not selector:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if (operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values) \
                or (operator == "Exists" and key not in labels) or (operator == "DoesNotExist" and key in labels):
            return False
    return True


def drain_blockers(output: str, pods: Mapping[str, Any], pdbs: Mapping[str, Any]) -> str:
    """The pods whose eviction `kubectl drain` kept retrying, each with the PodDisruptionBudgets that select it:
    "ns/pod (PodDisruptionBudget ns/name: 0 disruptions allowed)", joined; "" when the output names none."""
    labels = {((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")):
              (p.get("metadata") or {}).get("labels") or {} for p in pods.get("items") or []}
    blocked = list(dict.fromkeys((ns, name) for name, ns in _EVICTING.findall(output or "")))
    parts = []
    for namespace, name in blocked:
        budgets = [f"PodDisruptionBudget {namespace}/{(b.get('metadata') or {}).get('name')}: "
                   f"{(b.get('status') or {}).get('disruptionsAllowed', 0)} disruptions allowed"
                   for b in pdbs.get("items") or []
                   if (b.get("metadata") or {}).get("namespace") == namespace
                   and _matches((b.get("spec") or {}).get("selector") or {}, labels.get((namespace, name), {}))]
        parts.append(f"{namespace}/{name}" + (f" ({'; '.join(budgets)})" if budgets else ""))
    return ", ".join(parts)


def versions_report(target: str, nodes: Mapping[str, Any], pods: Mapping[str, Any],
                    local: Mapping[str, Mapping[str, Any]], daemonsets: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Every node's versions and every control-plane component's, as lines, and those not at the target.

    local: node name -> its kubeadm, kubelet and kubectl versions as the node reports them; daemonsets: kube-system's
    DaemonSets (kube-proxy's image is the cluster's, written by `kubeadm upgrade apply`).
    """
    wanted = parse(target)
    lines, behind = [], []
    for ds in (daemonsets or {}).get("items") or []:
        if (ds.get("metadata") or {}).get("name") != "kube-proxy":
            continue
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
        proxy = image_version(containers[0].get("image"))
        lines.append(f"cluster: kube-proxy {show(proxy)}")
        if proxy != wanted:
            behind.append(f"cluster: kube-proxy runs {show(proxy)}")
    components: dict[str, list[str]] = {}
    for row in _component_versions(pods):
        components.setdefault(row["node"], []).append(f"{row['component']} {show(row['version'])}")
        if row["version"] != wanted:
            behind.append(f"{row['node']}: {row['component']} runs {show(row['version'])}")
    for row in _node_rows(nodes):
        name = row["name"]
        mine = local.get(name) or {}
        tools = {tool: parse(mine.get(tool)) for tool in ("kubeadm", "kubectl")}
        lines.append(f"{name}: kubelet {show(row['kubelet'])}, kubeadm {show(tools['kubeadm'])}, "
                     f"kubectl {show(tools['kubectl'])}"
                     + (f"; {', '.join(sorted(components[name]))}" if name in components else ""))
        if row["kubelet"] != wanted:
            behind.append(f"{name}: kubelet runs {show(row['kubelet'])}")
        behind += [f"{name}: {tool} is {show(version)}" for tool, version in tools.items()
                   if mine and version != wanted]
    return {"lines": lines, "behind": behind}
