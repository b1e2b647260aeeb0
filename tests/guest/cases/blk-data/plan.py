#!/usr/bin/env python3
"""Plan for the blk-data case: what the host pre-writes, what the guest
reads back and writes, and the image expected afterwards.

    plan.py IMG EXPECTED DATA_DIR SEED

IMG must exist (a sparse file of the disk's size). This script
  - writes random regions into IMG (the data the guest must read back),
  - writes DATA_DIR/reads.txt    "off len sha256"  checked before any write,
           DATA_DIR/pattern.bin  the bytes the guest writes from,
           DATA_DIR/writes.txt   "cpu off len src" writes, in order per cpu,
           DATA_DIR/final.txt    "off len sha256"  checked after the writes,
  - makes EXPECTED: IMG with the guest's writes applied.

Offsets and lengths are multiples of 4 KiB so O_DIRECT accepts them. The
writes of vCPU 0 stay in the first half of the disk and those of vCPU 1 in
the second, so running the two lists concurrently has one possible result,
while writes of one vCPU may overlap each other (order then matters).
"""
import hashlib
import os
import random
import subprocess
import sys

K4 = 4096
PATTERN_SIZE = 2 << 20
N_PREWRITES = 8
N_WRITES_PER_CPU = 32


def sha(data):
    return hashlib.sha256(data).hexdigest()


def pread_all(f, off, length):
    f.seek(off)
    return f.read(length)


def pwrite(f, off, data):
    f.seek(off)
    f.write(data)


def main():
    img, expected, data_dir, seed = sys.argv[1:5]
    rng = random.Random(int(seed))
    size = os.path.getsize(img)
    blocks = size // K4
    os.makedirs(data_dir, exist_ok=True)

    def region(lo_blk, hi_blk, max_blks):
        n = rng.randint(1, max_blks)
        start = rng.randrange(lo_blk, hi_blk - n + 1)
        return start * K4, n * K4

    # Host-written data: random bytes in random places, plus one region that
    # was never written (must read as zeroes) and the disk's last block.
    reads = []
    with open(img, "r+b") as f:
        for _ in range(N_PREWRITES):
            off, length = region(0, blocks, 128)
            pwrite(f, off, rng.randbytes(length))
        pwrite(f, size - K4, rng.randbytes(K4))
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        for _ in range(N_PREWRITES):
            reads.append(region(0, blocks, 128))
        reads += [(size - K4, K4), (0, 64 * K4)]
        with open(os.path.join(data_dir, "reads.txt"), "w") as out:
            for off, length in reads:
                out.write(f"{off} {length} {sha(pread_all(f, off, length))}\n")

    pattern = rng.randbytes(PATTERN_SIZE)
    with open(os.path.join(data_dir, "pattern.bin"), "wb") as out:
        out.write(pattern)

    # Guest writes, 4 KiB to 1 MiB each. Each vCPU's list starts and ends at
    # the edges of its half: the first and the last block of the disk are
    # the classic off-by-one places.
    half = blocks // 2
    writes = []
    for cpu, (lo, hi) in enumerate(((0, half), (half, blocks))):
        mine = [region(lo, hi, 256) for _ in range(N_WRITES_PER_CPU)]
        mine[0] = (lo * K4, 16 * K4)
        mine[-1] = (hi * K4 - 8 * K4, 8 * K4)
        for off, length in mine:
            src = rng.randrange(0, (PATTERN_SIZE - length) // 512 + 1) * 512
            writes.append((cpu, off, length, src))
    with open(os.path.join(data_dir, "writes.txt"), "w") as out:
        for w in writes:
            out.write("%d %d %d %d\n" % w)

    subprocess.run(["cp", "--sparse=always", img, expected], check=True)
    with open(expected, "r+b") as f:
        for _, off, length, src in writes:
            pwrite(f, off, pattern[src:src + length])
        with open(os.path.join(data_dir, "final.txt"), "w") as out:
            for _, off, length, _ in writes:
                out.write(f"{off} {length} {sha(pread_all(f, off, length))}\n")


if __name__ == "__main__":
    main()
