#!/usr/bin/env bash
# blk-iostat: the host's view against the guest's own.  The guest runs a
# steady rate-limited fio (4 KiB randrw, 150 reads/s + 150 writes/s) and,
# from its own /proc/diskstats, computes iostat's columns over an 8 s
# window; the host runs `vhostctl --json iostat -x vda 8 1` over the same
# window (started when the guest says so on the console).
#
# Tolerances: r/s, w/s, rkB/s and wkB/s agree within 10% (both count the
# same requests; the windows are aligned to a few hundred ms of a steady
# load).  r_await, w_await, aqu-sz and %util cannot agree: the guest's
# clock runs from submission to the interrupt, through TCG's emulated
# notifications, the host's only while vhostd holds the request.  They
# must be positive and no larger on the host (within 10%); both are
# printed side by side.  vhostd only (vhostctl).
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

# Follow the console; start the host's iostat when the guest starts its window.
iostat_driver() {
	local ctl=$1 out=$2 i
	for ((i = 0; i < 3000; i++)); do
		if grep -aq 'REPORT IOSTAT start' "$GUEST_LOG" 2>/dev/null; then
			"$REPO/build/vhostctl" --control "$ctl" --json iostat -x vda 8 1 >"$out"
			return
		fi
		sleep 0.1
	done
}

main() {
	if [[ $BACKEND != vhostd ]]; then
		glog "skipped: the host's iostat is vhostctl's"
		exit 77
	fi
	require_backend
	guest_workdir
	local img=$WORK/disk.img ctl=$WORK/control.sock drv host=$WORK/host-iostat.json guest
	truncate -s 128M "$img"

	VHOSTD_ARGS=(--control "$ctl")
	start_backend "$img"
	blk_device "$SOCK"
	local suffix=
	if ((PACKED)); then suffix=-packed; fi
	GUEST_LOG=$GUEST_LOG_DIR/$CASE$suffix.log
	rm -f "$GUEST_LOG"
	iostat_driver "$ctl" "$host" &
	drv=$!
	boot_guest "$(dirname "$0")/guest.sh" || {
		kill $drv 2>/dev/null
		return 1
	}
	wait $drv || true
	stop_backend
	guest=$(guest_report GUESTIOSTAT)
	[[ -s $host ]] || gdie "the host's iostat printed nothing"
	python3 - "$host" "$guest" <<'PY' >&2 || gdie "host and guest iostat disagree"
import json, sys
host = json.load(open(sys.argv[1]))["devices"][0]
guest = dict(kv.split("=") for kv in sys.argv[2].split())
guest = {k: float(v) for k, v in guest.items()}
ok = True
print("[blk-iostat] %-9s %10s %10s %7s" % ("column", "guest", "host", "host/guest"))
for col in ("r/s", "w/s", "rkB/s", "wkB/s", "r_await", "w_await", "aqu-sz", "%util"):
    g, h = guest[col], host[col]
    ratio = h / g if g else float("inf")
    if col in ("r/s", "w/s", "rkB/s", "wkB/s"):
        good = g > 0 and abs(ratio - 1) <= 0.10
    else:
        good = g > 0 and h > 0 and ratio <= 1.10
    ok &= good
    print("[blk-iostat] %-9s %10.2f %10.2f %7.3f%s" % (col, g, h, ratio, "" if good else "  <- out of tolerance"))
sys.exit(0 if ok else 1)
PY
}

main "$@"
