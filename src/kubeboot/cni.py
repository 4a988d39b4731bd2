"""Pod network manifests: what kubeboot changes in a downloaded upstream manifest (pure functions on YAML text).

flannel's kube-flannel.yml is used as published, with three edits: the net-conf.json of the kube-flannel-cfg
ConfigMap is replaced by ours, `--iface=<nic>` is added to the flannel container, and images may be rewritten to a
mirror. The same image rewrite serves calico's tigera-operator manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from kubeboot import derived
from kubeboot.errors import KubebootError

FLANNEL_BACKENDS = ("vxlan", "vxlan-directrouting", "host-gw")
CALICO_ENCAPSULATIONS = ("IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None")
FLANNEL_CONFIGMAP = "kube-flannel-cfg"
FLANNEL_DAEMONSET = "kube-flannel-ds"
FLANNEL_CONTAINER = "kube-flannel"
WORKLOAD_KINDS = ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job", "Pod")


class CniError(KubebootError):
    """A manifest or a setting the pod network cannot be built from."""


def flannel_net_conf(
    network: str, backend: str, subnet_len: int | str = 24, subnet_min: str = "", subnet_max: str = ""
) -> dict[str, Any]:
    """flannel's net-conf.json for the kube subnet manager: Network, SubnetLen/Min/Max and the backend."""
    if backend not in FLANNEL_BACKENDS:
        raise CniError(f"flannel backend {backend!r}: must be one of {', '.join(FLANNEL_BACKENDS)}")
    net, problem = derived.parse_network(network)
    if net is None:
        raise CniError(f"flannel Network {network!r} {problem}")
    conf: dict[str, Any] = {"Network": str(net), "EnableNFTables": False, "SubnetLen": int(subnet_len)}
    for key, value in (("SubnetMin", subnet_min), ("SubnetMax", subnet_max)):
        if value:
            if not derived.address_inside(value, net):
                raise CniError(f"flannel {key} {value!r} is outside the pod network {net}")
            conf[key] = str(value)
    if backend == "host-gw":
        conf["Backend"] = {"Type": "host-gw"}
    elif backend == "vxlan-directrouting":
        conf["Backend"] = {"Type": "vxlan", "DirectRouting": True}
    else:
        conf["Backend"] = {"Type": "vxlan"}
    return conf


def load_documents(text: str, what: str = "manifest") -> list[dict[str, Any]]:
    """The objects of a multi-document YAML manifest (empty documents dropped)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise CniError(f"{what} is not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise CniError(f"{what}: document {i} is not a Kubernetes object (no kind/apiVersion)")
    return docs


def dump_documents(docs: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False, width=120, explicit_start=True)


def mirror_image(image: str, mirror: str) -> str:
    """registry/path/name:tag -> mirror/name:tag (kube_image_repository style: host[:port][/path], no scheme)."""
    if not mirror:
        return image
    return f"{mirror.rstrip('/')}/{image.rsplit('/', 1)[-1]}"


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") == "Pod":
        return [doc.get("spec") or {}]
    if doc.get("kind") in WORKLOAD_KINDS:
        return [((doc.get("spec") or {}).get("template") or {}).get("spec") or {}]
    return []


def rewrite_images(docs: list[dict[str, Any]], mirror: str) -> list[dict[str, Any]]:
    """Every container and init container image of the workloads pulled from mirror instead (in place)."""
    if mirror:
        for doc in docs:
            for spec in _pod_specs(doc):
                for cont in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                    if cont.get("image"):
                        cont["image"] = mirror_image(str(cont["image"]), mirror)
    return docs


def images(text: str) -> list[str]:
    """The images a manifest's workloads use, in order, without repeats."""
    out: list[str] = []
    for doc in load_documents(text):
        for spec in _pod_specs(doc):
            for cont in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                if cont.get("image") and cont["image"] not in out:
                    out.append(str(cont["image"]))
    return out


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return doc
    raise CniError(f"the flannel manifest has no {kind} {name} (is it kube-flannel.yml?)")


def flannel_manifest(text: str, settings: Mapping[str, Any]) -> str:
    """kube-flannel.yml with our net-conf.json, --iface and image mirror.

    settings: network, backend, subnet_len, subnet_min, subnet_max (net-conf.json), iface (may be empty: flannel
    then picks the interface of the default route), image_mirror (may be empty).
    """
    docs = load_documents(text, "the flannel manifest")
    conf = flannel_net_conf(
        str(settings["network"]),
        str(settings.get("backend", "vxlan")),
        settings.get("subnet_len", 24),
        str(settings.get("subnet_min") or ""),
        str(settings.get("subnet_max") or ""),
    )
    cm = _find(docs, "ConfigMap", FLANNEL_CONFIGMAP)
    cm.setdefault("data", {})["net-conf.json"] = json.dumps(conf, indent=2) + "\n"
    ds = _find(docs, "DaemonSet", FLANNEL_DAEMONSET)
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    flannel = next((c for c in containers if c.get("name") == FLANNEL_CONTAINER), None)
    if flannel is None:
        raise CniError(f"the flannel DaemonSet has no container {FLANNEL_CONTAINER}")
    args = [a for a in flannel.get("args") or [] if not str(a).startswith("--iface")]
    iface = str(settings.get("iface") or "")
    if iface:
        args.append(f"--iface={iface}")
    flannel["args"] = args
    rewrite_images(docs, str(settings.get("image_mirror") or ""))
    return dump_documents(docs)


def manifest_with_mirror(text: str, mirror: str) -> str:
    """Any manifest with its workload images pulled from mirror (unchanged text when mirror is empty)."""
    if not mirror:
        return text
    return dump_documents(rewrite_images(load_documents(text), mirror))


def flannel_net_conf_of(text: str) -> dict[str, Any]:
    """The net-conf.json of a (transformed) flannel manifest, as a dict."""
    cm = _find(load_documents(text, "the flannel manifest"), "ConfigMap", FLANNEL_CONFIGMAP)
    conf: dict[str, Any] = json.loads((cm.get("data") or {}).get("net-conf.json", "{}"))
    return conf
