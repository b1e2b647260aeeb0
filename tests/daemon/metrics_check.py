#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""metrics_check.py - a strict reader of vhostd's Prometheus text exposition.

  metrics_check.py FILE                  check FILE, exit 1 with the reasons
  metrics_check.py --grew SERIES A B     exit 0 if SERIES is larger in B than in A

Checks what `promtool check metrics` checks and what our naming promises:
every family has one HELP and one TYPE before its samples, samples of a
family are contiguous and unique, names and labels are well formed and
start with vhostd_, counters end in _total and never go negative, units
are in the names, histograms have cumulative buckets sorted by le ending
in +Inf, and +Inf equals _count.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
UNITS = ("_seconds", "_bytes", "_requests", "_total", "_info", "_connected", "_active")


def parse_labels(text):
    if not text:
        return ()
    body = text[1:-1]
    out, pos = [], 0
    while pos < len(body):
        m = LABEL.match(body, pos)
        if not m:
            raise ValueError("bad label list %r" % text)
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                raise ValueError("bad label list %r" % text)
            pos += 1
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("repeated label in %r" % text)
    return tuple(out)


def read(path):
    """(samples {(name, labels): value}, errors)"""
    errors, samples = [], {}
    help_, type_, done = {}, {}, set()
    current = None
    with open(path) as f:
        lines = f.read().split("\n")
    if lines[-1] != "":
        errors.append("no newline at the end")
    for no, line in enumerate(lines[:-1], 1):
        where = "%s:%d" % (path, no)
        if line.startswith("# "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[1] not in ("HELP", "TYPE"):
                errors.append("%s: bad comment %r" % (where, line))
                continue
            kind, name, rest = parts[1], parts[2], parts[3]
            if not NAME.match(name):
                errors.append("%s: bad family name %r" % (where, name))
            if name in done:
                errors.append("%s: family %s again after its samples" % (where, name))
            table = help_ if kind == "HELP" else type_
            if name in table:
                errors.append("%s: second %s for %s" % (where, kind, name))
            table[name] = rest
            if kind == "TYPE" and rest not in TYPES:
                errors.append("%s: unknown type %r" % (where, rest))
            if current and current != name:
                done.add(current)
            current = name
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append("%s: not a sample: %r" % (where, line))
            continue
        name, labels, value = m.groups()
        try:
            labels = parse_labels(labels)
            v = float(value)
        except ValueError as e:
            errors.append("%s: %s" % (where, e))
            continue
        family = name
        if type_.get(current) == "histogram":
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        if family != current:
            errors.append("%s: sample %s outside its family's block" % (where, name))
        if family not in type_:
            errors.append("%s: %s has no TYPE" % (where, family))
        if (name, labels) in samples:
            errors.append("%s: duplicate series %s%s" % (where, name, labels))
        samples[(name, labels)] = v
    for fam, t in type_.items():
        if fam not in help_:
            errors.append("%s: no HELP" % fam)
        if not fam.startswith("vhostd_"):
            errors.append("%s: not under vhostd_" % fam)
        if t == "counter" and not fam.endswith("_total"):
            errors.append("%s: a counter without _total" % fam)
        if t != "counter" and fam.endswith("_total"):
            errors.append("%s: _total on a %s" % (fam, t))
        if not any(u in fam for u in UNITS):
            errors.append("%s: no unit in the name" % fam)
    for (name, labels), v in samples.items():
        fam = re.sub(r"_(bucket|sum|count)$", "", name)
        if type_.get(name) == "counter" or type_.get(fam) == "histogram":
            if v < 0 or math.isnan(v):
                errors.append("%s%s: negative or NaN counter" % (name, labels))
    # Histograms: per label set, buckets cumulative up to +Inf == _count.
    for fam, t in type_.items():
        if t != "histogram":
            continue
        groups = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                le = dict(labels).get("le")
                if le is None:
                    errors.append("%s%s: bucket without le" % (name, labels))
                    continue
                rest = tuple(l for l in labels if l[0] != "le")
                groups.setdefault(rest, []).append((float(le), v))
        for rest, buckets in groups.items():
            buckets.sort()
            if buckets[-1][0] != math.inf:
                errors.append("%s%s: no +Inf bucket" % (fam, rest))
            for (a, va), (b, vb) in zip(buckets, buckets[1:]):
                if vb < va:
                    errors.append("%s%s: bucket le=%g below le=%g" % (fam, rest, b, a))
            count = samples.get((fam + "_count", rest))
            if count is None or (fam + "_sum", rest) not in samples:
                errors.append("%s%s: no _count or _sum" % (fam, rest))
            elif count != buckets[-1][1]:
                errors.append("%s%s: +Inf %g != _count %g" % (fam, rest, buckets[-1][1], count))
    return samples, errors


def series_value(samples, series):
    m = SAMPLE.match(series + " 0")
    key = (m.group(1), parse_labels(m.group(2)))
    return samples.get(key)


def main(argv):
    if len(argv) == 5 and argv[1] == "--grew":
        a = series_value(read(argv[3])[0], argv[2])
        b = series_value(read(argv[4])[0], argv[2])
        print("# %s: %s -> %s" % (argv[2], a, b))
        return 0 if a is not None and b is not None and b > a else 1
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    samples, errors = read(argv[1])
    for e in errors:
        print("# " + e)
    if not samples:
        print("# no samples")
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
