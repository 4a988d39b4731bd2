"""kubeadm stand-in."""
