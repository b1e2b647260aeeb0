#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_rate.sh VHOSTD VHOST_BENCH - vhost-bench's open loop (--rate) and
# CPU accounting (--cpu-pid) against vhostd's null back-end, checked for
# shape only: the fields are there and their values are possible.  No
# assertion depends on how fast the machine is (speed is for bench/).
# shellcheck disable=SC2317 # functions run by trap and by check()
set -u

VHOSTD=$1
BENCH=$2

T=$(mktemp -d /tmp/vhostd-test-rate.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

# The JSON in file $1 has the fields of a run at rate $2, and the CPU ones if $3 is 1.
json_check() { # file rate cpu(0|1)
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
path, rate, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
r = json.load(open(path))
bad = []
def want(cond, what):
    if not cond:
        bad.append(what)
want(r["ios"] > 0, "ios > 0")
want(r["rate"] == rate, f"rate == {rate}")
want(r["scheduled"] > 0, "scheduled > 0")
want(0 <= r["late"] <= r["scheduled"], "0 <= late <= scheduled")
want(0 <= r["dropped"] <= r["scheduled"], "0 <= dropped <= scheduled")
want(r["ios"] + r["dropped"] == r["scheduled"], "ios + dropped == scheduled")
lag = r["issue-lag-us"]
want(0 <= lag["p50"] <= lag["p99"] <= lag["max"], "issue lag p50 <= p99 <= max")
lat = r["latency-us"]
want(0 <= lat["p50"] <= lat["p99"] <= lat["max"], "latency p50 <= p99 <= max")
want(r["bench-cpu-us"] >= 0 and r["bench-cpu-us-per-request"] >= 0, "bench CPU >= 0")
if cpu:
    want(r.get("cpu-pid", 0) > 0, "cpu-pid present")
    want(r.get("cpu-us", -1) >= 0, "cpu-us >= 0")
    want(r.get("cpu-us-per-request", -1) >= 0, "cpu-us-per-request >= 0")
else:
    want("cpu-us-per-request" not in r, "no cpu-us-per-request without --cpu-pid")
for b in bad:
    print("# failed:", b)
sys.exit(1 if bad else 0)
EOF
}

"$VHOSTD" --blk "id=n0,backend=null,size=64M,socket=$T/n0.sock,num-queues=2" \
	2>"$T/daemon.log" &
DPID=$!
if ! wait_for_socket "$T/n0.sock" 10; then
	not_ok "vhostd did not start: $(cat "$T/daemon.log")"
	exit 1
fi

run() { # name expected-rate cpu(0|1) vhost-bench args...
	local name=$1 rate=$2 cpu=$3 rc
	shift 3
	"$BENCH" --socket "$T/n0.sock" --json "$@" >"$T/$name.json" 2>"$T/$name.err"
	rc=$?
	sed 's/^/# /' "$T/$name.json" "$T/$name.err"
	check "$name: exit 0" test "$rc" = 0
	if [ "$rc" = 0 ]; then
		check "$name: JSON fields" json_check "$T/$name.json" "$rate" "$cpu"
	fi
}

run "rate, call eventfd, --cpu-pid" 2000 1 --rate 2000 --iodepth 4 --time 1 --cpu-pid "$DPID"
run "rate, two queues, randrw" 1000 0 --rate 1000 --queues 2 --iodepth 2 --rw randrw --time 1
run "rate, --poll, --cpu-pid" 2000 1 --rate 2000 --iodepth 4 --time 1 --poll --cpu-pid "$DPID"

# A closed loop reports rate 0 and no schedule.
"$BENCH" --socket "$T/n0.sock" --json --time 0.3 --cpu-pid "$DPID" >"$T/closed.json" 2>&1
check "closed loop: rate 0, cpu-us-per-request, no schedule" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["rate"] == 0 and "scheduled" not in r and r["cpu-us-per-request"] >= 0
         and r["ios"] > 0 else 1)' "$T/closed.json"

# Text output names the schedule and the CPU time.
"$BENCH" --socket "$T/n0.sock" --rate 500 --time 0.5 --cpu-pid "$DPID" >"$T/text.out" 2>&1
sed 's/^/# /' "$T/text.out"
check "text: open loop in the header" grep -q 'open loop at 500 IOPS' "$T/text.out"
check "text: schedule line" grep -Eq '^  schedule: [0-9]+ requests due, [0-9]+ late' "$T/text.out"
check "text: CPU line" grep -Eq "^  CPU: pid $DPID [0-9.]+ us/request" "$T/text.out"

# Usage errors: exit 2 before connecting.
usage() { # description args...
	local what=$1 rc
	shift
	"$BENCH" --socket "$T/none.sock" "$@" >/dev/null 2>"$T/err"
	rc=$?
	if [ "$rc" = 2 ]; then ok "$what"; else not_ok "$what: exit $rc, want 2: $(cat "$T/err")"; fi
}
usage "--rate 0 is refused" --rate 0
usage "--rate 20k is refused (a plain number)" --rate 20k
usage "--rate -5 is refused" --rate -5
usage "--rate above the maximum is refused" --rate 10000001
usage "--cpu-pid of no process is refused" --cpu-pid 2147483647
usage "--cpu-pid abc is refused" --cpu-pid abc

exit $failed
