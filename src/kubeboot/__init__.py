"""kubeboot: Python helpers behind the kubeadm Ansible roles (validation, planning, sandbox, discovery)."""

__version__ = "0.1.0"
