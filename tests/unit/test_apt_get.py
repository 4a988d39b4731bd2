"""The module kubeboot_apt_get: when it reads the lists, what apt-get is asked, what counts as a change, and how a
failed or stalled apt-get is reported."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit import modules

DONE = "Setting up kubeadm (1.33.1-1.1) ...\n1 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.\n"
NOTHING = "kubeadm is already the newest version (1.33.1-1.1).\n0 upgraded, 0 newly installed, 0 to remove and 3 not " \
          "upgraded.\n"
DOWNGRADE = "0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded.\n"


def lists(tmp_path: Path, age: float | None) -> Path:
    """A lists directory: with one Packages file `age` seconds old, or empty (None)."""
    directory = tmp_path / "lists"
    directory.mkdir(parents=True)
    if age is not None:
        path = directory / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
        path.write_text("Package: x\n")
        os.utime(path, (time.time() - age, time.time() - age))
    return directory


def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: dict[str, Any], *, age: float | None = 60,
        outputs: dict[str, tuple[int, str, str]] | None = None,
        check_mode: bool = False) -> tuple[dict[str, Any], list[list[str]]]:
    mod = modules.load_module("kubeboot_apt_get")
    monkeypatch.setattr(mod, "LISTS", str(lists(tmp_path, age)))
    calls: list[list[str]] = []
    answers = {"update": (0, "Reading package lists...\n", ""), "install": (0, DONE, ""), **(outputs or {})}

    def run_command(self: Any, cmd: list[str], **kwargs: Any) -> tuple[int, str, str]:
        assert kwargs["environ_update"]["DEBIAN_FRONTEND"] == "noninteractive"
        calls.append(cmd)
        return answers["update" if "update" in cmd else "install"]

    return modules.run_main(monkeypatch, mod, args, run_command, {"timeout"}, "/usr/bin", check_mode), calls


def test_installs_in_one_call_under_a_time_limit_and_reads_fresh_lists_only_when_asked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result, calls = run(monkeypatch, tmp_path, {"name": ["kubeadm=1.33.1-1.1", "kubelet=1.33.1-1.1"],
                                                "allow_downgrade": True, "allow_change_held_packages": True})
    assert calls == [["/usr/bin/timeout", "-k", "10", "900", "apt-get", "-q", "-y",
                      "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                      "--allow-downgrades", "--allow-change-held-packages", "install",
                      "kubeadm=1.33.1-1.1", "kubelet=1.33.1-1.1"]]
    assert result["changed"] is True
    assert result["cache_updated"] is False


@pytest.mark.parametrize(("args", "age", "read"), [
    ({"update_cache": True}, 60, True),  # asked for
    ({}, None, True),  # no lists at all
    ({"cache_valid_time": 3600}, 7200, True),  # older than allowed
    ({"cache_valid_time": 3600}, 60, False),
    ({}, 7200, False),  # no age limit given
])
def test_the_lists_are_read_first_when_due(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: dict[str, Any],
                                           age: float | None, read: bool) -> None:
    result, calls = run(monkeypatch, tmp_path, {"name": ["containerd"], "timeout": 60, **args}, age=age)
    assert result["cache_updated"] is read
    assert [c[4:] for c in calls[:-1]] == ([["apt-get", "-q", "update"]] if read else [])
    assert calls[-1][:4] == ["/usr/bin/timeout", "-k", "10", "60"]


@pytest.mark.parametrize(("output", "changed"), [(DONE, True), (NOTHING, False), (DOWNGRADE, True)])
def test_changed_only_when_apt_get_did_something(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, output: str,
                                                 changed: bool) -> None:
    result, _ = run(monkeypatch, tmp_path, {"name": ["kubeadm"]}, outputs={"install": (0, output, "")})
    assert result["changed"] is changed


def test_check_mode_simulates_or_reports_due_without_reading_the_lists(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    result, calls = run(monkeypatch, tmp_path, {"name": ["kubeadm"]}, outputs={"install": (0, NOTHING, "")},
                        check_mode=True)
    assert result["changed"] is False
    assert calls[0][-3:] == ["-s", "install", "kubeadm"]
    result, calls = run(monkeypatch, tmp_path / "x", {"name": ["kubeadm"], "update_cache": True}, check_mode=True)
    assert (result["changed"], calls) == (True, [])


@pytest.mark.parametrize(("answer", "message"), [
    ((100, "", "E: Version '1.33.9-1.1' for 'kubeadm' was not found\n"),
     "apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install kubeadm=1.33.9-1.1 "
     "failed (rc 100): E: Version '1.33.9-1.1' for 'kubeadm' was not found"),
    ((124, "Get:1 http://mirror", ""),
     "apt-get -q -y... did not finish within 900s (timeout); the mirror or proxy may be stalled"),
])
def test_a_failed_or_stalled_apt_get_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             answer: tuple[int, str, str], message: str) -> None:
    with pytest.raises(AssertionError) as failure:
        run(monkeypatch, tmp_path, {"name": ["kubeadm=1.33.9-1.1"]}, outputs={"install": answer})
    assert failure.value.args[0]["msg"] == message
