"""A Debian bookworm Vagrant box for the libvirt provider, built offline from Debian packages and cached.

Debian's own way (debootstrap, linux-image-amd64, grub-pc) into a raw disk image converted to qcow2. The host kernel
here has no partition-table support and no device mapper, so the disk is never partitioned through the kernel: the
root filesystem is made on a loop device at the partition's offset, and GRUB's boot sector and core image are written
into the raw image the way grub-install writes them, with a grub.cfg that `update-grub` inside a VM regenerates the
ordinary way. Networking is systemd-networkd with DHCP, as in Debian 12's cloud images; no apt proxy is baked in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeboot.errors import KubebootError, UsageError
from kubeboot.sandbox.host import mounts_under, run, stop_process, unmount_tree
from kubeboot.sandbox.state import cache_root

SUITE = "bookworm"
BOX_NAME = "kubeboot/debian12"
BUILD_VERSION = "5"  # bump when the build below changes what the image holds
DISK_GB = 10
PARTITION_START = 2048  # sectors: 1 MiB before the partition, room for GRUB's core image
SWAP_MB = 256  # a swap file, so the os_prep role meets real swap to turn off
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# A minimal server like Debian's cloud images (systemd-networkd with DHCP), plus what Vagrant and Ansible need.
# The kernel and GRUB follow in a second step, once debconf knows where GRUB goes.
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "udev", "kmod", "iproute2", "netbase", "openssh-server", "sudo", "python3",
    "procps", "iputils-ping", "ca-certificates", "less", "rsync", "e2fsprogs", "initramfs-tools", "apt-utils",
)
BOOT_PACKAGES = ("linux-image-amd64", "grub-pc")
# Debian packages the roles install on every node, already in the box: unpacking them takes minutes per VM under
# QEMU emulation. The roles find them installed, as on hosts from a prepared image; the sandbox scenarios, whose nodes
# start from minbase, install them from nothing. nfs-kernel-server is left out (it would run on every VM; the NFS
# server's role installs it). Documentation is not unpacked (dpkg path-exclude), and man-db's index is not rebuilt
# after each install. The package lists are not kept, and their directory is dated 1970: the first apt task with a
# cache_valid_time reads them afresh (through the proxy set at VM creation) instead of trusting an empty cache.
PRELOAD_PACKAGES = (
    "python3-apt", "kmod", "iptables", "conntrack", "socat", "ebtables", "ethtool", "curl", "gpg", "ca-certificates",
    "systemd-timesyncd", "containerd", "runc", "nfs-common",
)
# The initramfs holds only what mounts the root filesystem (MODULES=list), as in Debian's cloud images built for
# one hypervisor: no NIC driver, so the NICs are named once, by udev in the real root, where the .link files are.
# (With MODULES=most, udev in the initramfs names them first and networkd may bring them up before udev in the
# real root tries its .link files: "already up, cannot rename". The nic_rename role rebuilds such initramfs images.)
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")
NODOC = (
    "path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\npath-exclude=/usr/share/man/*\n"
    "path-exclude=/usr/share/info/*\npath-exclude=/usr/share/locale/*\npath-include=/usr/share/locale/locale.alias\n"
)
REQUIRED_TOOLS = {
    "debootstrap": "debootstrap", "qemu-img": "qemu-utils", "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs",
    "losetup": "mount", "blkid": "util-linux", "vagrant": "vagrant",
}
# Vagrant's well-known insecure public key: Vagrant swaps it for a key of its own on the first `vagrant up`.
VAGRANT_INSECURE_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct"
    "1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyU"
    "ecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96h"
    "rucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key"
)
CMDLINE = "console=tty0 console=ttyS0,115200n8"
INFO_FILE = "kubeboot-box.json"


@dataclass
class BoxResult:
    path: Path
    key: str
    build_seconds: float  # 0 when the cached box was used
    added: bool  # True when `vagrant box add` ran


def vagrant_cache() -> Path:
    return cache_root() / "vagrant"


def _sources_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    directory = Path("/etc/apt/sources.list.d")
    if directory.is_dir():
        files += sorted(directory.glob("*.list")) + sorted(directory.glob("*.sources"))
    return [f for f in files if f.is_file()]


def _entries(path: Path) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` source in one apt sources file, one-line or deb822."""
    text = path.read_text(errors="replace")
    entries: list[tuple[str, list[str]]] = []
    if path.suffix == ".sources":
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    name, value = line.split(":", 1)
                    fields[name.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split():
                entries += [(uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split()]
        return entries
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries


def host_mirrors() -> tuple[str, str]:
    """The Debian and Debian security mirrors this host's apt sources use for bookworm (defaults when none)."""
    mirror, security = "", ""
    for path in _sources_files():
        for uri, suites in _entries(path):
            if not uri.startswith("http://"):
                continue  # the guests reach it through apt-cacher-ng, which proxies plain HTTP
            if not mirror and SUITE in suites:
                mirror = uri.rstrip("/")
            if not security and f"{SUITE}-security" in suites:
                security = uri.rstrip("/")
    return mirror or DEFAULT_MIRROR, security or DEFAULT_SECURITY_MIRROR


def box_key(mirror: str, security: str) -> str:
    text = "\n".join([SUITE, mirror, security, BUILD_VERSION, str(DISK_GB), str(SWAP_MB), CMDLINE,
                      *BASE_PACKAGES, *BOOT_PACKAGES, *PRELOAD_PACKAGES, *INITRAMFS_MODULES, NODOC,
                      VAGRANT_INSECURE_KEY])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def box_path(key: str) -> Path:
    return vagrant_cache() / f"debian12-{key}" / "kubeboot-debian12-libvirt.box"


def check_host() -> None:
    if os.geteuid() != 0:
        raise UsageError("building the box needs root (loop devices, mounts, chroot): run it with sudo or as root")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise UsageError(f"missing host packages for the box: apt-get install {' '.join(missing)} "
                         "(or run scripts/setup.sh)")


def ensure_box(*, name: str = BOX_NAME, force: bool = False, log: Path | None = None) -> BoxResult:
    """Build the box unless one for the same inputs is cached, then make sure Vagrant holds exactly that box."""
    check_host()
    mirror, security = host_mirrors()
    key = box_key(mirror, security)
    path = box_path(key)
    seconds = 0.0
    vagrant_cache().mkdir(parents=True, exist_ok=True)
    with (vagrant_cache() / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not path.exists():
            started = time.monotonic()
            build(path, mirror, security, key, log=log)
            seconds = time.monotonic() - started
            _drop_stale(path.parent)
        added = register(name, path, key, force=force)
    return BoxResult(path=path, key=key, build_seconds=seconds, added=added)


def _drop_stale(current: Path) -> None:
    """Older builds (another key) go, so the cache does not grow without bound."""
    for other in current.parent.glob("debian12-*"):
        if other != current and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME", str(Path.home() / ".vagrant.d")))


def registered_key(name: str = BOX_NAME) -> str | None:
    """The build key of the box Vagrant holds under NAME for libvirt; None when it holds none (or another box)."""
    box_dir = vagrant_home() / "boxes" / name.replace("/", "-VAGRANTSLASH-")
    for info in sorted(box_dir.glob(f"*/libvirt/{INFO_FILE}")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            return str(json.loads(info.read_text())["key"])
    return None


def register(name: str, path: Path, key: str, *, force: bool = False) -> bool:
    """`vagrant box add` unless Vagrant already holds this very build under NAME."""
    if not force and registered_key(name) == key:
        return False
    _say(f"vagrant box add --name {name} {path}")
    run(["vagrant", "box", "add", "--force", "--name", name, "--provider", "libvirt", str(path)], timeout=900)
    return True


def _say(message: str) -> None:
    print(f"box: {message}", flush=True)


@contextlib.contextmanager
def _loop(image: Path, offset: int, size: int) -> Iterator[str]:
    device = run(["losetup", "--find", "--show", "--offset", str(offset), "--sizelimit", str(size), str(image)])
    try:
        yield device.strip()
    finally:
        run(["losetup", "--detach", device.strip()], check=False)


def build(target: Path, mirror: str, security: str, key: str, log: Path | None = None) -> None:
    """Build into a .partial directory and move it into place only when complete."""
    work = target.parent.with_name(target.parent.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _build_in(work, mirror, security, key, log)
        (work / "disk.raw").unlink(missing_ok=True)
        shutil.rmtree(target.parent, ignore_errors=True)
        work.rename(target.parent)
    finally:
        if work.exists():
            unmount_tree(work)
            shutil.rmtree(work, ignore_errors=True)


def _partition(raw: Path) -> None:
    layout = f"label: dos\nstart={PARTITION_START}, type=83, bootable\n"
    result = subprocess.run(["sfdisk", "--quiet", str(raw)], input=layout, text=True, capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise KubebootError(f"sfdisk {raw} failed: {result.stderr.strip()}")


def _build_in(work: Path, mirror: str, security: str, key: str, log: Path | None) -> None:
    raw = work / "disk.raw"
    mnt = work / "mnt"
    mnt.mkdir()
    size = DISK_GB * 1024**3
    with raw.open("wb") as handle:
        handle.truncate(size)
    _partition(raw)
    offset = PARTITION_START * 512
    with _loop(raw, offset, size - offset) as device:
        run(["mkfs.ext4", "-q", "-L", "root", device])
        uuid = run(["blkid", "-s", "UUID", "-o", "value", device]).strip()
        run(["mount", device, str(mnt)])
        try:
            started = time.monotonic()
            _say(f"debootstrap {SUITE} from {mirror}")
            output = run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                          SUITE, str(mnt), mirror], timeout=3600)
            if log is not None:
                log.write_text(output)
            _say(f"debootstrap done in {time.monotonic() - started:.0f}s; installing the kernel and GRUB")
            _configure(mnt, uuid, mirror, security)
            shutil.copyfile(mnt / "boot/grub/i386-pc/core.img", work / "core.img")
            shutil.copyfile(mnt / "usr/lib/grub/i386-pc/boot.img", work / "boot.img")
            run(["fstrim", str(mnt)], check=False)  # blocks of deleted files (debootstrap's .debs) become holes
        finally:
            _unmount_strict(mnt)
    _write_boot_sectors(raw, (work / "boot.img").read_bytes(), (work / "core.img").read_bytes())
    _say("converting to qcow2")
    qcow = work / "box.img"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)], timeout=1800)
    raw.unlink()
    _write_box(work, qcow, key, mirror)


def _stop_chroot_processes(root: Path) -> None:
    """Stop what a package script left running inside the chroot (its PIDs, found by their root directory)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "root")).is_relative_to(root):
                    stop_process(int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")[0].decode())


def _unmount_strict(root: Path) -> None:
    """Unmount everything under root, never lazily: the image is read right after, and must be complete."""
    _stop_chroot_processes(root)
    run(["sync"], check=False)
    for mountpoint in sorted(mounts_under(root), key=len, reverse=True):
        for _attempt in range(10):
            run(["umount", mountpoint], check=False)
            if mountpoint not in mounts_under(root):
                break
            _stop_chroot_processes(root)
            time.sleep(1)
        else:
            raise KubebootError(f"cannot unmount {mountpoint}: something still uses it")


def _chroot(root: Path, *args: str, timeout: float = 1800) -> str:
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true", "LC_ALL=C",
           "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    return run(["chroot", str(root), *env, *args], timeout=timeout)


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.symlink_to(target)


def _configure(root: Path, uuid: str, mirror: str, security: str) -> None:
    for source, flags in (("/proc", ["-t", "proc"]), ("/sys", ["-t", "sysfs"]), ("/dev", ["--bind"]),
                          ("/dev/pts", ["--bind"])):
        target = root / source.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        run(["mount", *flags, source if flags == ["--bind"] else source.strip("/"), str(target)])
    _write(root, "/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)  # no service starts in the chroot
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    selections = (
        "grub-pc grub-pc/install_devices multiselect\n"
        "grub-pc grub-pc/install_devices_empty boolean true\n"
    )
    _write(root, "/tmp/selections", selections)
    _chroot(root, "debconf-set-selections", "/tmp/selections")
    _write(root, "/etc/initramfs-tools/conf.d/kubeboot.conf", "MODULES=list\n")
    _write(root, "/etc/initramfs-tools/modules", "".join(f"{module}\n" for module in INITRAMFS_MODULES))
    _chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *BOOT_PACKAGES, timeout=3600)
    # Inside the VM the disk is /dev/vda: upgrades of grub-pc reinstall GRUB there.
    _write(root, "/tmp/selections", "grub-pc grub-pc/install_devices multiselect /dev/vda\n")
    _chroot(root, "debconf-set-selections", "/tmp/selections")
    (root / "tmp/selections").unlink()
    _write(root, "/etc/dpkg/dpkg.cfg.d/01-kubeboot-nodoc", NODOC)
    _write(root, "/tmp/selections", "man-db man-db/auto-update boolean false\n")
    _chroot(root, "debconf-set-selections", "/tmp/selections")
    (root / "tmp/selections").unlink()
    (root / "var/lib/man-db/auto-update").unlink(missing_ok=True)
    _chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *PRELOAD_PACKAGES, timeout=3600)

    _write(root, "/etc/fstab", f"UUID={uuid} / ext4 errors=remount-ro 0 1\n/swapfile none swap sw 0 0\n")
    run(["fallocate", "-l", f"{SWAP_MB}M", str(root / "swapfile")])
    (root / "swapfile").chmod(0o600)
    run(["mkswap", "-q", str(root / "swapfile")])
    _grub(root, uuid)

    _write(root, "/etc/hostname", "debian\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "/etc/systemd/network/90-dhcp.network",
           "# Every Ethernet NIC asks DHCP for an address (Vagrant's own files, 50-vagrant-*, come first).\n"
           "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nUseDomains=true\n")
    _write(root, "/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf",
           "[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60\n")
    wants = root / "etc/systemd/system"
    _link(wants / "multi-user.target.wants/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service")
    _link(wants / "sockets.target.wants/systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket")
    _link(wants / "network-online.target.wants/systemd-networkd-wait-online.service",
          "/lib/systemd/system/systemd-networkd-wait-online.service")
    _write(root, "/etc/systemd/system/ssh-host-keys.service",
           "[Unit]\nDescription=Generate this machine's own SSH host keys\nBefore=ssh.service\n"
           "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
           "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n[Install]\nWantedBy=multi-user.target\n")
    _link(wants / "multi-user.target.wants/ssh-host-keys.service", "/etc/systemd/system/ssh-host-keys.service")
    _write(root, "/etc/ssh/sshd_config.d/vagrant.conf", "UseDNS no\n")

    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", "vagrant")
    _write(root, "/tmp/password", "vagrant:vagrant\n")
    _chroot(root, "sh", "-c", "chpasswd < /tmp/password")
    (root / "tmp/password").unlink()
    _write(root, "/etc/sudoers.d/vagrant", "vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n", 0o440)
    _write(root, "/home/vagrant/.ssh/authorized_keys", VAGRANT_INSECURE_KEY + "\n", 0o600)
    (root / "home/vagrant/.ssh").chmod(0o700)
    _chroot(root, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")

    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    _write(root, "/etc/apt/sources.list.d/debian.sources",
           f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
           f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    _chroot(root, "apt-get", "clean")
    for listing in (root / "var/lib/apt/lists").glob("*_*"):
        listing.unlink()
    (root / "var/lib/apt/periodic/update-success-stamp").unlink(missing_ok=True)
    os.utime(root / "var/lib/apt/lists", (0, 0))  # "never read": see PRELOAD_PACKAGES
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")  # each clone makes its own: distinct DHCP client ids
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    (root / "usr/sbin/policy-rc.d").unlink()
    _write(root, "/etc/resolv.conf", "# no DNS on the test network: apt goes through the proxy set at VM creation\n")
    _stop_chroot_processes(root)
    for mountpoint in ("dev/pts", "dev", "sys", "proc"):
        run(["umount", str(root / mountpoint)], check=False)


def _grub(root: Path, uuid: str) -> None:
    """GRUB's modules, core image and a grub.cfg; /etc/default/grub so that update-grub in the VM agrees."""
    default = root / "etc/default/grub"
    text = default.read_text()
    text = re.sub(r"^GRUB_TIMEOUT=.*$", "GRUB_TIMEOUT=1", text, flags=re.MULTILINE)
    text = re.sub(r'^GRUB_CMDLINE_LINUX=.*$', f'GRUB_CMDLINE_LINUX="{CMDLINE}"', text, flags=re.MULTILINE)
    text += 'GRUB_TERMINAL="console serial"\nGRUB_SERIAL_COMMAND="serial --speed=115200"\n'
    default.write_text(text)
    modules = root / "boot/grub/i386-pc"
    modules.mkdir(parents=True, exist_ok=True)
    for item in (root / "usr/lib/grub/i386-pc").iterdir():
        if item.suffix in (".mod", ".lst", ".o"):
            shutil.copyfile(item, modules / item.name)
    _chroot(root, "grub-mkimage", "-O", "i386-pc", "-o", "/boot/grub/i386-pc/core.img",
            "-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2")
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise KubebootError("the box has no kernel in /boot after installing linux-image-amd64")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    (root / "boot/grub/grub.cfg").write_text(
        "# Written by the kubeboot box builder; update-grub inside the VM replaces it.\n"
        "serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n"
        "set default=0\nset timeout=1\ninsmod part_msdos\ninsmod ext2\n"
        f"search --no-floppy --fs-uuid --set=root {uuid}\n"
        f"menuentry 'Debian GNU/Linux, with Linux {version}' {{\n"
        f"  linux /boot/vmlinuz-{version} root=UUID={uuid} ro {CMDLINE} quiet\n"
        f"  initrd /boot/initrd.img-{version}\n}}\n"
    )


def _write_boot_sectors(raw: Path, boot_img: bytes, core_img: bytes) -> None:
    """What grub-install does for i386-pc: boot.img's code into the MBR (keeping the partition table) and the core
    image right after it, in the gap before the first partition (boot.img loads sector 1 by default)."""
    if len(boot_img) != 512:
        raise KubebootError(f"GRUB boot.img is {len(boot_img)} bytes, not 512")
    if len(core_img) > (PARTITION_START - 1) * 512:
        raise KubebootError(f"GRUB core.img ({len(core_img)} bytes) does not fit before the first partition")
    with raw.open("r+b") as disk:
        disk.seek(0)
        disk.write(boot_img[:440])
        disk.seek(512)
        disk.write(core_img)


def _write_box(work: Path, qcow: Path, key: str, mirror: str) -> None:
    metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GB}
    (work / "metadata.json").write_text(json.dumps(metadata) + "\n")
    info = {"key": key, "suite": SUITE, "mirror": mirror, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (work / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    box = work / "kubeboot-debian12-libvirt.box"
    with tarfile.open(box, "w") as tar:  # uncompressed: qcow2 is already sparse, and gzip costs minutes here
        for name in ("metadata.json", INFO_FILE, "box.img"):
            tar.add(work / name, arcname=name)
    qcow.unlink()
    for name in ("boot.img", "core.img"):
        (work / name).unlink(missing_ok=True)
    (work / "mnt").rmdir()
