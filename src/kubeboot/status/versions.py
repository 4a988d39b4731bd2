"""Every node's versions against each other and the inventory: pure functions, no I/O.

The control-plane components' versions are the image tags of their kube-system mirror pods (label `component`, the
first container); the kubelet's is the node's nodeInfo.kubeletVersion. The version skew Kubernetes supports (since
1.28): a kubelet neither newer than the oldest kube-apiserver nor more than 3 minors older than it; every control
plane at one version, which after playbooks/upgrade.yml is kube_version.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from kubeboot.upgrade import parse, show

APISERVER = "kube-apiserver"
# The components `kubeboot status` shows, in this order; the first three are at the Kubernetes version.
COMPONENTS = (APISERVER, "kube-controller-manager", "kube-scheduler", "etcd")
KUBE_COMPONENTS = COMPONENTS[:3]
KUBELET_MINORS_BEHIND = 3  # how many minors a kubelet may be older than the oldest kube-apiserver
UPGRADE_PLAYBOOK = "playbooks/upgrade.yml"

Version = tuple[int, int, int]


def image_tag(image: Any) -> str:
    """The tag of an image reference (registry.k8s.io/etcd:3.5.21-0 -> 3.5.21-0), "" when it has none."""
    last = str(image or "").split("@", 1)[0].rsplit("/", 1)[-1]
    return last.partition(":")[2]


def components_by_node(pods: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """node -> component -> the image tag its mirror pod runs ("" when the image has no tag), for the components in
    COMPONENTS; the nodes and components in COMPONENTS' order."""
    found: dict[str, dict[str, str]] = {}
    for pod in pods:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("component")
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        containers = spec.get("containers") or []
        if component not in COMPONENTS or not node or not containers or not isinstance(containers[0], dict):
            continue
        found.setdefault(str(node), {})[str(component)] = image_tag(containers[0].get("image"))
    return {node: {c: found[node][c] for c in COMPONENTS if c in found[node]} for node in sorted(found)}


def upgrade_command(sources: Sequence[str]) -> str:
    """`ansible-playbook -i INVENTORY playbooks/upgrade.yml` with the inventories status was given."""
    words = ["ansible-playbook"]
    for source in sources:
        words += ["-i", source]
    return shlex.join([*words, UPGRADE_PLAYBOOK])


def _minor(version: Version) -> tuple[int, int]:
    return version[0], version[1]


def behind_fix(node: str, component: str, actual: str | None, kube_version: str, sources: Sequence[str], *,
               newest_server: Version | None = None) -> str:
    """What to do about ``node``'s kubelet or component not at kube_version (``newest_server``: the newest
    kube-apiserver, when known)."""
    wanted, found = parse(kube_version), parse(actual)
    if wanted is not None and found is not None and found > wanted:
        if component == "kubelet" and newest_server is not None and found > newest_server:
            return (f"the kubelet is newer than kube_version and than every API server: reinstall it on {node} at "
                    f"{show(wanted)} (downgrades are not supported)")
        return (f"the cluster is newer than the inventory: set kube_version to {show(found).lstrip('v')} in the "
                "inventory (downgrades are not supported)")
    fix = f"run `{upgrade_command(sources)}` to bring it to kube_version {kube_version.lstrip('v')}"
    if (component in KUBE_COMPONENTS and wanted is not None and found is not None
            and _minor(wanted) > (found[0], found[1] + 1)):
        fix += f" (one minor at a time: set kube_version to the latest {found[0]}.{found[1] + 1}.x first)"
    return fix


def oldest_apiserver(components: Mapping[str, Mapping[str, str]]) -> tuple[Version, str] | None:
    """The oldest kube-apiserver version and the first node running it; None when none has a version."""
    found = [(version, node) for node, running in components.items()
             if (version := parse(running.get(APISERVER))) is not None]
    return min(found) if found else None


def newest_apiserver(components: Mapping[str, Mapping[str, str]]) -> Version | None:
    found = [version for running in components.values() if (version := parse(running.get(APISERVER))) is not None]
    return max(found) if found else None


def kubelet_skew(node: str, kubelet: str | None, components: Mapping[str, Mapping[str, str]], kube_version: str,
                 sources: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """The kubelet of ``node`` against the oldest kube-apiserver: (key, expected, actual, fix) when it is newer (by
    minor) or more than KUBELET_MINORS_BEHIND minors older; nothing when either version is not known."""
    version, oldest = parse(kubelet), oldest_apiserver(components)
    if version is None or oldest is None or kubelet is None:
        return []
    server, where = oldest
    target = f"kube_version {kube_version.lstrip('v')}" if kube_version else "kube_version"
    command = upgrade_command(sources)
    if _minor(version) > _minor(server):
        newest = newest_apiserver(components) or server
        if _minor(version) > _minor(newest):
            fix = (f"no API server runs {version[0]}.{version[1]} yet and `{command}` refuses this skew: reinstall "
                   f"the kubelet on {node} at {show(newest)}, then run it ({target})")
        else:
            fix = f"a half-done upgrade, the control planes go first: run `{command}` ({target}) to finish it"
        return [("kubelet skew", f"not newer than {show(server)} (the oldest kube-apiserver, on {where})", kubelet,
                 fix)]
    if version[0] != server[0] or server[1] - version[1] > KUBELET_MINORS_BEHIND:
        floor = f"{server[0]}.{max(server[1] - KUBELET_MINORS_BEHIND, 0)}"
        fix = (f"a kubelet is supported up to {KUBELET_MINORS_BEHIND} minors older than the API server: run "
               f"`{command}` ({target}) to upgrade the kubelet on {node}")
        return [("kubelet skew", f"{floor} or newer ({KUBELET_MINORS_BEHIND} minors at most below {show(server)}, "
                 f"the oldest kube-apiserver, on {where})", kubelet, fix)]
    return []


def _running(running: Mapping[str, str], names: Sequence[str]) -> str:
    """What one node runs of ``names``: one version when they agree, else each component's."""
    tags = [running[c] or "untagged" for c in names if c in running]
    if len(set(tags)) == 1:
        return tags[0]
    return ", ".join(f"{c} {running[c] or 'untagged'}" for c in names if c in running)


def mixed_versions(components: Mapping[str, Mapping[str, str]], kube_version: str,
                   sources: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(key, expected, actual, fix) for the Kubernetes components, then etcd, when the control planes run them at
    more than one version: a half-done upgrade; actual says which node runs what."""
    found = []
    target = f"kube_version {kube_version.lstrip('v')}" if kube_version else "kube_version"
    fix = f"a half-done upgrade: run `{upgrade_command(sources)}` ({target}); it continues where it stopped"
    for key, names in (("control-plane components", KUBE_COMPONENTS), ("etcd", ("etcd",))):
        tags = {running[c] for running in components.values() for c in names if c in running}
        if len(tags) < 2:
            continue
        expected = (f"v{kube_version.lstrip('v')} on every control plane" if kube_version and key != "etcd"
                    else "one version on every control plane")
        actual = "; ".join(f"{node} {_running(running, names)}" for node, running in components.items()
                           if any(c in running for c in names))
        found.append((key, expected, actual, fix))
    return found
