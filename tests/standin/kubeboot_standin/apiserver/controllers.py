"""The controller-manager loops the roles depend on, run inside the API server stand-in:
node IPAM (spec.podCIDR), CSR approval and signing for kubelet client certs, the bootstrap
signer (JWS signatures on kube-public/cluster-info), the token cleaner, and the DaemonSet controller
(one pod per node a DaemonSet's template selects and tolerates, bound to it with spec.nodeName; the
pods of a deleted DaemonSet or of a deleted node are deleted, as the garbage collectors do)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import certs, paths
from .api import Api
from .resources import Resource
from .store import Obj

BOOTSTRAP_TYPE = "bootstrap.kubernetes.io/token"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"


def _b64d(s: str | None) -> str:
    return base64.b64decode(s or "").decode()


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jws_detached(content: str, token_id: str, token_secret: str) -> str:
    """HS256 JWS with the token secret as key and the payload detached ("header..signature")."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    sig = hmac.new(token_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}..{_b64url(sig)}"


def establish_crd(crd: Obj) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    crd["status"] = {
        "acceptedNames": crd.get("spec", {}).get("names", {}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
        "storedVersions": [v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")],
    }


def manifest_flags(path: Path) -> dict[str, str]:
    try:
        pod = yaml.safe_load(path.read_text())
        cmd = pod["spec"]["containers"][0]["command"]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return {}
    out = {}
    for c in cmd[1:]:
        if c.startswith("--"):
            k, _, v = c[2:].partition("=")
            out[k] = v
    return out


class Controllers:
    def __init__(self, api: Api, controller_manifest: Path, identity: str = "") -> None:
        self.api = api
        self.identity = identity or "kube-apiserver"
        self.manifest = controller_manifest
        api.hooks.append(self.hook)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True).start()

    # ---- hooks ----
    def hook(self, event: str, res: Resource, obj: Obj, req: Any) -> None:
        if event == "precreate" and res.kind == "Node":
            self.allocate_cidr(obj)
        elif event == "precreate" and res.kind == "CustomResourceDefinition":
            establish_crd(obj)
        elif event == "precreate" and res.kind == "CertificateSigningRequest" and req is not None:
            spec = obj.setdefault("spec", {})
            spec["username"] = req.user.name
            spec["groups"] = req.user.all_groups
        elif event == "create" and res.kind == "CertificateSigningRequest":
            self.sign_csr(obj)
        elif (res.kind == "Secret" and obj.get("type") == BOOTSTRAP_TYPE) or (
            res.kind == "ConfigMap" and obj["metadata"].get("name") == "cluster-info" and event != "delete"
        ):
            self.sign_cluster_info()

    # ---- node IPAM ----
    def allocate_cidr(self, node: Obj) -> None:
        flags = manifest_flags(self.manifest)
        if flags.get("allocate-node-cidrs") != "true" or not flags.get("cluster-cidr"):
            return
        if node.get("spec", {}).get("podCIDR"):
            return
        cluster = ipaddress.ip_network(flags["cluster-cidr"].split(",")[0], strict=False)
        mask = int(
            flags.get("node-cidr-mask-size-ipv4")
            or flags.get("node-cidr-mask-size")
            or (24 if cluster.version == 4 else 64)
        )
        used = {n.get("spec", {}).get("podCIDR") for n in self.api.store.list("", "nodes")}
        for sub in cluster.subnets(new_prefix=mask):
            if str(sub) not in used:
                node.setdefault("spec", {})["podCIDR"] = str(sub)
                node["spec"]["podCIDRs"] = [str(sub)]
                return

    # ---- CSR signing (csrapprover + csrsigner) ----
    def sign_csr(self, csr_obj: Obj) -> None:
        spec = csr_obj.get("spec", {})
        if spec.get("signerName") != KUBELET_CLIENT_SIGNER:
            return
        groups = spec.get("groups") or []
        if "system:bootstrappers" not in groups and "system:nodes" not in groups:
            return
        try:
            csr = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
        except (KeyError, ValueError):
            return
        cn, orgs = certs.subject_user_name(csr.subject)
        if not cn.startswith("system:node:") or orgs != ["system:nodes"]:
            return
        flags = manifest_flags(self.manifest)
        ca_crt = paths.host(flags.get("cluster-signing-cert-file", "/etc/kubernetes/pki/ca.crt"))
        ca_key = paths.host(flags.get("cluster-signing-key-file", "/etc/kubernetes/pki/ca.key"))
        ca = certs.KeyPair(
            serialization.load_pem_private_key(ca_key.read_bytes(), password=None),  # type: ignore[arg-type]
            certs.load_cert(ca_crt),
        )
        leaf = certs.issue(ca, cn, orgs, client=True, public_key=csr.public_key())
        name = csr_obj["metadata"]["name"]
        obj = self.api.store.get(("certificates.k8s.io", "certificatesigningrequests", "", name))
        if obj is None:
            return
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        obj["status"] = {
            "conditions": [
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "AutoApproved",
                    "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "certificate": base64.b64encode(leaf.cert_pem()).decode(),
        }
        self.api.store.update(("certificates.k8s.io", "certificatesigningrequests", "", name), obj)

    # ---- bootstrap signer ----
    def sign_cluster_info(self) -> None:
        key = ("", "configmaps", "kube-public", "cluster-info")
        cm = self.api.store.get(key)
        if cm is None:
            return
        data = dict(cm.get("data") or {})
        content = data.get("kubeconfig", "")
        sigs = {}
        for s in self.api.store.list("", "secrets", "kube-system"):
            if s.get("type") != BOOTSTRAP_TYPE:
                continue
            d = s.get("data") or {}
            if _b64d(d.get("usage-bootstrap-signing")) != "true":
                continue
            tid = _b64d(d.get("token-id"))
            sigs[f"jws-kubeconfig-{tid}"] = jws_detached(content, tid, _b64d(d.get("token-secret")))
        new = {k: v for k, v in data.items() if not k.startswith("jws-kubeconfig-")}
        new.update(sigs)
        if new != data:
            cm["data"] = new
            self.api.store.update(key, cm)

    # ---- DaemonSet controller and pod garbage collection ----
    def _create_pod(self, pod: Obj) -> None:
        res = next(r for r in self.api.resources() if r.plural == "pods")
        key = ("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.api.after("create", res, self.api.store.create(key, pod))

    def _delete_pod(self, pod: Obj) -> None:
        old = self.api.store.delete(("", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if old:
            self.api.after("delete", next(r for r in self.api.resources() if r.plural == "pods"), old)

    def sync_daemonsets(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.api.store.list("", "nodes")}
        pods = self.api.store.list("", "pods")
        owned: dict[str, list[Obj]] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in nodes:
                self._delete_pod(pod)
                continue
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "DaemonSet":
                    owned.setdefault(ref.get("uid", ""), []).append(pod)
        for ds in self.api.store.list("apps", "daemonsets"):
            uid = ds["metadata"]["uid"]
            mine = {(p.get("spec") or {}).get("nodeName"): p for p in owned.pop(uid, [])}
            wanted = [name for name, node in sorted(nodes.items()) if daemon_pod_fits(ds, node)]
            for name in wanted:
                if name not in mine:
                    self._create_pod(daemon_pod(ds, name))
            for name, pod in mine.items():
                if name not in wanted:
                    self._delete_pod(pod)
            status = {
                "currentNumberScheduled": len(wanted),
                "desiredNumberScheduled": len(wanted),
                "numberMisscheduled": 0,
                "numberReady": sum(1 for n in wanted if n in mine and pod_ready(mine[n])),
                "numberAvailable": sum(1 for n in wanted if n in mine and pod_ready(mine[n])),
                "updatedNumberScheduled": len(wanted),
                "observedGeneration": ds["metadata"].get("generation", 1),
            }
            if {k: (ds.get("status") or {}).get(k) for k in status} != status:
                ds["status"] = status
                key = ("apps", "daemonsets", ds["metadata"]["namespace"], ds["metadata"]["name"])
                self.api.store.update(key, ds)
        for orphans in owned.values():
            for pod in orphans:
                self._delete_pod(pod)

    # ---- token cleaner ----
    def _loop(self) -> None:
        while True:
            time.sleep(2)
            if not self.api.store.lead(self.identity):
                continue
            try:
                self.sync_daemonsets()
            except (KeyError, TypeError, ValueError) as exc:  # a malformed object must not stop the loop
                print(f"E daemonset controller] {exc!r}", flush=True)
            now = dt.datetime.now(dt.UTC)
            for s in self.api.store.list("", "secrets", "kube-system"):
                if s.get("type") != BOOTSTRAP_TYPE:
                    continue
                exp = _b64d((s.get("data") or {}).get("expiration"))
                if exp and dt.datetime.fromisoformat(exp.replace("Z", "+00:00")) < now:
                    key = ("", "secrets", "kube-system", s["metadata"]["name"])
                    old = self.api.store.delete(key)
                    if old:
                        self.api.after("delete", next(r for r in self.api.resources() if r.plural == "secrets"), old)


# Tolerations every DaemonSet pod gets from the DaemonSet controller.
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and str(tol.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def daemon_pod_fits(ds: Obj, node: Obj) -> bool:
    """The node matches the template's nodeSelector and every NoSchedule/NoExecute taint is tolerated."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = [*(spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") != "PreferNoSchedule"]
    return all(tolerates(tolerations, t) for t in taints)


def daemon_pod(ds: Obj, node: str) -> Obj:
    template = (ds.get("spec") or {}).get("template") or {}
    meta = ds["metadata"]
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec["nodeName"] = node
    spec["tolerations"] = [*(spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-" + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)),
            "namespace": meta["namespace"],
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"], "uid": meta["uid"],
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def pod_ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
