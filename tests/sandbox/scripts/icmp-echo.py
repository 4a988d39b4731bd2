"""ICMP echo to argv[1] (up to 5 tries, 1 s each); exit 0 on a reply. Run inside a pod's network namespace."""
import os
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


dst = sys.argv[1]
ident = os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(1)
for seq in range(5):
    payload = b"kubeboot"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    sock.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload, (dst, 0))
    end = time.monotonic() + 1
    while time.monotonic() < end:
        try:
            data, (src, _) = sock.recvfrom(1024)
        except TimeoutError:
            break
        if src == dst and data[20] == 0 and struct.unpack("!H", data[24:26])[0] == ident:
            print(f"reply from {dst}")
            sys.exit(0)
print(f"no reply from {dst}")
sys.exit(1)
