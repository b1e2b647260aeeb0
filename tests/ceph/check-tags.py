#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-tags.py IMAGE GEN - every 512-byte sector of IMAGE (a raw export)
holds what vhost-bench --verify writes there in the run of generation GEN
(hex): the tag {magic "vbch", GEN, its own LBA, a sequence number} and the
words derived from that tag (tools/vhost-bench.c: sector_fill).  So the
data a front-end wrote through vhostd reached the storage, each sector at
its place.  Prints how many sectors were checked; exit 1 on the first bad one."""
import struct
import sys

M = (1 << 64) - 1
MAGIC = 0x76626368


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)


def main():
    data = open(sys.argv[1], "rb").read()
    gen = int(sys.argv[2], 16)
    if not data or len(data) % 512:
        sys.exit(f"check-tags: {sys.argv[1]}: {len(data)} bytes, not whole sectors")
    for lba in range(len(data) // 512):
        s = data[lba * 512:(lba + 1) * 512]
        magic, g, tlba, seq = struct.unpack_from("<IIQQ", s)
        if (magic, g, tlba) != (MAGIC, gen, lba):
            sys.exit(f"check-tags: sector {lba}: tag {magic:#x} {g:#x} {tlba}, "
                     f"want {MAGIC:#x} {gen:#x} {lba}")
        seed = splitmix64(lba ^ (gen << 32 | MAGIC))
        words = struct.unpack_from("<61Q", s, 24)
        for i, w in enumerate(words):
            if w != splitmix64(seed ^ ((seq * 0xFF51AFD7ED558CCD) & M) ^ i):
                sys.exit(f"check-tags: sector {lba}: word {i} differs (seq {seq})")
    print(f"check-tags: {len(data) // 512} sectors hold their tags (generation {gen:#010x})")


main()
