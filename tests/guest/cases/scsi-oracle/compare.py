#!/usr/bin/env python3
# scsi-oracle, host side: compare the guest's "RAW name status data sense"
# lines from vhostd (argv[1]) with QEMU's scsi-hd (argv[2]), field by field,
# except for the differences we mean to have (printed as "allowed").
import sys


def load(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) == 4:
            out[f[0]] = (f[1], f[2], f[3])
    return out


def strip_inquiry_strings(data):
    # Vendor, product, revision (bytes 8..35): ours, not QEMU's.
    return data[:16] + "." * 56 + data[72:] if len(data) >= 72 else data


def first_designator(data):
    # VPD 0x83: QEMU's ASCII designator first; we add an NAA one after it.
    b = bytes.fromhex(data)
    if len(b) < 8:
        return data
    return b[4:8 + b[7]].hex()


def mode_pages(data, ten):
    # Header (device-specific parameter without DPOFUA) and pages by number,
    # without the control page only we have.
    b = bytearray(bytes.fromhex(data))
    hdr = 8 if ten else 4
    bd = (b[6] << 8 | b[7]) if ten else b[3]
    dsp = 3 if ten else 2
    b[dsp] &= ~0x10
    pages = {}
    off = hdr + bd
    while off + 2 <= len(b):
        pages[b[off] & 0x3f] = b[off:off + 2 + b[off + 1]].hex()
        off += 2 + b[off + 1]
    pages.pop(0x0a, None)
    return (b[1:hdr].hex() if not ten else b[2:hdr].hex(), b[hdr:hdr + bd].hex(), pages)


ours, qemu = load(sys.argv[1]), load(sys.argv[2])
bad = 0
for name in qemu:
    if name not in ours:
        print(f"MISSING {name}")
        bad += 1
        continue
    (st1, d1, s1), (st2, d2, s2) = ours[name], qemu[name]
    note = ""
    if name.startswith("inquiry"):
        d1, d2 = strip_inquiry_strings(d1), strip_inquiry_strings(d2)
        note = "vendor/product/revision"
    elif name == "requestsense":
        # Sense-key specific bytes 15..17: our field pointer, QEMU has none.
        d1, d2 = d1[:30] + d1[36:], d2[:30] + d2[36:]
        note = "sense-key specific field pointer"
    elif name == "vpd83":
        d1, d2 = first_designator(d1), first_designator(d2)
        note = "extra NAA designator"
    elif name.startswith("modesense") and d1 != "-" and d2 != "-":
        d1, d2 = mode_pages(d1, "10" in name), mode_pages(d2, "10" in name)
        # The mode data length counts the control page (ours) too.
        note = "DPOFUA, control page"
    if (st1, d1, s1) != (st2, d2, s2):
        print(f"DIFF {name}:\n  vhostd: {st1} {d1} {s1}\n  qemu:   {st2} {d2} {s2}")
        bad += 1
    else:
        print(f"same {name}" + (f" (allowed: {note})" if note else ""))
sys.exit(1 if bad else 0)
