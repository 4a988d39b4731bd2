"""The package-database query that lets roles skip the package manager when nothing is missing."""

from __future__ import annotations

from kubeboot import packages

DPKG = (
    "kmod\tii \t30+20221128-1\n"
    "kubeadm\thi \t1.33.1-1.1\n"
    "kubelet\tii \t1.33.1-1.1\n"
    "socat\trc \t1.7.4.4-2\n"  # removed, configuration left: not installed
    "curl:amd64\tii \t7.88.1-10\n"
    "ebtables\tun \t\n"  # known, never installed
)
RPM = "chrony\tii\t4.5-3.el9\npackage socat is not installed\n"


def test_installed_held_and_missing_from_dpkg() -> None:
    assert packages.missing(DPKG, ["kmod", "socat", "curl", "ebtables", "gpg"]) == ["socat", "ebtables", "gpg"]
    assert packages.parse(DPKG)["kubeadm"].held
    assert packages.not_held(DPKG, ["kubeadm", "kubelet", "kubectl"]) == ["kubelet"]


def test_versions_are_compared_exactly_or_by_glob() -> None:
    assert packages.missing(DPKG, ["kubeadm=1.33.1-1.1", "kubelet=1.33.1-*"]) == []
    assert packages.missing(DPKG, ["kubeadm=1.33.2-1.1", "kubelet=1.33.2-*"]) == ["kubeadm=1.33.2-1.1",
                                                                                   "kubelet=1.33.2-*"]


def test_rpm_output_and_empty_output() -> None:
    assert packages.missing(RPM, ["chrony", "socat"]) == ["socat"]
    assert packages.missing("", ["a", "b"]) == ["a", "b"]


def test_newer_names_what_an_install_of_the_inventory_version_would_downgrade() -> None:
    output = ("kubeadm\thi\t1.33.1-1.1\nkubelet\thi\t1.33.1-1.1\nkubectl\tii\t1.32.5-1.1\n")
    assert packages.newer(output, ["kubeadm", "kubelet", "kubectl"], "1.32.5") == [
        "kubeadm 1.33.1-1.1", "kubelet 1.33.1-1.1"]
    assert packages.newer(output, ["kubeadm", "kubelet", "kubectl"], "1.33.1") == []
    assert packages.newer(output, ["kubectl"], "1.32.10") == []  # numbers, not strings: 1.32.10 > 1.32.5
    assert packages.newer("", ["kubelet"], "1.32.5") == []


def test_sections_split_one_command_output_by_its_marks() -> None:
    output = "noise\n@@packages\nkubeadm\tii\t1.33.1-1.1\n@@sysctl\n1\n0\n@@empty\n@@hostname\ncp1\ncp1\n"
    assert packages.sections(output) == {
        "packages": ["kubeadm\tii\t1.33.1-1.1"], "sysctl": ["1", "0"], "empty": [], "hostname": ["cp1", "cp1"],
    }


def test_sections_of_an_output_without_marks_are_none() -> None:
    assert packages.sections("") == {}
    assert packages.sections("a\nb\n") == {}


def test_parts_split_several_reads_run_as_one_command_and_keep_each_reads_sections() -> None:
    output = ("banner\n@@@kube_packages\nkubeadm\tii\t1.33.1-1.1\n@@kubelet\nenabled\n"
              "@@@os_prep\n@@packages\nkmod\tii\t30\n@@@containerd\n")
    found = packages.parts(output)
    assert found == {"kube_packages": "kubeadm\tii\t1.33.1-1.1\n@@kubelet\nenabled",
                     "os_prep": "@@packages\nkmod\tii\t30", "containerd": ""}
    assert packages.sections(found["kube_packages"]) == {"kubelet": ["enabled"]}
    assert packages.missing(found["kube_packages"], ["kubeadm", "kubelet"]) == ["kubelet"]
    assert packages.sections(found["os_prep"]) == {"packages": ["kmod\tii\t30"]}
    assert packages.parts("no marks\n") == {}


def test_missing_reads_the_query_as_its_lines_too() -> None:
    lines = ["kmod\tii \t30+20221128-1", "kubeadm\thi \t1.33.1-1.1", "curl\tun \t"]
    assert packages.missing(lines, ["kmod", "kubeadm=1.33.1-*", "curl", "socat"]) == ["curl", "socat"]
    assert packages.missing("\n".join(lines), ["kmod", "curl"]) == ["curl"]


def test_files_differ_names_each_file_whose_content_mode_or_owner_a_copy_would_change() -> None:
    import hashlib

    content = "# managed\nbr_netfilter\n"
    sha = hashlib.sha1(content.encode()).hexdigest()
    lines = [f"{sha} 644 root root /etc/a.conf", f"{sha} 600 root root /etc/b.conf",
             f"{'0' * 40} 644 root root /etc/c.conf", f"{sha} 644 root adm /etc/hosts"]
    wanted = {"/etc/a.conf": content, "/etc/b.conf": content, "/etc/c.conf": content, "/etc/d.conf": content,
              "/etc/hosts": None}
    assert packages.files_differ(lines, wanted) == ["/etc/b.conf", "/etc/c.conf", "/etc/d.conf", "/etc/hosts"]
    assert packages.files_differ("\n".join(lines), {"/etc/a.conf": content, "/etc/b.conf": None}, mode="0600") \
        == ["/etc/a.conf"]


def test_digests_turn_path_and_sha1_lines_into_wanted_entries() -> None:
    assert packages.digests("/etc/a/hosts.toml abc\n\n/etc/b/hosts.toml def\n") == {
        "/etc/a/hosts.toml": {"sha1": "abc"}, "/etc/b/hosts.toml": {"sha1": "def"}}
    assert packages.files_differ(["abc 644 root root /etc/a/hosts.toml"], packages.digests("/etc/a/hosts.toml abc")) \
        == []
