"""Typed host facts and the pure parsers that build them from command output.

Interfaces, default routes and the public NIC choice come from ``kubeboot.public_nic``, which the nic_rename role
uses too: discover and the role read a host's NICs the same way and choose the same public NIC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeboot import public_nic
from kubeboot.public_nic import Interface, NicChoice, OutputError, Route, normalise_ip

# Packages discover reports; the first found of a group names the container runtime.
PACKAGES = (
    "containerd", "containerd.io", "cri-o", "docker-ce", "docker.io", "runc",
    "kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni",
)
RUNTIME_PACKAGES = {"containerd": "containerd", "containerd.io": "containerd", "cri-o": "cri-o",
                    "docker-ce": "docker", "docker.io": "docker"}


# Output from a host that cannot be understood; the message says which part (the same error as the NIC parsers').
FactsError = OutputError


@dataclass(frozen=True)
class OsRelease:
    id: str
    name: str
    version_id: str
    pretty_name: str
    id_like: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFacts:
    """Everything discover learns about one host."""

    hostname: str
    fqdn: str
    os: OsRelease
    kernel: str
    arch: str
    cpus: int
    memory_kb: int
    swap_total_kb: int
    swaps: tuple[str, ...]
    interfaces: tuple[Interface, ...]
    default_routes: tuple[Route, ...]
    ssh_address: str | None  # the host's own address that the SSH session reached
    packages: dict[str, str] = field(default_factory=dict)  # installed package -> version

    def interface(self, name: str) -> Interface | None:
        return next((nic for nic in self.interfaces if nic.name == name), None)

    def interface_holding(self, address: str) -> Interface | None:
        wanted = normalise_ip(address)
        return next((nic for nic in self.interfaces if any(a.address == wanted for a in nic.addresses)), None)

    @property
    def ssh_interface(self) -> Interface | None:
        return self.interface_holding(self.ssh_address) if self.ssh_address else None

    @property
    def container_runtime(self) -> str | None:
        return next((RUNTIME_PACKAGES[p] for p in RUNTIME_PACKAGES if p in self.packages), None)


def parse_os_release(text: str) -> OsRelease:
    """/etc/os-release: shell-style ``KEY=value`` lines, values optionally quoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value.replace('\\"', '"').replace("\\\\", "\\")
    if "ID" not in values:
        raise FactsError("/etc/os-release has no ID= line")
    return OsRelease(
        id=values["ID"], name=values.get("NAME", values["ID"]), version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", values["ID"])),
        id_like=tuple(values.get("ID_LIKE", "").split()),
    )


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as ``{field: kB}``."""
    result = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            result[key.strip()] = int(parts[0])
    if "MemTotal" not in result:
        raise FactsError("/proc/meminfo has no MemTotal line")
    return result


def parse_swaps(text: str) -> tuple[str, ...]:
    """Active swap devices and files from /proc/swaps (its first line is a header)."""
    return tuple(line.split()[0] for line in text.splitlines()[1:] if line.strip())


def parse_packages(text: str) -> dict[str, str]:
    """Installed packages from ``NAME<TAB>VERSION<TAB>STATUS`` lines (dpkg-query or rpm -q with a format).

    dpkg reports removed-but-configured packages too (status ``rc``); only ``ii`` / ``installed`` count.
    """
    found = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue  # "package X is not installed" from rpm, blank lines
        name, version, status = (p.strip() for p in parts)
        name = name.split(":", 1)[0]  # dpkg's binary:Package may carry ":amd64"
        if name and version and status in ("ii", "installed"):
            found[name] = version
    return found


def parse_int(text: str, what: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit():
        raise FactsError(f"{what}: expected a number, got {stripped[:40]!r}")
    return int(stripped)


def choose_public_nic(facts: HostFacts, *, public_nic_mac: str | None = None,
                      ansible_host: str | None = None) -> NicChoice:
    """The public NIC of ``facts``, chosen as the nic_rename role chooses it (``kubeboot.public_nic``)."""
    return public_nic.choose_public_nic(facts.interfaces, facts.default_routes, mac=public_nic_mac or "",
                                        ansible_host=ansible_host or "", ssh_address=facts.ssh_address)
