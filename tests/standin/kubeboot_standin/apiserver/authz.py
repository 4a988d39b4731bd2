"""Authentication results and RBAC evaluation (ClusterRoles/Roles and their bindings from the store).

Written as a real RBAC evaluator so that `kubectl auth can-i --as` (SubjectAccessReview) can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .store import Store


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)

    @property
    def all_groups(self) -> list[str]:
        extra = ["system:authenticated"] if self.name != "system:anonymous" else ["system:unauthenticated"]
        return [*self.groups, *extra]


@dataclass
class Attributes:
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests


def _match(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def _rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    if not _match(rule.get("verbs", []), a.verb):
        return False
    if a.resource:
        res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        if not _match(rule.get("apiGroups", []), a.group):
            return False
        resources = rule.get("resources", [])
        if not (_match(resources, res) or (a.subresource and f"{a.resource}/*" in resources)):
            return False
        names = rule.get("resourceNames") or []
        return not names or a.name in names
    urls = rule.get("nonResourceURLs", [])
    return any(u == a.path or u == "*" or (u.endswith("*") and a.path.startswith(u[:-1])) for u in urls)


def _subject_matches(subjects: list[dict[str, Any]], user: User, ns: str) -> bool:
    for s in subjects or []:
        kind = s.get("kind")
        if kind == "User" and s.get("name") == user.name:
            return True
        if kind == "Group" and s.get("name") in user.all_groups:
            return True
        if kind == "ServiceAccount" and user.name == f"system:serviceaccount:{s.get('namespace', ns)}:{s.get('name')}":
            return True
    return False


RBAC = "rbac.authorization.k8s.io"


def authorize(store: Store, user: User, a: Attributes) -> bool:
    groups = user.all_groups
    if "system:masters" in groups:
        return True
    if not a.resource:
        # system:discovery / system:public-info-viewer: discovery and health are open to everyone.
        return a.verb == "get"
    if "system:nodes" in groups:  # the Node authorizer, simplified: nodes may act on cluster objects
        return True
    bindings = [(b, "") for b in store.list(RBAC, "clusterrolebindings")]
    if a.namespace:
        bindings += [(b, a.namespace) for b in store.list(RBAC, "rolebindings", a.namespace)]
    for binding, ns in bindings:
        if not _subject_matches(binding.get("subjects", []), user, ns):
            continue
        ref = binding.get("roleRef", {})
        if ref.get("kind") == "ClusterRole":
            role = store.get((RBAC, "clusterroles", "", ref.get("name", "")))
        else:
            role = store.get((RBAC, "roles", ns, ref.get("name", "")))
        if role and any(_rule_allows(r, a) for r in role.get("rules") or []):
            return True
    return False


DEFAULT_CLUSTER_ROLES: list[dict[str, Any]] = [
    {
        "name": "cluster-admin",
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    },
    {
        "name": "system:node-bootstrapper",
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get", "list", "watch"],
            }
        ],
    },
    {
        "name": "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests/nodeclient"],
                "verbs": ["create"],
            }
        ],
    },
    {
        "name": "system:basic-user",
        "rules": [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            }
        ],
    },
]


def default_objects() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for r in DEFAULT_CLUSTER_ROLES:
        out.append(
            (
                "clusterroles",
                {
                    "apiVersion": f"{RBAC}/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": r["name"], "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                    "rules": r["rules"],
                },
            )
        )
    for name, role, group in (
        ("cluster-admin", "cluster-admin", "system:masters"),
        ("system:basic-user", "system:basic-user", "system:authenticated"),
    ):
        out.append(
            (
                "clusterrolebindings",
                {
                    "apiVersion": f"{RBAC}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": group}],
                },
            )
        )
    return out
