"""Syntax rules of Kubernetes, Linux and NFS names, as pure functions returning a problem (str) or None."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_RE = re.compile(rf"^{DNS1123_LABEL}$")
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_RE = QUALIFIED_NAME_RE
HOST_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){HOST_LABEL}(\.{HOST_LABEL})*$")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Labels a kubelet may set on its own Node (k8s.io/kubelet/pkg/apis: kubeletLabels and kubeletLabelNamespaces).
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
# Namespaces whose labels are applied through the API after join by the playbooks (labels role), not by the kubelet.
API_APPLIED_NAMESPACES = ("node-role.kubernetes.io", "node-restriction.kubernetes.io")

# exports(5) options; those ending in "=" take a value.
NFS_OPTIONS = frozenset({
    "secure", "insecure", "rw", "ro", "async", "sync", "no_wdelay", "wdelay", "nohide", "hide", "crossmnt",
    "no_subtree_check", "subtree_check", "insecure_locks", "no_auth_nlm", "secure_locks", "auth_nlm",
    "mountpoint", "mp", "nordirplus", "pnfs", "no_pnfs", "security_label", "root_squash", "no_root_squash",
    "all_squash", "no_all_squash", "no_acl", "acl",
})
NFS_VALUE_OPTIONS = frozenset({"fsid", "refer", "replicas", "sec", "anonuid", "anongid", "mountpoint", "mp",
                               "xprtsec"})


def dns_subdomain(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 253:
        return f"is {len(value)} characters long, at most 253 are allowed"
    if not DNS1123_SUBDOMAIN_RE.match(value):
        hint = f" (try {value.lower().replace('_', '-')!r})" if DNS1123_SUBDOMAIN_RE.match(
            value.lower().replace("_", "-")) else ""
        return f"must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit{hint}"
    return None


def dns_label(value: str) -> str | None:
    """A DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit."""
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f"is {len(value)} characters long, at most 63 are allowed"
    if not DNS1123_LABEL_RE.match(value):
        near = value.lower().replace("_", "-").replace(".", "-")
        hint = f" (try {near!r})" if DNS1123_LABEL_RE.match(near) else ""
        return f"must be lowercase letters, digits and '-', starting and ending with a letter or digit{hint}"
    return None


# systemd.time(7) calendar events: [weekdays] [date] [time] [time zone], or one of the shorthands.
ON_CALENDAR_SHORTHANDS = frozenset({"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
                                    "quarterly", "semiannually"})
_WEEKDAY = r"(mon|tue|wed|thu|fri|sat|sun)(day|sday|nesday|rsday|urday)?"
_ON_CALENDAR_WEEKDAYS_RE = re.compile(rf"^{_WEEKDAY}((,|\.\.){_WEEKDAY})*$", re.IGNORECASE)
_ON_CALENDAR_DATE_RE = re.compile(r"^[0-9*][0-9*,./~-]*$")
_ON_CALENDAR_TIME_RE = re.compile(r"^[0-9*][0-9*,./]*(:[0-9*][0-9*,./]*){1,2}$")
_ON_CALENDAR_ZONE_RE = re.compile(r"^(UTC|[A-Z][A-Za-z_+-]*(/[A-Za-z_+-]+)+)$")
_ON_CALENDAR_CHARS_RE = re.compile(r"^[A-Za-z0-9 *:,./~_+-]+$")
ON_CALENDAR_FIX = "give a systemd OnCalendar expression such as daily, Sun *-*-* 03:00:00 or *-*-* 02:30:00"


def on_calendar(value: str) -> str | None:
    """A plausible systemd OnCalendar expression, made only of the characters such expressions use (no shell or
    quoting characters: it is written into a unit file)."""
    if not value.strip():
        return f"is blank: {ON_CALENDAR_FIX}, or leave it empty for no timer"
    if len(value) > 200 or not _ON_CALENDAR_CHARS_RE.match(value):
        return f"has characters no OnCalendar expression uses: {ON_CALENDAR_FIX}"
    tokens = value.split()
    index, found = 0, False
    if tokens[0].lower() in ON_CALENDAR_SHORTHANDS:
        index, found = 1, True
    else:
        if _ON_CALENDAR_WEEKDAYS_RE.match(tokens[0]):
            index, found = 1, True
        if index < len(tokens) and ":" not in tokens[index] and _ON_CALENDAR_DATE_RE.match(tokens[index]):
            index, found = index + 1, True
        if index < len(tokens) and _ON_CALENDAR_TIME_RE.match(tokens[index]):
            index, found = index + 1, True
    if found and index == len(tokens) - 1 and _ON_CALENDAR_ZONE_RE.match(tokens[index]):
        index += 1
    if not found or index != len(tokens):
        return f"is not an OnCalendar expression: {ON_CALENDAR_FIX}"
    return None


def qualified_name(key: str) -> str | None:
    """A label or taint key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters."""
    if not key:
        return "must not be empty"
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "has an empty prefix before '/'"
        problem = dns_subdomain(prefix)
        if problem:
            return f"prefix {prefix!r} {problem}"
    if not name:
        return "has an empty name after '/'"
    if len(name) > 63:
        return f"name {name!r} is {len(name)} characters long, at most 63 are allowed"
    if not QUALIFIED_NAME_RE.match(name):
        return f"name {name!r} must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def label_value(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63:
        return f"is {len(value)} characters long, at most 63 are allowed"
    if not LABEL_VALUE_RE.match(value):
        return "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def label_namespace(key: str) -> str:
    prefix, _, _ = key.rpartition("/")
    return prefix


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def kubelet_may_set(key: str) -> bool:
    """Whether the NodeRestriction admission plugin lets a kubelet set this label on its own Node."""
    namespace = label_namespace(key)
    if not (_in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")):
        return True
    return key in KUBELET_LABELS or any(_in_namespace(namespace, ns) for ns in KUBELET_LABEL_NAMESPACES)


def applied_through_api(key: str) -> bool:
    return any(_in_namespace(label_namespace(key), ns) for ns in API_APPLIED_NAMESPACES)


def parse_taint(text: str) -> tuple[str, str, str]:
    """'key=value:Effect' or 'key:Effect' -> (key, value, effect); raises ValueError with the reason."""
    body, colon, effect = text.rpartition(":")
    if not colon:
        raise ValueError("must be key=value:Effect or key:Effect (the effect is missing)")
    key, _, value = body.partition("=")
    return key, value, effect


def mac_address(value: str) -> str | None:
    if not MAC_RE.match(value):
        return "must be six hexadecimal pairs separated by ':', e.g. 52:54:00:12:34:56"
    octets = [int(part, 16) for part in re.split(r"[:-]", value)]
    if octets[0] & 1:
        return "is a multicast address (the first octet is odd); a NIC has a unicast address"
    if not any(octets):
        return "is all zeros"
    return None


def normal_mac(value: str) -> str:
    return value.lower().replace("-", ":")


def interface_name(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 15:
        return f"is {len(value)} characters long, Linux allows at most 15"
    if value in (".", "..") or re.search(r"[/\s:]", value):
        return "must not contain '/', ':' or whitespace"
    return None


def url(value: str) -> str | None:
    if not value or re.search(r"\s", value):
        return "must be an http:// or https:// URL without spaces"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http:// or https:// URL, e.g. https://mirror.example.org/path"
    problem = host_port(parts.netloc.rpartition("@")[2], port_required=False)
    if problem:
        return f"host {parts.netloc!r} {problem}"
    return None


def host_name(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if not HOSTNAME_RE.match(value):
        return "must be an IP address or a DNS name (letters, digits, '-' and '.')"
    return None


def host_port(value: str, port_required: bool = True) -> str | None:
    """host:port, [IPv6]:port or (when the port is optional) just the host."""
    match = re.match(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$", value) or re.match(r"^([^:\[\]]+)(?::(\d+))?$", value)
    if not match:
        return "must be host:port (an IPv6 address in brackets: [2001:db8::1]:6443)"
    host, port = match.group(1), match.group(2)
    problem = host_name(host)
    if problem:
        return f"host {host!r} {problem}"
    if port is None:
        return "needs a port, e.g. :6443" if port_required else None
    if not 0 < int(port) < 65536:
        return f"port {port} is not between 1 and 65535"
    return None


def image_repository(value: str) -> str | None:
    """registry[:port][/path] without scheme, e.g. registry.k8s.io or registry.example.org:5000/k8s."""
    if "://" in value:
        return "must not have a scheme: write registry.example.org/path, not https://..."
    host, _, path = value.partition("/")
    problem = host_port(host, port_required=False)
    if problem:
        return f"registry {problem}"
    for part in path.split("/") if path else []:
        if not re.match(r"^[a-z0-9]+([._-]+[a-z0-9]+)*$", part):
            return f"path component {part!r} must be lowercase letters, digits and separators . _ -"
    return None


def nfs_client(value: str) -> str | None:
    """An exports(5) client: *, an address, a network (CIDR), a host name with wildcards or @netgroup."""
    if value == "*":
        return None
    if value.startswith("@"):
        return None if HOSTNAME_RE.match(value[1:].replace("_", "-")) else "netgroup name is not valid"
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            return f"is not a valid network: {exc}"
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if re.match(r"^[A-Za-z0-9*?\[\]]([-A-Za-z0-9*?\[\]]*)(\.[-A-Za-z0-9*?\[\]]+)*$", value):
        return None
    return "must be *, an address, a network in CIDR form, a host name (wildcards * ? allowed) or @netgroup"


def nfs_options(options: list[str]) -> str | None:
    for option in options:
        name, equals, _ = option.partition("=")
        if equals and name in NFS_VALUE_OPTIONS:
            continue
        if not equals and name in NFS_OPTIONS:
            continue
        return f"option {option!r} is not an exports(5) option"
    return None
