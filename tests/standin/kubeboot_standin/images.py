"""The node's container images and the registries it can reach, shared by crictl and kubeadm's image pull.

Real crictl asks containerd over CRI and containerd fetches from the registry, or first from the mirrors of
/etc/containerd/certs.d/<registry>/hosts.toml. Here the image store is a JSON file on the node
(/var/lib/kubeboot-standin/images.json) and nothing is downloaded: a registry host is reachable when
/etc/kubeboot-standin/registries lists it (one host[:port] a line, `#` comments), or, without that file, when it is
registry.k8s.io, which the stand-in serves every image from. A pull that reaches no host fails with containerd's
wording for a name that does not resolve (or a refused connection for an IP address).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths

STORE = "/var/lib/kubeboot-standin/images.json"
REGISTRIES = "/etc/kubeboot-standin/registries"
CERTS_D = "/etc/containerd/certs.d"
# A connected site: the registries of the control-plane images and of the pod networks' images.
DEFAULT_REACHABLE = ("registry.k8s.io", "ghcr.io", "quay.io", "registry-1.docker.io")
DOCKER_HUB = "docker.io"

# distribution/reference: path components, tags and digests.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                     r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


class ReferenceError(ValueError):
    """Not a valid image reference (distribution/reference's "invalid reference format")."""


class PullError(Exception):
    """A pull that failed, with containerd's gRPC code and message."""

    def __init__(self, code: str, desc: str) -> None:
        super().__init__(f"rpc error: code = {code} desc = {desc}")
        self.code = code
        self.desc = desc


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"


def parse(ref: str) -> Reference:
    """docker's ParseDockerRef: a short name is on docker.io (library/ for one component), the tag defaults to
    latest; a reference with a digest keeps only the digest."""
    if not ref or ref != ref.strip():
        raise ReferenceError("invalid reference format")
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ReferenceError("invalid reference format")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise ReferenceError("invalid reference format")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise ReferenceError("invalid reference format")
    else:
        domain, path = DOCKER_HUB, name
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    components = path.split("/")
    if any(c != c.lower() for c in components):
        raise ReferenceError("invalid reference format: repository name must be lowercase")
    if not all(_COMPONENT.match(c) for c in components) or len(f"{domain}/{path}") > 255:
        raise ReferenceError("invalid reference format")
    if digest:
        return Reference(domain, path, digest=digest)
    return Reference(domain, path, tag=tag or "latest")


# ---- the registries a pull can reach ----------------------------------------------------------------------------


def reachable_hosts() -> set[str]:
    try:
        text = paths.host(REGISTRIES).read_text()
    except OSError:
        return set(DEFAULT_REACHABLE)
    return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}


def _nameserver() -> str:
    try:
        for line in paths.host("/etc/resolv.conf").read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                return f"[{words[1]}]:53" if ":" in words[1] else f"{words[1]}:53"
    except OSError:
        pass
    return "127.0.0.1:53"


@dataclass(frozen=True)
class Host:
    """One place containerd tries for a registry: a mirror from hosts.toml or the registry itself."""

    url: str  # scheme://host[:port][/path], the /v2 prefix not included
    mirror_of: str = ""  # the registry a mirror stands in for (containerd adds ?ns=<registry>)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[-1].split("/", 1)[0]

    def manifest_url(self, ref: Reference) -> str:
        base = self.url.rstrip("/")
        base = base if base.endswith("/v2") else f"{base}/v2"
        url = f"{base}/{ref.path}/manifests/{ref.digest or ref.tag}"
        return f"{url}?ns={self.mirror_of}" if self.mirror_of else url

    def dial_error(self) -> str:
        """Go's net error for this host when nothing answers there."""
        hostport = self.host
        host, port = hostport, ""
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port.lstrip(":")
        elif hostport.count(":") == 1:
            host, port = hostport.split(":")
        port = port or ("80" if self.url.startswith("http://") else "443")
        try:
            address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
        except ValueError:
            return f"dial tcp: lookup {host} on {_nameserver()}: no such host"
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"dial tcp {shown}:{port}: connect: connection refused"


def registry_hosts(domain: str) -> list[Host]:
    """containerd's hosts for a registry (config_path): the hosts.toml mirrors in order, then the server."""
    server = "https://registry-1.docker.io" if domain == DOCKER_HUB else f"https://{domain}"
    mirrors: list[Host] = []
    for dirname in (domain, "_default"):
        f = paths.host(f"{CERTS_D}/{dirname}/hosts.toml")
        try:
            doc: dict[str, Any] = tomllib.loads(f.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        server = str(doc.get("server") or server)
        for url, spec in (doc.get("host") or {}).items():
            caps = (spec or {}).get("capabilities", ["pull", "resolve"])
            if "resolve" in caps:
                mirrors.append(Host(url if "://" in url else f"https://{url}", mirror_of=domain))
        break
    return [*mirrors, Host(server)]


def resolve(ref: Reference) -> None:
    """Raise PullError unless one of the registry's hosts is reachable (containerd reports the first error)."""
    reachable = reachable_hosts()
    hosts = registry_hosts(ref.domain)
    if any(h.host in reachable for h in hosts):
        return
    first = hosts[0]
    raise PullError(
        "Unknown",
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": failed to do request: '
        f'Head "{first.manifest_url(ref)}": {first.dial_error()}',
    )


# ---- the image store --------------------------------------------------------------------------------------------


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_record(ref: Reference) -> dict[str, Any]:
    """What a pull of ref stores. The ID stands for the content: the same image under another registry or path
    (a mirror) has the same ID, so it becomes one image with two tags, as in containerd."""
    content = ref.digest or f"{ref.path.rsplit('/', 1)[-1]}:{ref.tag}"
    image_id = f"sha256:{sha256_hex('config ' + content)}"
    digest = ref.digest or f"sha256:{sha256_hex('manifest ' + content)}"
    return {
        "id": image_id,
        "repoTags": [] if ref.digest else [str(ref)],
        "repoDigests": [f"{ref.name}@{digest}"],
        "size": 300_000 + int(image_id[7:15], 16) % 60_000_000,
    }


@contextmanager
def store(write: bool = False) -> Iterator[list[dict[str, Any]]]:
    """The images on the node; written back (under an exclusive lock, replaced whole) when write is set."""
    f = paths.host(STORE)
    if not write:
        yield _read(f)
        return
    f.parent.mkdir(parents=True, exist_ok=True)
    with open(f.with_name(f.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        images = _read(f)
        yield images
        tmp = f.with_name(f.name + ".tmp")
        tmp.write_text(json.dumps(images, indent=1) + "\n")
        tmp.replace(f)


def _read(f: Path) -> list[dict[str, Any]]:
    try:
        images: list[dict[str, Any]] = json.loads(f.read_text())
    except (OSError, ValueError):
        return []
    return images


def find(images: list[dict[str, Any]], ref_or_id: str) -> dict[str, Any] | None:
    """containerd's localResolve: a reference (normalised) first, then a full or unambiguous short image ID."""
    try:
        ref = str(parse(ref_or_id))
    except ReferenceError:
        ref = ""
    found = next((i for i in images if ref and (ref in i["repoTags"] or ref in i["repoDigests"])), None)
    if found is not None:
        return found
    wanted = ref_or_id.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{1,64}", wanted):
        return None
    by_id = [i for i in images if i["id"].removeprefix("sha256:").startswith(wanted)]
    return by_id[0] if len(by_id) == 1 else None


def pull(ref_text: str) -> dict[str, Any]:
    """Pull an image into the store (again, if present) and return it; PullError when it cannot be had."""
    try:
        ref = parse(ref_text)
    except ReferenceError as exc:
        raise PullError("InvalidArgument", f'failed to parse image reference "{ref_text}": {exc}') from None
    resolve(ref)
    record = image_record(ref)
    with store(write=True) as images:
        for image in images:  # a tag moves to the image just pulled
            image["repoTags"] = [t for t in image["repoTags"] if t not in record["repoTags"]]
        same = next((i for i in images if i["id"] == record["id"]), None)
        if same is None:
            images.append(record)
            same = record
        else:
            same["repoTags"] += [t for t in record["repoTags"] if t not in same["repoTags"]]
            same["repoDigests"] += [d for d in record["repoDigests"] if d not in same["repoDigests"]]
        images[:] = [i for i in images if i["repoTags"] or i["repoDigests"]]
    return same


def exists(ref_or_id: str) -> bool:
    with store() as images:
        return find(images, ref_or_id) is not None


def remove(image_id: str) -> None:
    with store(write=True) as images:
        images[:] = [i for i in images if i["id"] != image_id]


def listed() -> list[dict[str, Any]]:
    with store() as images:
        return list(images)
