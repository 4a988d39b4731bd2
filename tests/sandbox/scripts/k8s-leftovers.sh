#!/bin/bash
# Lists, one per line, every Kubernetes or pod network file, directory, mount, link, netfilter chain or rule, IPVS
# service, running kubelet and pod sandbox still on this node; prints nothing on a clean host. Read-only.
set -o pipefail
export LC_ALL=C
# containerd recreates /etc/cni/net.d empty whenever it starts: only its contents count.
[ -n "$(ls -A /etc/cni/net.d 2>/dev/null)" ] && echo "path /etc/cni/net.d"
for p in /etc/kubernetes /var/lib/kubelet /var/lib/etcd /var/lib/cni /run/flannel /var/lib/calico \
         /run/calico /var/log/calico /root/.kube/config; do
  [ -e "$p" ] || [ -L "$p" ] && echo "path $p"
done
for n in /run/netns/cni-*; do [ -e "$n" ] && echo "netns $n"; done
findmnt --list --noheadings --output TARGET | grep -E '^(/var/lib/kubelet|/run/netns/cni-|/var/run/netns/cni-)' \
  | sed 's/^/mount /'
ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | while read -r l; do
  case "$l" in
    cni0|flannel.1|flannel-v6.1|vxlan.calico|vxlan-v6.calico|kube-ipvs0|nodelocaldns|cali*) echo "link $l" ;;
    tunl0)
      if ip -o addr show dev tunl0 | grep -q inet || ip -o link show dev tunl0 | grep -q '[<,]UP[,>]'; then
        echo "link tunl0"
      fi ;;
  esac
done
ip -o link show master cni0 2>/dev/null | awk -F': ' '{print "link " $2 " (on cni0)"}'
for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
  command -v "$save" >/dev/null || continue
  "$save" 2>/dev/null | grep -E '(KUBE-|FLANNEL|cali-|CNI-|flanneld |cali:)' | sed "s/^/$save: /"
done | sort -u
if command -v nft >/dev/null; then
  nft list tables 2>/dev/null | grep -E ' (kube-proxy|calico)$' | sed 's/^/nft /'
fi
if command -v ipvsadm >/dev/null; then
  ipvsadm -Sn 2>/dev/null | grep '^-A' | sed 's/^/ipvs /'
fi
systemctl is-active --quiet kubelet && echo "service kubelet running"
if command -v crictl >/dev/null && [ -S /run/containerd/containerd.sock ]; then
  crictl pods -q 2>/dev/null | grep -E '^[0-9a-f]{12,64}$' | sed 's/^/pod /'
fi
exit 0
