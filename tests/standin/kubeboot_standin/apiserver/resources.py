"""Built-in resource types and discovery documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = ""
    crd: bool = False
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _r(gv: str, plural: str, kind: str, ns: bool, short: tuple[str, ...] = (), **kw: Any) -> Resource:
    group, _, version = gv.rpartition("/")
    return Resource(group, version, plural, kind, ns, short, singular=kind.lower(), **kw)


BUILTIN: list[Resource] = [
    _r("v1", "namespaces", "Namespace", False, ("ns",), subresources=("status", "finalize")),
    _r("v1", "nodes", "Node", False, ("no",), subresources=("status", "proxy")),
    _r("v1", "pods", "Pod", True, ("po",), subresources=("status", "eviction", "log", "binding"), categories=("all",)),
    _r("v1", "secrets", "Secret", True),
    _r("v1", "configmaps", "ConfigMap", True, ("cm",)),
    _r("v1", "services", "Service", True, ("svc",), subresources=("status",), categories=("all",)),
    _r("v1", "serviceaccounts", "ServiceAccount", True, ("sa",), subresources=("token",)),
    _r("v1", "endpoints", "Endpoints", True, ("ep",)),
    _r("v1", "events", "Event", True, ("ev",)),
    _r("v1", "persistentvolumes", "PersistentVolume", False, ("pv",), subresources=("status",)),
    _r("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), subresources=("status",)),
    _r("v1", "limitranges", "LimitRange", True, ("limits",)),
    _r("v1", "resourcequotas", "ResourceQuota", True, ("quota",), subresources=("status",)),
    _r("apps/v1", "daemonsets", "DaemonSet", True, ("ds",), subresources=("status",), categories=("all",)),
    _r(
        "apps/v1", "deployments", "Deployment", True, ("deploy",), subresources=("status", "scale"), categories=("all",)
    ),
    _r("apps/v1", "replicasets", "ReplicaSet", True, ("rs",), subresources=("status", "scale"), categories=("all",)),
    _r("apps/v1", "statefulsets", "StatefulSet", True, ("sts",), subresources=("status", "scale"), categories=("all",)),
    _r("apps/v1", "controllerrevisions", "ControllerRevision", True),
    _r("batch/v1", "jobs", "Job", True, (), subresources=("status",), categories=("all",)),
    _r("batch/v1", "cronjobs", "CronJob", True, ("cj",), subresources=("status",), categories=("all",)),
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), subresources=("status",)),
    _r("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    _r("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    _r(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        subresources=("status",),
    ),
    _r(
        "certificates.k8s.io/v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        ("csr",),
        subresources=("status", "approval"),
    ),
    _r("coordination.k8s.io/v1", "leases", "Lease", True),
    _r("storage.k8s.io/v1", "storageclasses", "StorageClass", False, ("sc",)),
    _r("storage.k8s.io/v1", "csidrivers", "CSIDriver", False),
    _r("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    _r("networking.k8s.io/v1", "ingresses", "Ingress", True, ("ing",), subresources=("status",)),
    _r("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    _r("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _r("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
    _r("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    _r("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=("create",)),
    _r("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)),
    _r("authentication.k8s.io/v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",)),
]


def crd_resources(crd: dict[str, Any]) -> list[Resource]:
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        subs = tuple(k for k in (v.get("subresources") or {}) if k in ("status", "scale"))
        out.append(
            Resource(
                spec["group"],
                v["name"],
                names["plural"],
                names["kind"],
                spec.get("scope") == "Namespaced",
                tuple(names.get("shortNames", [])),
                subresources=subs,
                categories=tuple(names.get("categories", [])),
                singular=names.get("singular", names["kind"].lower()),
                crd=True,
                extra={"storage": v.get("storage", False)},
            )
        )
    return out


def resource_list(gv: str, resources: list[Resource]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for r in resources:
        items.append(
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
                **({"categories": list(r.categories)} if r.categories else {}),
            }
        )
        for sub in r.subresources:
            kind = {"eviction": "Eviction", "scale": "Scale", "token": "TokenRequest", "binding": "Binding"}.get(
                sub, r.kind
            )
            verbs = {
                "eviction": ["create"],
                "token": ["create"],
                "binding": ["create"],
                "log": ["get"],
                "proxy": ["get", "create", "delete", "patch", "update"],
            }.get(sub, ["get", "patch", "update"])
            group_fields = {"group": "policy", "version": "v1"} if sub == "eviction" else {}
            items.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                    **group_fields,
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}
