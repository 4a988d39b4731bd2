"""The one remote command discover runs on each host, and the parsing of its output into ``HostFacts``.

The script is POSIX sh, needs only iproute2 (4.13+ for ``-j``), coreutils and /proc, and prints sections headed
``@@kubeboot SECTION@@`` so that one round trip gathers everything. Every parser is a pure function of text.
"""

from __future__ import annotations

from kubeboot import public_nic
from kubeboot.discover import facts as f
from kubeboot.discover.facts import FactsError, HostFacts

MARKER = "@@kubeboot "
_PACKAGE_NAMES = " ".join(f.PACKAGES)

GATHER_SCRIPT = f"""\
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
s() {{ printf '\\n{MARKER}%s@@\\n' "$1"; }}
s hostname; hostname 2>/dev/null || cat /proc/sys/kernel/hostname
s fqdn; hostname -f 2>/dev/null || true
s os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
s kernel; uname -r
s arch; uname -m
s cpus; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
s meminfo; cat /proc/meminfo
s swaps; cat /proc/swaps
s addr; ip -j -d addr show
s route4; ip -j -4 route show default
s route6; ip -j -6 route show default 2>/dev/null || true
s ssh; printf '%s\\n' "${{SSH_CONNECTION:-}}"
s packages
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f='${{binary:Package}}\\t${{Version}}\\t${{db:Status-Abbrev}}\\n' {_PACKAGE_NAMES} 2>/dev/null
elif command -v rpm >/dev/null 2>&1; then
  rpm -q --qf '%{{NAME}}\\t%{{VERSION}}-%{{RELEASE}}\\tinstalled\\n' {_PACKAGE_NAMES} 2>/dev/null
fi
s end
exit 0
"""

REQUIRED_SECTIONS = ("hostname", "os-release", "kernel", "cpus", "meminfo", "swaps", "addr", "route4", "end")


def split_sections(output: str) -> dict[str, str]:
    """``{section: text}`` from the script's output; text before the first marker is ignored (motd, profile)."""
    sections: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith(MARKER) and line.endswith("@@"):
            if current is not None:
                sections[current] = "\n".join(lines).strip("\n")
            current = line[len(MARKER):-2]
            lines = []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines).strip("\n")
    return sections


def parse_output(output: str) -> HostFacts:
    """``HostFacts`` from the output of ``GATHER_SCRIPT``; raises ``FactsError`` naming what is missing."""
    sections = split_sections(output)
    missing = [name for name in REQUIRED_SECTIONS if name not in sections]
    if missing:
        raise FactsError(f"gather output lacks {', '.join(missing)} (the script was cut short or is not POSIX sh)")
    interfaces = public_nic.parse_addresses(sections["addr"])
    if not interfaces:
        raise FactsError("`ip -j -d addr` printed nothing: the host needs iproute2 4.13 or later (for -j)")
    meminfo = f.parse_meminfo(sections["meminfo"])
    hostname = sections["hostname"].strip().split(".", 1)[0]
    if not hostname:
        raise FactsError("the host reports an empty hostname")
    return HostFacts(
        hostname=hostname,
        fqdn=sections.get("fqdn", "").strip() or hostname,
        os=f.parse_os_release(sections["os-release"]),
        kernel=sections["kernel"].strip(),
        arch=sections.get("arch", "").strip(),
        cpus=f.parse_int(sections["cpus"], "nproc"),
        memory_kb=meminfo["MemTotal"],
        swap_total_kb=meminfo.get("SwapTotal", 0),
        swaps=f.parse_swaps(sections["swaps"]),
        interfaces=interfaces,
        default_routes=public_nic.parse_default_routes(sections["route4"], "inet")
        + public_nic.parse_default_routes(sections.get("route6", ""), "inet6"),
        ssh_address=public_nic.parse_ssh_connection(sections.get("ssh", "")),
        packages=f.parse_packages(sections.get("packages", "")),
    )
