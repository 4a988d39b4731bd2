"""The Vagrant tier's host services: libvirtd probes QEMU once, not on every call.

Where /dev/kvm exists but cannot run the VMs (they are emulated), libvirtd runs with /dev/kvm hidden in a mount
namespace of its own; otherwise libvirt drops its cache of QEMU's capabilities on every call (seconds each here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kubeboot.vm import host

pytestmark = [pytest.mark.vagrant]

CAPS_CACHE = Path("/var/cache/libvirt/qemu/capabilities")


def domcapabilities(info: host.HostInfo) -> None:
    subprocess.run(["virsh", "-q", "-c", info.libvirt_uri, "domcapabilities", "--virttype", "qemu"],
                   capture_output=True, text=True, check=True, timeout=300)


def cache_state() -> dict[str, int]:
    return {entry.name: entry.stat().st_mtime_ns for entry in CAPS_CACHE.glob("*.xml")}


def test_libvirt_keeps_its_qemu_capabilities(vagrant_host: host.HostInfo) -> None:
    domcapabilities(vagrant_host)  # the first call may probe
    before = cache_state()
    assert before, f"libvirt cached no QEMU capabilities in {CAPS_CACHE}"
    for _ in range(3):
        domcapabilities(vagrant_host)
    assert cache_state() == before, "libvirt probed QEMU again: its capabilities cache does not hold"


def test_libvirtd_sees_no_kvm_when_vms_are_emulated(vagrant_host: host.HostInfo) -> None:
    if not host.mask_kvm():
        pytest.skip("no /dev/kvm here, or KUBEBOOT_VM_DRIVER=kvm: libvirtd sees the host's /dev")
    pids = subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True, text=True, check=False).stdout.split()
    assert pids, "no libvirtd runs"
    for pid in pids:
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        assert any(line.split()[4] == "/dev/kvm" for line in mounts), f"libvirtd (pid {pid}) sees the host's /dev/kvm"
    assert os.stat("/dev/kvm").st_mode & 0o170000 == 0o020000, "the host's /dev/kvm is no longer a device"
