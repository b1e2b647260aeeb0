#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# metrics.sh VHOSTD VHOST_BENCH VHOSTCTL - vhostd --metrics ADDR:PORT:
#   - bad --metrics arguments: exit 2, one line; a port in use: exit 1;
#   - the exposition passes `promtool check metrics` (Debian's prometheus
#     package) and our own parser (metrics_check.py: one HELP/TYPE per
#     family, names and labels by the conventions, histogram buckets
#     cumulative with +Inf == _count);
#   - scraped during vhost-bench load on a blk device and a SCSI LUN, the
#     counters move between two scrapes (requests, bytes, kicks,
#     notifications, histogram counts), connected is 1, and the numbers
#     agree with `vhostctl stats`;
#   - only GET/HEAD /metrics: 404 and 405 otherwise; a device added at run
#     time appears, a removed one goes.
set -u

VHOSTD=$1
BENCH=$2
VHOSTCTL=$3
HERE=$(cd "$(dirname "$0")" && pwd)

T=$(mktemp -d /tmp/vhostd-test-metrics.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$HERE/tap.sh"

expect_fail() { # status description args...
	local want=$1 what=$2 rc
	shift 2
	"$VHOSTD" "$@" >/dev/null 2>"$T/err" </dev/null
	rc=$?
	if [ "$rc" -eq "$want" ] && [ "$(wc -l <"$T/err")" -eq 1 ]; then
		ok "$what ($(cat "$T/err"))"
	else
		not_ok "$what: exit $rc, want $want: $(cat "$T/err")"
	fi
}

for a in "9100" ":9100" "127.0.0.1" "127.0.0.1:" "127.0.0.1:99999" "127.0.0.1:x" \
	"localhost:9100" "[::1:9100" "1.2.3.4.5:80"; do
	expect_fail 2 "--metrics '$a'" --metrics "$a" --control "$T/c.sock"
done

# GET a path from the metrics server: the body, or "HTTP <code>" on error.
get() { # url [method]
	python3 - "$1" "${2:-GET}" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=sys.argv[2]), timeout=5)
    sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print("HTTP %d" % e.code)
EOF
}

truncate -s 64M "$T/a.img"
"$VHOSTD" --metrics 127.0.0.1:0 --control "$T/ctl.sock" \
	--blk "id=vda,path=$T/a.img,socket=$T/a.sock,num-queues=2" \
	--scsi "id=sc0,socket=$T/s.sock" --lun "scsi=sc0,target=0,lun=1,backend=null,size=64M" \
	--net "id=n0,socket=$T/n.sock,backend=loopback,queues=2" \
	2>"$T/daemon.log" &
DPID=$!
if ! wait_for_socket "$T/ctl.sock" 10; then
	not_ok "daemon did not start: $(cat "$T/daemon.log")"
	exit 1
fi
port=$(sed -n 's/.*metrics on .*(port \([0-9]*\)).*/\1/p' "$T/daemon.log")
check "the log names the port" test -n "$port"
URL="http://127.0.0.1:$port/metrics"

expect_fail 1 "a port in use" --metrics "127.0.0.1:$port" --control "$T/c2.sock"
check "a failed start leaves no control socket" test ! -e "$T/c2.sock"

get "$URL" >"$T/m0.txt"
check "idle scrape passes promtool" promtool check metrics <"$T/m0.txt"
check "idle scrape passes the parser" python3 "$HERE/metrics_check.py" "$T/m0.txt"
check "build info" grep -q '^vhostd_build_info{version="[0-9.]*"} 1$' "$T/m0.txt"
check "idle: vda not connected" grep -q '^vhostd_device_connected{device="vda",type="blk"} 0$' "$T/m0.txt"
check "LUN size" grep -q '^vhostd_disk_size_bytes{device="sc0",lun="0:1"} 67108864$' "$T/m0.txt"
check "net: packets per queue" grep -q '^vhostd_net_packets_total{device="n0",queue="3"} 0$' "$T/m0.txt"
check "net: drops by cause" grep -q '^vhostd_net_dropped_packets_total{device="n0",queue="0",cause="filtered"} 0$' "$T/m0.txt"
check "net: connection state" grep -q '^vhostd_device_connected{device="n0",type="net"} 0$' "$T/m0.txt"

# Load on both, scraped twice in the middle of it.
"$BENCH" --socket "$T/a.sock" --rw randrw --queues 2 --iodepth 8 --time 6 >"$T/b1.out" 2>&1 &
BPID=$!
"$BENCH" --socket "$T/s.sock" --scsi-lun 0:1 --rw randread --iodepth 4 --time 6 >"$T/b2.out" 2>&1 &
B2PID=$!
# The first scrape once both front-ends drive their devices (a loaded
# machine may take seconds to get them there), the second a second later.
for ((i = 0; i < 100; i++)); do
	get "$URL" >"$T/m1.txt"
	grep -q '^vhostd_device_active{device="vda",type="blk"} 1$' "$T/m1.txt" &&
		grep -q '^vhostd_device_active{device="sc0",type="scsi"} 1$' "$T/m1.txt" && break
	sleep 0.2
done
sleep 1
get "$URL" >"$T/m2.txt"
wait "$BPID"
rc1=$?
wait "$B2PID"
rc2=$?
BPID=
check "load on vda ran" test "$rc1" = 0
check "load on the LUN ran" test "$rc2" = 0
check "scrape under load passes promtool" promtool check metrics <"$T/m2.txt"
check "scrape under load passes the parser" python3 "$HERE/metrics_check.py" "$T/m2.txt"
check "under load: vda connected" grep -q '^vhostd_device_connected{device="vda",type="blk"} 1$' "$T/m1.txt"
check "under load: vda active" grep -q '^vhostd_device_active{device="vda",type="blk"} 1$' "$T/m1.txt"

# Series that must have grown from the first scrape to the second.
for s in 'vhostd_disk_completed_total{device="vda",op="read"}' \
	'vhostd_disk_completed_total{device="vda",op="write"}' \
	'vhostd_disk_bytes_total{device="vda",op="write"}' \
	'vhostd_disk_time_seconds_total{device="vda",op="read"}' \
	'vhostd_disk_io_time_seconds_total{device="vda"}' \
	'vhostd_disk_request_duration_seconds_count{device="vda",op="read"}' \
	'vhostd_disk_request_duration_seconds_sum{device="vda",op="write"}' \
	'vhostd_queue_completed_total{device="vda",queue="0"}' \
	'vhostd_queue_completed_total{device="vda",queue="1"}' \
	'vhostd_queue_notifications_total{device="vda",queue="1"}' \
	'vhostd_disk_completed_total{device="sc0",lun="0:1",op="read"}' \
	'vhostd_disk_request_duration_seconds_count{device="sc0",lun="0:1",op="read"}' \
	'vhostd_queue_notifications_total{device="sc0",queue="2"}'; do
	check "moves: $s" python3 "$HERE/metrics_check.py" --grew "$s" "$T/m1.txt" "$T/m2.txt"
done
# Kicks: a busy driver need not kick (the engine polls), so only "counted".
check "kicks counted for vda" python3 "$HERE/metrics_check.py" --grew \
	'vhostd_queue_kicks_total{device="vda",queue="0"}' "$T/m0.txt" "$T/m2.txt"

# After the load: the scrape agrees with vhostctl stats (diskstats fields).
get "$URL" >"$T/m3.txt"
"$VHOSTCTL" --control "$T/ctl.sock" stats vda >"$T/stats"
reads=$(awk '{ print $4 }' "$T/stats")
wsect=$(awk '{ print $10 }' "$T/stats")
check "reads agree with vhostctl stats" \
	grep -q "^vhostd_disk_completed_total{device=\"vda\",op=\"read\"} $reads\$" "$T/m3.txt"
check "bytes written agree with vhostctl stats" \
	grep -q "^vhostd_disk_bytes_total{device=\"vda\",op=\"write\"} $((wsect * 512))\$" "$T/m3.txt"
check "nothing in flight after the load" \
	grep -q '^vhostd_disk_in_flight_requests{device="vda"} 0$' "$T/m3.txt"

check "404 for another path" test "$(get "http://127.0.0.1:$port/")" = "HTTP 404"
check "405 for POST" test "$(get "$URL" POST)" = "HTTP 405"
check "HEAD answers" bash -c "python3 -c 'import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=\"HEAD\"), timeout=5)' '$URL'"

"$VHOSTCTL" --control "$T/ctl.sock" add blk "id=vdz,backend=null,size=1M,socket=$T/z.sock" &&
	check "an added device appears" bash -c "python3 - '$URL' <<<'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' | grep -q 'device=\"vdz\"'"
"$VHOSTCTL" --control "$T/ctl.sock" remove vdz &&
	check "a removed device goes" bash -c "! python3 - '$URL' <<<'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' | grep -q 'device=\"vdz\"'"

# Many scrapers at once, some that never finish their request: the daemon
# stays up and a scrape still works afterwards.
python3 - 127.0.0.1 "$port" <<'EOF' >"$T/flood.out" 2>&1
import socket, sys, threading
def one(i):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
        if i % 3 == 0:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never ends
        elif i % 3 == 1:
            s.sendall(b"\x00\xff garbage \r\n\r\n")
            s.recv(100)
        else:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            while s.recv(65536):
                pass
    except OSError:
        pass
    s.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(60)]
for t in ts: t.start()
for t in ts: t.join()
print("done")
EOF
check "HTTP flood ran" grep -q done "$T/flood.out"
check "scrape after the flood" bash -c "python3 - '$URL' <<<'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' | grep -q vhostd_build_info"

kill "$DPID"
wait "$DPID"
check "SIGTERM: exit 0" test $? = 0
DPID=
exit $failed
