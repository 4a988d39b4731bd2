"""kube-apiserver stand-in: enough of the REST API for the real kubectl 1.33 and the kubeadm stand-in."""
