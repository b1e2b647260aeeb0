#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pcap.py gen FILE SEED COUNT | cmp A B - the frames the DPDK interop test
(net-dpdk.sh) feeds testpmd's net_pcap port, and the check that what came
back through vhostd is the same frames, byte for byte and in order.
Classic libpcap format, Ethernet link type; frames 60..1514 bytes to
our device's MAC with an IEEE local-experimental ethertype, a sequence
number and random payload."""
import struct, random, sys
def write(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack('<IIII', i, 0, len(fr), len(fr)))
            f.write(fr)
def read(path):
    d = open(path, 'rb').read()
    off, out = 24, []
    while off + 16 <= len(d):
        _, _, incl, _ = struct.unpack_from('<IIII', d, off)
        off += 16
        out.append(d[off:off + incl]); off += incl
    return out
def gen(seed, n):
    r = random.Random(seed)
    fr = []
    for i in range(n):
        size = r.choice([60, 64, 128, 512, 1000, 1514, r.randint(60, 1514)])
        dst = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]); src = bytes([0x52, 0x54, 0, 0xaa, 0, seed & 0xff])
        body = struct.pack('>HI', 0x88b5, i) + bytes(r.getrandbits(8) for _ in range(size - 18))
        fr.append(dst + src + body)
    return fr
if sys.argv[1] == 'gen':
    write(sys.argv[2], gen(int(sys.argv[3]), int(sys.argv[4])))
else:
    a, b = read(sys.argv[2]), read(sys.argv[3])
    print(len(a), len(b), 'equal' if a == b else 'DIFFERENT')
    sys.exit(0 if a == b else 1)
