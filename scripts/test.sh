#!/usr/bin/env bash
# Every test vhostd has, in one run, ending with "N passed, N failed".
#
#   1. the meson suites in the normal build (build/)
#   2. the same suites under ASan + UBSan (build-san/)
#   3. bounded libFuzzer runs (scripts/fuzz.sh, ~105 s): the ring's chain
#      walker, the SCSI CDB parser, the blk request parser, virtio-scsi's
#      control and request queues, vhost-user message sequences,
#      virtio-net's header and control parsing, the in-flight region's recovery
#   4. the real-guest tests: a Debian kernel under QEMU TCG on vhostd
#
# A one-node Ceph cluster (tests/ceph/ceph-up.sh) serves every RBD test.
#
# Set VHOSTD_SKIP_GUEST=1 to leave out step 4 (it needs ~10 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
failures=()

# Count one meson run's results from its machine-readable log.
count_meson() {
	local dir=$1 label=$2 out
	out=$(python3 - "$dir/meson-logs/testlog.json" "$label" <<'PY'
import json, sys
p = f = s = 0
names = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
        names.append(sys.argv[2] + ":" + t["name"].replace(" ", ""))
print(p, f, s, " ".join(names))
PY
)
	read -r p f s names <<<"$out"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	[ -n "${names:-}" ] && failures+=($names)
	return 0
}

run_meson() {
	local dir=$1 label=$2 rc=0 before=$failed
	shift 2
	echo "=== meson test ($label) ==="
	# A stale log must not be counted if this run dies before writing one.
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "$@" || rc=$?
	if [ -f "$dir/meson-logs/testlog.json" ]; then
		count_meson "$dir" "$label"
	fi
	# meson failed but no test did (it could not run them): one failure.
	if [ "$rc" -ne 0 ] && [ "$failed" -eq "$before" ]; then
		failed=$((failed + 1))
		failures+=("$label:meson-test-exit-$rc")
	fi
}

# One Ceph cluster for every RBD test (suite 'rbd' in both builds, the
# blk-rbd guest case): they find it through VHOSTD_CEPH_CONF and make
# images of their own in it.  Without it each brings up (and says why it
# cannot bring up) its own.
CEPH_DIR=$(mktemp -d /tmp/vhostd-test-ceph.XXXXXX)
trap 'tests/ceph/ceph-down.sh "$CEPH_DIR/c"; rm -rf "$CEPH_DIR"' EXIT
echo "=== one-node Ceph cluster for the RBD tests ==="
if tests/ceph/ceph-up.sh "$CEPH_DIR/c"; then
	export VHOSTD_CEPH_CONF=$CEPH_DIR/c/ceph.conf
fi

run_meson build normal
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run_meson build-san asan-ubsan --timeout-multiplier 3

if [ -x scripts/fuzz.sh ]; then
	# ~105 s in all: each harness for a slice (scripts/fuzz.sh says which is which).
	for h in virtq:"${VHOSTD_FUZZ_SECONDS:-20}" scsi:"${VHOSTD_FUZZ_SCSI_SECONDS:-15}" \
		 blk:"${VHOSTD_FUZZ_BLK_SECONDS:-15}" scsi-ctrl:"${VHOSTD_FUZZ_SCSI_CTRL_SECONDS:-15}" \
		 vu:"${VHOSTD_FUZZ_VU_SECONDS:-15}" net:"${VHOSTD_FUZZ_NET_SECONDS:-10}" \
		 inflight:"${VHOSTD_FUZZ_INFLIGHT_SECONDS:-15}"; do
		echo "=== fuzz ${h%%:*} (bounded, ${h#*:} s) ==="
		if scripts/fuzz.sh "${h#*:}" "${h%%:*}"; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failures+=("fuzz-${h%%:*}")
		fi
	done
fi

# run_guests LABEL [CASE...]: real-guest cases on vhostd ($VHOSTD_BIN), counted.
run_guests() {
	local label=$1 log p f s rc
	shift
	log=$(mktemp)
	BACKEND=vhostd tests/guest/run-all.sh "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	s=$(grep -c '^SKIP ' "$log")
	# run-all.sh failed before it could report a case (kernel fetch, image
	# build): that is a failure too, not silence.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "FAIL $label-setup (run-all.sh exited $rc)" >>"$log"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	while read -r _ name; do failures+=("$label:$name"); done < <(grep '^FAIL ' "$log")
	rm -f "$log"
}

if [ "${VHOSTD_SKIP_GUEST:-0}" != 1 ] && [ -x tests/guest/run-all.sh ]; then
	echo "=== real-guest tests (QEMU TCG) ==="
	run_guests guest
	# The data and fio cases again with vhostd built with ASan + UBSan: a
	# real guest driver is the best fuzzer of ordering we have.
	echo "=== real-guest tests, vhostd under ASan + UBSan ==="
	VHOSTD_BIN=$PWD/build-san/vhostd ASAN_OPTIONS=detect_leaks=1 \
		run_guests guest-asan blk-data blk-fio scsi-io net-tap
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
