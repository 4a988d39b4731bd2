"""Offline stand-in for kubeadm, kubelet and kube-apiserver (test infrastructure only)."""
