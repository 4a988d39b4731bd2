"""Public NIC naming: the renames that give the public NIC its name and the files that make the names stick.

The nic_rename role reads a host with one command (``READ_SCRIPT``: the interfaces, default routes, kernel, initramfs
and network configuration files) and its action plugin ``kubeboot_nic_plan`` turns that output into the plan and the
files to write and remove (``plan_host``). The public NIC is chosen by ``kubeboot.public_nic``, as discover chooses
it; the role renames only a physical NIC matched by its MAC, so a public address on a bond, bridge or VLAN is
refused with one line naming the host, the variable and the fix (unless that interface already has the name).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from kubeboot import public_nic
from kubeboot.discover.gather import split_sections
from kubeboot.errors import UsageError
from kubeboot.inventory.syntax import interface_name, normal_mac
from kubeboot.public_nic import Interface, OutputError, Route, parse_addresses, parse_default_routes

LINK_DIR = "/etc/systemd/network"
LINK_PREFIX = "10-kubeboot-"
UDEV_DIR = "/etc/udev/rules.d"
CLOUD_INIT_DIR = "/etc/cloud/cloud.cfg.d"
CLOUD_INIT_FILE = f"{CLOUD_INIT_DIR}/99-kubeboot-network.cfg"

# Network configuration stacks whose files may name an interface, by path pattern.
STACKS: dict[str, tuple[str, ...]] = {
    "ifupdown": (r"^/etc/network/interfaces$", r"^/etc/network/interfaces\.d/[^/]+$"),
    "netplan": (r"^/etc/netplan/[^/]+\.ya?ml$",),
    "networkmanager": (r"^/etc/NetworkManager/system-connections/[^/]+$",),
    "networkd": (r"^/etc/systemd/network/[^/]+\.(network|netdev)$",),
    "ifcfg": (r"^/etc/sysconfig/network-scripts/(ifcfg|route|route6|rule|rule6)-[^/]+$",),
    "udev": (r"^/etc/udev/rules\.d/70-persistent-net\.rules$",),
}
# ifcfg files are named after the interface they configure (ifcfg-eth0, route-eth0): they are renamed too.
IFCFG_NAME = re.compile(
    r"^(?P<dir>/etc/sysconfig/network-scripts/)(?P<kind>ifcfg|route|route6|rule|rule6)-(?P<name>.+)$"
)
# Characters that may be part of an interface name next to an occurrence; '.' and ':' separate a VLAN or alias suffix.
NAME_CHARS = r"A-Za-z0-9_\-"


class NicError(UsageError):
    """The public NIC cannot be chosen or renamed safely; nothing was changed."""


@dataclass
class Plan:
    """What the role does on one host: renames in order (a spare move first), and the public NIC's final name."""

    host: str
    target: str
    public: Interface
    reason: str
    renames: list[dict[str, str]] = field(default_factory=list)  # {old, new, mac}
    pinned: bool = True  # False when the public address is on a bond, bridge or VLAN already named target

    @property
    def mapping(self) -> dict[str, str]:
        return {r["old"]: r["new"] for r in self.renames}

    @property
    def pins(self) -> list[dict[str, str]]:
        """The names to pin to their MACs: the target and every name a rename gives."""
        first = [{"name": self.target, "mac": str(self.public.hw_mac)}] if self.pinned else []
        return first + [{"name": r["new"], "mac": r["mac"]} for r in self.renames if r["new"] != self.target]

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "target": self.target,
            "public": {"name": self.public.name, "mac": self.public.hw_mac,
                       "addresses": list(self.public.global_cidrs)},
            "reason": self.reason,
            "renames": self.renames,
            "mapping": self.mapping,
            "pins": self.pins,
        }


def spare_name(interfaces: tuple[Interface, ...] | list[Interface], prefix: str = "kbspare") -> str:
    taken = {i.name for i in interfaces}
    return next(f"{prefix}{n}" for n in range(100) if f"{prefix}{n}" not in taken)


def plan(
    host: str,
    interfaces: tuple[Interface, ...] | list[Interface],
    default_routes: tuple[Route, ...] | list[Route],
    *,
    target: str,
    mac: str = "",
    ansible_host: str = "",
    ssh_address: str | None = None,
    spare_prefix: str = "kbspare",
) -> Plan:
    """Choose the public NIC and the renames that give it `target`, moving an interface that holds it aside."""
    problem = interface_name(target)
    if problem:
        raise NicError(f"{host}: public_nic_name = {target!r} {problem}; set a valid interface name such as eth0")
    choice = public_nic.choose_public_nic(interfaces, default_routes, mac=mac, ansible_host=ansible_host,
                                          ssh_address=ssh_address)
    carrier = choice.carrier
    if carrier is not None and carrier is not choice.interface and carrier.name == target:
        # The bond, bridge or VLAN carrying the public address already has the name: nothing to rename or pin.
        return Plan(host=host, target=target, public=carrier, reason=choice.by, pinned=False)
    if not choice.ok or choice.interface is None or carrier is None:
        raise NicError(f"{host}: {choice.reason}")
    nic = choice.interface
    if carrier is not nic:
        found = {"SSH address": "the SSH address", "default route": "the default route"}.get(choice.by, choice.by)
        raise NicError(
            f"{host}: {found} leads to {carrier.name}, {carrier.description} over the NIC {nic.name}, and "
            f"nic_rename renames only a physical NIC that carries the public address itself (matched by its MAC); "
            f"give {carrier.name} the name {target} (public_nic_name) in its network configuration by hand, "
            f"or set nic_rename_confirm: false for {host}"
        )
    result = Plan(host=host, target=target, public=nic, reason=choice.by)
    if nic.name == target:
        return result
    holder = next((i for i in interfaces if i.name == target), None)
    if holder is not None:
        if not holder.is_physical:
            raise NicError(
                f"{host}: public_nic_name = {target} is held by {holder.kind or holder.link_type} interface "
                f"{target}, which cannot be moved aside; rename it by hand or choose another public_nic_name"
            )
        result.renames.append({"old": target, "new": spare_name(interfaces, spare_prefix), "mac": str(holder.hw_mac)})
    result.renames.append({"old": nic.name, "new": target, "mac": str(nic.hw_mac)})
    return result


# --- Rendering ----------------------------------------------------------------------------------------------------


def stack_of(path: str) -> str | None:
    for stack, patterns in STACKS.items():
        if any(re.match(p, path) for p in patterns):
            return stack
    return None


def rename_in_text(text: str, mapping: dict[str, str]) -> str:
    """Every whole-name occurrence of an old name replaced by its new one, all at once (so a swap works).

    A name counts when no other interface-name character touches it: `eth0`, `eth0.100` (VLAN), `eth0:1` (alias),
    `Name=eth0`, `"eth0"`, `[eth0]` and `/conf/eth0/` do; `veth0`, `eth01` and `eth0-x` do not.
    """
    if not mapping:
        return text
    names = "|".join(re.escape(n) for n in sorted(mapping, key=len, reverse=True))
    pattern = re.compile(rf"(?<![{NAME_CHARS}])({names})(?![{NAME_CHARS}])")
    return pattern.sub(lambda m: mapping[m[1]], text)


def rename_path(path: str, mapping: dict[str, str]) -> str:
    """ifcfg-OLD / route-OLD become ifcfg-NEW / route-NEW; other stacks keep their file names."""
    match = IFCFG_NAME.match(path)
    if match and match["name"] in mapping:
        return f"{match['dir']}{match['kind']}-{mapping[match['name']]}"
    return path


def rewrite_configs(files: dict[str, str], mapping: dict[str, str]) -> list[dict[str, Any]]:
    """For each network configuration file that names a renamed interface: where it goes and its new content.

    `files` maps path -> content. Returns [{path, dest, stack, content, remove}] for files that change; `remove` is
    true when the file moves (ifcfg) and nothing else is written to its old path.
    """
    changes: list[dict[str, Any]] = []
    for path in sorted(files):
        stack = stack_of(path)
        if stack is None:
            continue
        content = rename_in_text(files[path], mapping)
        dest = rename_path(path, mapping)
        if content != files[path] or dest != path:
            changes.append({"path": path, "dest": dest, "stack": stack, "content": content})
    dests = {c["dest"] for c in changes}
    for change in changes:
        change["remove"] = change["dest"] != change["path"] and change["path"] not in dests
    return changes


def link_file_path(name: str) -> str:
    return f"{LINK_DIR}/{LINK_PREFIX}{name}.link"


def render_link(mac: str, name: str) -> str:
    """A systemd .link file giving the NIC with `mac` the name `name` at every boot (udev, and the initramfs)."""
    return (
        "# Written by kubeboot (nic_rename): the NIC with this MAC is named " + name + " at boot.\n"
        f"[Match]\nMACAddress={normal_mac(mac)}\n\n[Link]\nName={name}\n"
    )


def udev_rule_path(name: str) -> str:
    return f"{UDEV_DIR}/70-kubeboot-net-{name}.rules"


def render_udev_rule(mac: str, name: str) -> str:
    """A udev rule with the same effect as the .link file, for udev or an initramfs that read rules only."""
    return (
        "# Written by kubeboot (nic_rename): the NIC with this MAC is named " + name + " at boot.\n"
        f'SUBSYSTEM=="net", ACTION=="add", ATTR{{address}}=="{normal_mac(mac)}", ATTR{{type}}=="1", '
        f'NAME="{name}"\n'
    )


def render_cloud_init() -> str:
    """Keeps cloud-init from writing the network configuration again (with the old name) at boot."""
    return (
        "# Written by kubeboot (nic_rename): the network configuration names the public NIC by its new name;\n"
        "# cloud-init must not regenerate it.\nnetwork: {config: disabled}\n"
    )


def pinned_files(pins: list[dict[str, str]], *, udev_rule: bool, cloud_init: bool = False) -> list[dict[str, str]]:
    """The files that pin each name to its MAC (and keep cloud-init from undoing it): [{path, content}]."""
    files = [{"path": link_file_path(p["name"]), "content": render_link(p["mac"], p["name"])} for p in pins]
    if udev_rule:
        files += [{"path": udev_rule_path(p["name"]), "content": render_udev_rule(p["mac"], p["name"])} for p in pins]
    if cloud_init:
        files.append({"path": CLOUD_INIT_FILE, "content": render_cloud_init()})
    return files


PIN_FILE = re.compile(
    rf"^({re.escape(LINK_DIR)}/{LINK_PREFIX}[^/]+\.link|{re.escape(UDEV_DIR)}/70-kubeboot-net-[^/]+\.rules)$"
)


def _pin_of(content: str) -> tuple[str, str] | None:
    """(mac, name) of one of our .link files or udev rules."""
    mac = re.search(r"^MACAddress=(\S+)|ATTR\{address\}==\"([^\"]+)\"", content, re.M)
    name = re.search(r"^Name=(\S+)|NAME=\"([^\"]+)\"", content, re.M)
    if not mac or not name:
        return None
    return normal_mac(mac[1] or mac[2]), name[1] or name[2]


def stale_pins(files: dict[str, str], pins: list[dict[str, str]]) -> list[str]:
    """Our earlier pinning files that contradict the new pins (same MAC, other name; or same name, other MAC)."""
    wanted = {(normal_mac(p["mac"]), p["name"]) for p in pins}
    macs = {mac for mac, _ in wanted}
    names = {name for _, name in wanted}
    stale = []
    for path in sorted(files):
        pin = _pin_of(files[path]) if PIN_FILE.match(path) else None
        if pin and pin not in wanted and (pin[0] in macs or pin[1] in names):
            stale.append(path)
    return stale


# --- Reading a host and planning its files ------------------------------------------------------------------------

# Every path a network configuration or one of our pins may live at; `plan_host` keeps those `config_path` accepts.
READ_GLOBS = (
    "/etc/network/interfaces", "/etc/network/interfaces.d/*", "/etc/netplan/*.yaml", "/etc/netplan/*.yml",
    "/etc/NetworkManager/system-connections/*", "/etc/systemd/network/*.network", "/etc/systemd/network/*.netdev",
    f"{LINK_DIR}/{LINK_PREFIX}*.link", "/etc/sysconfig/network-scripts/ifcfg-*",
    "/etc/sysconfig/network-scripts/route-*", "/etc/sysconfig/network-scripts/route6-*",
    "/etc/sysconfig/network-scripts/rule-*", "/etc/sysconfig/network-scripts/rule6-*",
    f"{UDEV_DIR}/70-persistent-net.rules", f"{UDEV_DIR}/70-kubeboot-net-*.rules", CLOUD_INIT_FILE,
)
FILE_SECTION = "file "

# One POSIX sh program: everything the role needs from the host, in sections (as discover's gather script), the
# files base64-encoded after a "file MODE PATH" header (regular files only, as found; symbolic links are left alone).
READ_SCRIPT = f"""\
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
s() {{ printf '\\n@@kubeboot %s@@\\n' "$1"; }}
s addr; ip -d -j address show
s route4; ip -j -4 route show default
s route6; ip -j -6 route show default 2>/dev/null || true
s ssh; printf '%s\\n' "${{SSH_CONNECTION:-}}"
s kernel; uname -r
s initramfs
for f in "/boot/initrd.img-$(uname -r)" "/boot/initramfs-$(uname -r).img"; do
  if [ -f "$f" ]; then printf '%s\\n' "$f"; fi
done
s cloud-init; if [ -d {CLOUD_INIT_DIR} ]; then echo installed; fi
for f in {" ".join(READ_GLOBS)}; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then s "{FILE_SECTION}$(stat -c %a "$f") $f"; base64 < "$f" || exit 1; fi
done
s end"""  # no newline at the end: Ansible appends " && sleep 0" to the command


@dataclass(frozen=True)
class HostFile:
    mode: str  # "0644"
    content: str


@dataclass(frozen=True)
class HostNetwork:
    """What `READ_SCRIPT` read on one host."""

    interfaces: tuple[Interface, ...]
    default_routes: tuple[Route, ...]  # IPv4, then IPv6
    ssh_address: str | None
    kernel: str
    initramfs: str  # the running kernel's initramfs, or ""
    cloud_init: bool  # /etc/cloud/cloud.cfg.d exists
    files: dict[str, HostFile]  # network configuration and pinning files, by path
    addresses_json: str  # `ip -d -j address show` as printed, for the verification after the change
    routes_json: str  # `ip -j -4 route show default` as printed


def last_words(read: dict[str, Any]) -> str:
    """What a failed command said: the last line of stderr, else of stdout (over a terminal, `ssh -tt`, stderr comes
    in stdout), leaving out ssh's own "Shared connection to ... closed"."""
    for text in (read.get("stderr"), read.get("stdout")):
        lines = [line.strip() for line in str(text or "").splitlines()
                 if line.strip() and not line.startswith("Shared connection to ")]
        if lines:
            return lines[-1]
    return "no output"


def config_path(path: str) -> bool:
    """A file the role reads: a network configuration (`stack_of`), one of our pins or our cloud-init file."""
    return bool(stack_of(path) or PIN_FILE.match(path) or path == CLOUD_INIT_FILE)


def parse_host(output: str) -> HostNetwork:
    """`HostNetwork` from the output of `READ_SCRIPT`; raises `OutputError` naming what is missing."""
    sections = split_sections(output)
    missing = [name for name in ("addr", "route4", "kernel", "end") if name not in sections]
    if missing:
        raise OutputError(f"reading the network lacks {', '.join(missing)} (the command was cut short)")
    interfaces = parse_addresses(sections["addr"])
    if not interfaces:
        raise OutputError("`ip -d -j address show` printed nothing: the host needs iproute2 4.13 or later (for -j)")
    files = {}
    for name, text in sections.items():
        if not name.startswith(FILE_SECTION):
            continue
        mode, _, path = name[len(FILE_SECTION):].partition(" ")
        if not config_path(path):
            continue
        try:
            content = base64.b64decode("".join(text.split()), validate=True)
            files[path] = HostFile(mode=f"{int(mode, 8):04o}", content=content.decode("utf-8", "surrogateescape"))
        except (binascii.Error, ValueError) as exc:
            raise OutputError(f"cannot read {path} from the host's output ({exc})") from exc
    return HostNetwork(
        interfaces=interfaces,
        default_routes=parse_default_routes(sections["route4"], "inet")
        + parse_default_routes(sections.get("route6", ""), "inet6"),
        ssh_address=public_nic.parse_ssh_connection(sections.get("ssh", "")),
        kernel=sections["kernel"].strip(),
        initramfs=sections.get("initramfs", "").strip().split("\n")[0],
        cloud_init=sections.get("cloud-init", "").strip() == "installed",
        files=files,
        addresses_json=sections["addr"],
        routes_json=sections["route4"],
    )


def changed_files(the_plan: Plan, files: dict[str, HostFile], *, udev_rule: bool, cloud_init: bool
                  ) -> tuple[list[dict[str, str]], list[str]]:
    """The files to write ([{path, content, mode}]) and the paths to remove so that the host matches the plan.

    Pinning files already right are left out; each rewritten configuration keeps its mode (an ifcfg file that moves
    takes its old file's mode); the old path of a moved ifcfg file and earlier pins the new ones contradict go."""
    contents = {path: f.content for path, f in files.items()}
    rewrites = rewrite_configs(contents, the_plan.mapping)
    writes = [{"path": p["path"], "content": p["content"], "mode": "0644"}
              for p in pinned_files(the_plan.pins, udev_rule=udev_rule, cloud_init=cloud_init)
              if p["path"] not in files or files[p["path"]].content != p["content"]]
    writes += [{"path": c["dest"], "content": c["content"], "mode": files[c["path"]].mode} for c in rewrites]
    removals = [c["path"] for c in rewrites if c["remove"]] + stale_pins(contents, the_plan.pins)
    return writes, removals


def summary(the_plan: Plan, apply: str) -> str:
    """The plan in one line, as the role shows it."""
    public = the_plan.public
    renames = ", ".join(f"{r['old']} -> {r['new']}" for r in the_plan.renames)
    done = f"renames {renames}, applied by {apply}" if renames else f"already named {the_plan.target}"
    return f"{the_plan.host}: public NIC {public.name} ({public.hw_mac}, chosen by {the_plan.reason}); {done}"


def plan_host(host: str, output: str, *, target: str, mac: str = "", ansible_host: str = "",
              spare_prefix: str = "kbspare", udev_rule: bool = False, cloud_init_disable: bool = True,
              apply: str = "reboot") -> dict[str, Any]:
    """Everything the role does on a host, from `READ_SCRIPT`'s output: the plan, the files to write and remove, the
    initramfs to rebuild and what the verification compares with. Raises `NicError` (one line) when refused."""
    network = parse_host(output)
    the_plan = plan(host, network.interfaces, network.default_routes, target=target, mac=mac,
                    ansible_host=ansible_host, ssh_address=network.ssh_address, spare_prefix=spare_prefix)
    writes, removals = changed_files(the_plan, network.files, udev_rule=udev_rule,
                                     cloud_init=cloud_init_disable and network.cloud_init)
    return {
        **the_plan.as_dict(),
        "summary": summary(the_plan, apply),
        "writes": writes,
        "removals": removals,
        "kernel": network.kernel,
        "initramfs": network.initramfs,
        "before": {"addresses": network.addresses_json, "routes": network.routes_json},
    }


# --- Verification ---------------------------------------------------------------------------------------------------


def verify(
    host: str,
    *,
    renames: list[dict[str, str]],
    addresses_before: str | list[Any],
    routes_before: str | list[Any],
    addresses_after: str | list[Any],
    routes_after: str | list[Any],
) -> list[str]:
    """What is wrong after the renames (empty when all is right): each new name carries its MAC and the addresses the
    interface had under its old name, and every IPv4 default route is still there (through the renamed interface)."""
    problems = []
    mapping = {r["old"]: r["new"] for r in renames}
    previous = {i.name: i for i in parse_addresses(addresses_before)}
    now = {i.name: i for i in parse_addresses(addresses_after)}
    for rename in renames:
        got = now.get(rename["new"])
        if got is None or got.hw_mac != normal_mac(rename["mac"]):
            shown = f"carries {got.hw_mac}" if got else "is missing"
            problems.append(f"{host}: {rename['new']} should carry {rename['mac']} but {shown}")
            continue
        old = previous.get(rename["old"])
        missing = sorted(set(old.global_cidrs if old else ()) - set(got.global_cidrs))
        if missing:
            problems.append(f"{host}: {rename['new']} (was {rename['old']}) lost {', '.join(missing)}")
    current = {(r.interface, r.gateway) for r in parse_default_routes(routes_after)}
    for route in parse_default_routes(routes_before):
        expected = (mapping.get(route.interface or "", route.interface), route.gateway)
        if expected not in current:
            problems.append(f"{host}: the default route via {route.gateway} dev {expected[0]} is missing")
    return problems
