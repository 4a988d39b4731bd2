"""Host services for the Vagrant tier: libvirtd and virtlogd started by hand, an isolated libvirt network, a storage
pool and apt-cacher-ng on the network's host address. Everything `up` makes is recorded before it is made, and
`down` removes exactly that, also after a failed `up`.

Traffic stays on the host: the network has no <forward> (libvirt rejects anything routed in or out of it), its
dnsmasq serves DHCP only (no DNS forwarding), and the guests' only way to Debian packages is the apt proxy.

With ``standin=True`` (`kubeboot vm host up --standin`) the test stand-in's Kubernetes packages are built and served
on the same address, and the variables that point an inventory at them are written to <state dir>/vars.yml
(`KUBEBOOT_VM_VARS`), as `kubeboot sandbox up --standin` does for sandbox nodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from kubeboot.errors import KubebootError, UsageError
from kubeboot.sandbox import host as sandbox_host
from kubeboot.sandbox import services, standin
from kubeboot.sandbox.host import pid_matches, run, spawn, stop_process
from kubeboot.sandbox.naming import check_sandbox_name
from kubeboot.sandbox.state import ProcessState, SandboxState
from kubeboot.vm import box

DEFAULT_STATE_ROOT = Path("/var/lib/kubeboot/vm")
DEFAULT_SUBNET = "10.213.100.0/24"
LIBVIRT_URI = "qemu:///system"
LIBVIRT_RUN = Path("/run/libvirt")
LIBVIRT_DNSMASQ = Path("/var/lib/libvirt/dnsmasq")
REQUIRED_TOOLS = {
    "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system", "virsh": "libvirt-clients",
    "qemu-system-x86_64": "qemu-system-x86", "dnsmasq": "dnsmasq-base", "vagrant": "vagrant",
    "apt-cacher-ng": "apt-cacher-ng", "iptables": "iptables",
}
KVM_DEVICE = Path("/dev/kvm")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# Chains libvirtd makes for its networks; removed at `down` only when this run's libvirtd made them.
LIBVIRT_CHAINS = {
    "filter": ("LIBVIRT_INP", "LIBVIRT_OUT", "LIBVIRT_FWO", "LIBVIRT_FWI", "LIBVIRT_FWX"),
    "nat": ("LIBVIRT_PRT",),
    "mangle": ("LIBVIRT_PRT",),
}
VARS_FILE = "vars.yml"
VM_MEMORY_BUDGET_MB = 1200  # what one 768 MB guest costs the host under TCG (QEMU's own RSS included)


def state_root() -> Path:
    return Path(os.environ.get("KUBEBOOT_VM_STATE", str(DEFAULT_STATE_ROOT)))


@dataclass
class VmHostState(SandboxState):
    """The sandbox's state record (processes, apt proxy) plus what the Vagrant tier makes in libvirt.

    Its name is `vm-<name>`, so the apt proxy's cache (named after it) is never a sandbox's.
    """

    network: str = ""
    network_created: bool = False
    pool: str = ""
    pool_dir: str = ""
    pool_created: bool = False
    libvirt_run_created: bool = False
    libvirt_chains_created: bool = False
    domains: list[str] = field(default_factory=list)  # domains `down` found and removed (for the report)

    @property
    def directory(self) -> Path:
        return state_root() / self.name

    @classmethod
    def load(cls, name: str) -> VmHostState | None:
        path = state_root() / _state_name(name) / "state.json"
        if not path.exists():
            return None
        raw: dict[str, Any] = json.loads(path.read_text())
        raw.pop("nodes", None)
        processes = {key: ProcessState(**value) for key, value in raw.pop("processes", {}).items()}
        return cls(**raw, processes=processes)


@dataclass
class HostInfo:
    """What a Vagrantfile needs to use the host services (also written to <state dir>/host.json)."""

    name: str
    network: str
    subnet: str
    address: str
    pool: str
    apt_proxy: str
    libvirt_uri: str = LIBVIRT_URI
    vars_file: str = ""  # the stand-in's inventory variables (YAML), when it is served
    started: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """Environment variables the project's Vagrantfiles (and the vagrant molecule scenario) read."""
        env = {
            "KUBEBOOT_VM_NETWORK": self.network, "KUBEBOOT_VM_SUBNET": self.subnet,
            "KUBEBOOT_VM_POOL": self.pool, "KUBEBOOT_APT_PROXY": self.apt_proxy,
            "LIBVIRT_DEFAULT_URI": self.libvirt_uri,
        }
        if self.vars_file:
            env["KUBEBOOT_VM_VARS"] = self.vars_file
        if emulated():
            # Under emulation each task's Python start-up in a VM takes 2-3 s (ping: 2.5 s against 0.35 s for a raw
            # command); mitogen's strategy keeps one Python per VM, and the vagrant scenario's converge takes less than
            # half as long. site.yml's own strategy, linear, is what the sandbox scenarios run.
            env["KUBEBOOT_MOLECULE_STRATEGY"] = "mitogen_linear"
        return env


def _state_name(name: str) -> str:
    return name if name.startswith("vm-") else f"vm-{name}"


def network_name(name: str) -> str:
    return "kubeboot-vm" if name == "default" else f"kubeboot-vm-{name}"


def bridge_name(name: str) -> str:
    return ("kbvm-" + name)[:15]


def _virsh(*args: str, check: bool = True, timeout: float = 120) -> str:
    return run(["virsh", "-q", "-c", LIBVIRT_URI, *args], check=check, timeout=timeout)


def libvirt_answers() -> bool:
    if shutil.which("virsh") is None:
        return False
    return bool(_virsh("uri", check=False, timeout=10).strip())


def check_host() -> None:
    if os.geteuid() != 0:
        raise UsageError("the Vagrant tier's host services need root (libvirtd, networks): run it as root")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise UsageError(f"missing host packages for the Vagrant tier: apt-get install {' '.join(missing)} "
                         "(or run scripts/setup.sh)")


def _network_xml(state: VmHostState, subnet: ipaddress.IPv4Network) -> str:
    address = subnet.network_address + 1
    first, last = subnet.network_address + 100, min(subnet.network_address + 199, subnet.broadcast_address - 1)
    # No <forward>: an isolated network. DNS off (nothing is forwarded upstream); the guests' default route points at
    # the host address so `ansible_default_ipv4` is set, and libvirt's rules reject anything routed beyond it.
    return (
        "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\n"
        f"  <name>{escape(state.network)}</name>\n"
        f"  <bridge name='{escape(state.bridge)}' stp='off' delay='0'/>\n"
        "  <dns enable='no'/>\n"
        f"  <ip address='{address}' netmask='{subnet.netmask}'>\n"
        f"    <dhcp><range start='{first}' end='{last}'/></dhcp>\n"
        "  </ip>\n"
        "  <dnsmasq:options>\n"
        f"    <dnsmasq:option value='dhcp-option=option:router,{address}'/>\n"
        "  </dnsmasq:options>\n"
        "</network>\n"
    )


def _pool_xml(state: VmHostState) -> str:
    return (
        f"<pool type='dir'>\n  <name>{escape(state.pool)}</name>\n"
        f"  <target><path>{escape(state.pool_dir)}</path></target>\n</pool>\n"
    )


def _chains_present() -> bool:
    return "LIBVIRT_FWO" in run(["iptables", "-w", "-S"], check=False)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise KubebootError(f"{what} did not come up within {timeout:.0f}s")


def _start_daemon(state: VmHostState, key: str, argv: list[str], marker: str) -> None:
    proc = state.processes.get(key)
    if proc is not None and pid_matches(proc.pid, proc.marker):
        return
    pid = spawn(argv, state.directory / f"{key}.console.log")
    state.processes[key] = ProcessState(pid=pid, marker=marker)
    state.save()


def _ensure_libvirtd(state: VmHostState) -> None:
    """virtlogd and libvirtd in the foreground under recorded PIDs, each with a config file of this run's own."""
    own = "libvirtd" in state.processes
    if libvirt_answers() and not own:
        return  # a libvirtd that this run did not start: use it, never stop it
    conf = state.directory / "libvirt"
    conf.mkdir(parents=True, exist_ok=True)
    if not state.processes:
        state.libvirt_run_created = not LIBVIRT_RUN.exists()
        state.libvirt_chains_created = not _chains_present()
        state.save()
    virtlogd_conf = conf / "virtlogd.conf"
    virtlogd_conf.write_text(f'log_outputs = "3:file:{conf}/virtlogd.log"\n')
    if not (LIBVIRT_RUN / "virtlogd-sock").exists() or "virtlogd" in state.processes:
        _start_daemon(state, "virtlogd", ["virtlogd", "-f", str(virtlogd_conf)], str(virtlogd_conf))
        _wait((LIBVIRT_RUN / "virtlogd-sock").exists, "virtlogd")
    libvirtd_conf = conf / "libvirtd.conf"
    libvirtd_conf.write_text(
        f'log_outputs = "3:file:{conf}/libvirtd.log"\n'
        'unix_sock_group = "root"\nunix_sock_rw_perms = "0770"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
    )
    argv = ["libvirtd", "-f", str(libvirtd_conf), "-p", str(conf / "libvirtd.pid")]
    _start_daemon(state, "libvirtd", _without_kvm(argv, conf) if mask_kvm() else argv, str(libvirtd_conf))
    _wait(libvirt_answers, "libvirtd", timeout=60)


def emulated() -> bool:
    """Whether the VMs run under QEMU emulation (TCG): the default, unless KUBEBOOT_VM_DRIVER=kvm."""
    return os.environ.get("KUBEBOOT_VM_DRIVER", "qemu") != "kvm"


def mask_kvm() -> bool:
    """Whether libvirtd runs with /dev/kvm hidden: whenever it exists and the VMs are emulated (the default).

    libvirt caches what each QEMU binary can do, and drops that cache whenever it decides that KVM became usable or
    unusable since. Where /dev/kvm exists but only root may open it (as here, a hypervisor that cannot boot stock
    kernels), the probe sees KVM and the check, made as libvirt's QEMU user, does not: every libvirt call then probes
    QEMU afresh, seconds each under emulation, minutes over a `vagrant up`. KUBEBOOT_VM_DRIVER=kvm keeps /dev/kvm.
    """
    return KVM_DEVICE.exists() and QEMU_CONF.exists() and emulated()


def _without_kvm(argv: list[str], conf: Path) -> list[str]:
    """argv in a mount namespace of its own where /dev/kvm is an empty file nobody may open (the host's is untouched:
    host mounts still propagate in, none propagate out). libvirt's QEMU configuration there adds one setting to the
    defaults: no private /dev per VM, since libvirt cannot carry the masked /dev/kvm over into one."""
    blank = conf / "no-kvm"
    blank.write_bytes(b"")
    blank.chmod(0)
    qemu_conf = conf / "qemu.conf"
    qemu_conf.write_text("# kubeboot vm host: the VMs are emulated and libvirtd runs with /dev/kvm masked\n"
                         "namespaces = []\n")
    script = f'mount --bind "$1" {KVM_DEVICE} && mount --bind "$2" {QEMU_CONF} && shift 2 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", script, "sh", str(blank),
            str(qemu_conf), *argv]


def _ensure_network(state: VmHostState, subnet: ipaddress.IPv4Network) -> None:
    existing = _virsh("net-list", "--all", "--name", check=False).split()
    if state.network in existing:
        if not state.network_created:
            raise UsageError(f"a libvirt network {state.network} exists but this run did not make it: "
                             f"remove it (virsh net-destroy {state.network}) or use another --name")
        return
    if not state.network_created:
        sandbox_host.check_subnet_free(subnet, own_bridge=state.bridge)
        if sandbox_host.link_exists(state.bridge):
            raise UsageError(f"a link named {state.bridge} exists but this run did not make it: "
                             "delete it or choose another --name")
    xml = state.directory / "network.xml"
    xml.write_text(_network_xml(state, subnet))
    state.network_created = True
    state.save()
    _virsh("net-create", str(xml))  # transient: gone when destroyed, never autostarted


def _ensure_pool(state: VmHostState) -> None:
    if state.pool in _virsh("pool-list", "--all", "--name", check=False).split():
        if not state.pool_created:
            raise UsageError(f"a libvirt storage pool {state.pool} exists but this run did not make it: "
                             f"remove it (virsh pool-destroy {state.pool}) or use another --name")
        return
    pool_dir = Path(state.pool_dir)
    pool_dir.mkdir(parents=True, exist_ok=True)
    _drop_stale_box_volumes(pool_dir)
    xml = state.directory / "pool.xml"
    xml.write_text(_pool_xml(state))
    state.pool_created = True
    state.save()
    _virsh("pool-create", str(xml))


def _drop_stale_box_volumes(pool_dir: Path) -> None:
    """vagrant-libvirt reuses a box volume by name: drop it when Vagrant now holds another build of the box."""
    stamp = pool_dir / ".kubeboot-box-key"
    current = box.registered_key() or ""
    if stamp.exists() and stamp.read_text().strip() == current:
        return
    prefix = box.BOX_NAME.replace("/", "-VAGRANTSLASH-")
    for volume in pool_dir.glob(f"{prefix}_vagrant_box_image_*"):
        volume.unlink()
    stamp.write_text(current + "\n")


def up(name: str = "default", subnet_text: str | None = None, *, standin: bool = False) -> HostInfo:
    check_sandbox_name(name)
    check_host()
    try:
        subnet = ipaddress.IPv4Network(subnet_text or DEFAULT_SUBNET)
    except ValueError as exc:
        raise UsageError(f"--subnet {subnet_text!r} is not an IPv4 network ({exc}): write it like "
                         f"{DEFAULT_SUBNET}") from exc
    if not subnet.is_private or subnet.prefixlen > 25:
        raise UsageError(f"--subnet {subnet}: give a private IPv4 network of at least /25")
    with _locked(name):
        state = VmHostState.load(name) or VmHostState(name=_state_name(name))
        if state.network_created and state.subnet != str(subnet):
            raise UsageError(f"host services {name!r} run on {state.subnet}: run `kubeboot vm host down` first")
        before = set(state.processes)
        state.subnet, state.bridge = str(subnet), bridge_name(name)
        state.network, state.pool = network_name(name), network_name(name)
        state.pool_dir = str(box.vagrant_cache() / "pool" / name)
        state.save()
        try:
            _ensure_libvirtd(state)
            _ensure_network(state, subnet)
            _ensure_pool(state)
            address = str(subnet.network_address + 1)
            _wait(lambda: address in run(["ip", "-4", "-o", "addr", "show"]), f"address {address}")
            services.ensure_apt_proxy(state, address)
            if standin:
                _serve_standin(state, address)
        except BaseException:
            _down(state)
            raise
        info = _info(state)
        info.started = sorted(set(state.processes) - before)
        (state.directory / "host.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info


def _serve_standin(state: VmHostState, address: str) -> None:
    """Build (or reuse) the stand-in repository, serve it on ``address`` and write the variables that use it."""
    repo = standin.ensure_built(standin.builder())
    services.ensure_http_server(state, address, repo.directory)
    variables = standin.inventory_vars(repo, services.served_url(state, address))
    (state.directory / VARS_FILE).write_text(
        f"---\n# Written by `kubeboot vm host up --standin` ({state.name}): the test stand-in's packages,\n"
        "# served on the VMs' network. Removed by `kubeboot vm host down`.\n"
        + yaml.safe_dump(variables, sort_keys=True))


def _info(state: VmHostState) -> HostInfo:
    address = str(ipaddress.IPv4Network(state.subnet).network_address + 1)
    vars_file = state.directory / VARS_FILE
    return HostInfo(name=state.name.removeprefix("vm-"), network=state.network, subnet=state.subnet,
                    address=address, pool=state.pool, apt_proxy=services.proxy_url(address),
                    vars_file=str(vars_file) if "http" in state.processes and vars_file.exists() else "")


def info(name: str = "default") -> HostInfo | None:
    state = VmHostState.load(name)
    return _info(state) if state is not None and state.network_created else None


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise `up` and `down` of one set of host services."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if VmHostState.load(name) is None:
                (root / f".{name}.lock").unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def down(name: str = "default") -> list[str]:
    check_sandbox_name(name)
    with _locked(name):
        state = VmHostState.load(name)
        if state is None:
            return []
        return _down(state)


def _domains_on(network: str, bridge: str) -> list[str]:
    found = []
    for domain in _virsh("list", "--all", "--name", check=False).split():
        interfaces = _virsh("domiflist", domain, check=False).split()
        if network in interfaces or bridge in interfaces:
            found.append(domain)
    return found


def _down(state: VmHostState) -> list[str]:
    """Undo what the state records, in reverse order; each step tolerates a half-made item."""
    removed: list[str] = []
    libvirt_up = libvirt_answers()
    if libvirt_up and state.network_created:
        for domain in _domains_on(state.network, state.bridge):  # VMs left behind by a failed test or vagrant run
            _virsh("destroy", domain, check=False)
            _virsh("undefine", domain, "--remove-all-storage", "--nvram", check=False)
            removed.append(f"domain {domain}")
            state.domains.append(domain)
    if "apt-proxy" in state.processes:
        services.stop_service(state, "apt-proxy")
        removed.append("apt-cacher-ng")
    if "http" in state.processes:
        services.stop_service(state, "http")
        removed.append("stand-in HTTP server")
    if libvirt_up and state.pool_created:
        _virsh("pool-destroy", state.pool, check=False)
        removed.append(f"pool {state.pool}")
    state.pool_created = False
    if libvirt_up and state.network_created and state.network in _virsh("net-list", "--all", "--name",
                                                                          check=False).split():
        _virsh("net-destroy", state.network, check=False)
        removed.append(f"network {state.network}")
    if state.network_created:
        for leftover in (*LIBVIRT_DNSMASQ.glob(f"{state.network}.*"), *LIBVIRT_DNSMASQ.glob(f"{state.bridge}.*")):
            leftover.unlink(missing_ok=True)
        sandbox_host.delete_link(state.bridge)
    state.network_created = False
    state.save()
    for key in ("libvirtd", "virtlogd"):
        proc = state.processes.pop(key, None)
        if proc is not None:
            stop_process(proc.pid, proc.marker, timeout=20)
            removed.append(f"{key} (pid {proc.pid})")
            state.save()
    if state.libvirt_chains_created and not libvirt_answers():
        _remove_libvirt_chains()
        removed.append("libvirt iptables chains")
    if state.libvirt_run_created and not libvirt_answers():
        shutil.rmtree(LIBVIRT_RUN, ignore_errors=True)
    shutil.rmtree(state.directory, ignore_errors=True)
    return removed


def _remove_libvirt_chains() -> None:
    for table, chains in LIBVIRT_CHAINS.items():
        rules = run(["iptables", "-w", "-t", table, "-S"], check=False).splitlines()
        for rule in rules:
            words = rule.split()
            if len(words) >= 4 and words[0] == "-A" and words[-1] in chains and words[-2] == "-j":
                run(["iptables", "-w", "-t", table, "-D", *words[1:]], check=False)
        for chain in chains:
            run(["iptables", "-w", "-t", table, "-F", chain], check=False)
            run(["iptables", "-w", "-t", table, "-X", chain], check=False)


def leftovers(name: str = "default") -> list[str]:
    """What of this tier is still on the host: for tests that check `down` left nothing behind."""
    found = []
    if VmHostState.load(name) is not None:
        found.append(f"state {state_root() / _state_name(name)}")
    pool_dir = str(box.vagrant_cache() / "pool" / name)
    for pid in _pids_of("qemu-system-x86_64"):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if pool_dir in cmdline:
                found.append(f"qemu pid {pid}")
    if sandbox_host.link_exists(bridge_name(name)):
        found.append(f"link {bridge_name(name)}")
    if libvirt_answers() and network_name(name) in _virsh("net-list", "--all", "--name", check=False).split():
        found.append(f"network {network_name(name)}")
    return found


def _pids_of(command: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == command[:15]:
                    pids.append(int(entry.name))
    return pids
