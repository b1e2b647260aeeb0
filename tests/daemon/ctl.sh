#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ctl.sh VHOSTD VHOSTCTL VHOST_BENCH - the control plane as an operator
# uses it:
#   - the control socket is 0600, or 0660 with --control-group;
#   - device-add / device-remove / device-show / save-config and their
#     vhostctl commands (add, remove, show, save-config), each with bad
#     params: a clear error, exit 1 (daemon said no) or 2 (usage);
#   - adding and removing devices (blk, scsi, LUNs) while vhost-bench runs
#     a fixed-rate verified load on another device: no failed request, no
#     mismatch, and no request later than PAUSE_BOUND_US (2 s: on this
#     shared 2-CPU machine, at load 5-10, the same load alone already sees
#     100-700 ms outliers, so the bound only catches an addition or removal
#     that stalls other devices for a drain or a timeout; the output shows
#     the baseline and the churn run side by side);
#   - device-remove under an active front-end: refused, then done with
#     force (socket gone, the other device still served);
#   - --config: bad files name the file, the object and the key (exit 2);
#     a daemon started from save-config's output saves the same config;
#   - --json on every vhostctl command prints JSON;
#   - a flood of garbage clients: the daemon stays up, answers, leaks no fd.
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3
PAUSE_BOUND_US=2000000

T=$(mktemp -d /tmp/vhostd-test-ctl.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

ctl() { "$VHOSTCTL" --control "$T/ctl.sock" "$@"; }
raw() { ctl raw "$@"; }

# A vhostctl command's exit status is $1 and stderr has one line.
expect_rc() { # status description command...
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$what: exit $rc, want $want: $(cat "$T/err")"
	elif [ "$want" -ne 0 ] && [ "$(wc -l <"$T/err")" -ne 1 ]; then
		not_ok "$what: want one line on stderr: $(cat "$T/err")"
	else
		ok "$what${want:+ }$(head -c 200 "$T/err")"
	fi
}

# raw METHOD PARAMS must fail with an error message matching $3.
expect_err() { # description method params regex
	raw "$2" "$3" >"$T/out" 2>"$T/err"
	if [ $? -eq 1 ] && grep -Eq -- "$4" "$T/err"; then
		ok "$1 ($(cat "$T/err"))"
	else
		not_ok "$1: $(cat "$T/out" "$T/err")"
	fi
}

truncate -s 64M "$T/a.img" "$T/b.img" "$T/c.img"

# --- start with no device, add them at run time -------------------------------

expect_rc 2 "no device and no control socket" "$VHOSTD"
expect_rc 2 "--control-group without --control" "$VHOSTD" --control-group "$(id -gn)" \
	--blk "id=vda,path=$T/a.img,socket=$T/a.sock"
expect_rc 2 "--control-group of no group" "$VHOSTD" --control "$T/ctl.sock" \
	--control-group no-such-group-vhd-ctl

"$VHOSTD" --control "$T/ctl.sock" 2>"$T/daemon.log" &
DPID=$!
if ! wait_for_socket "$T/ctl.sock" 10; then
	not_ok "daemon did not start: $(cat "$T/daemon.log")"
	exit 1
fi
check "control socket is 0600" test "$(stat -c %a "$T/ctl.sock")" = 600
check "empty daemon lists nothing" test "$(ctl list | wc -l)" = 1

check "add blk" ctl add blk "id=vda,path=$T/a.img,socket=$T/a.sock,num-queues=2"
check "vda socket made" test -S "$T/a.sock"
check "add scsi" ctl add scsi "id=sc0,socket=$T/s.sock"
check "add lun" ctl add lun "scsi=sc0,target=0,lun=2,path=$T/c.img,serial=S2"
check "show vda" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' show vda | grep -Eq '^num-queues +2\$'"
check "show a LUN" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' show sc0:0:2 | grep -Eq '^serial +S2\$'"
check "show a controller lists its LUNs" \
	bash -c "'$VHOSTCTL' --control '$T/ctl.sock' show sc0 | grep -Eq '^luns +sc0:0:2\$'"
check "device-add answers with the device" \
	bash -c "'$VHOSTCTL' --control '$T/ctl.sock' raw device-add '{\"type\":\"blk\",\"id\":\"vdx\",\"backend\":\"null\",\"size\":1048576,\"socket\":\"$T/x.sock\",\"readonly\":true}' | grep -q '\"readonly\":true'"
check "remove vdx" ctl remove vdx
check "vdx socket removed" test ! -e "$T/x.sock"

# --- bad params, method by method ---------------------------------------------

expect_err "device-add without params" device-add '[]' 'type'
expect_err "device-add without type" device-add '{"id":"q"}' 'type'
expect_err "device-add unknown type" device-add '{"type":"floppy"}' "unknown type 'floppy'"
expect_err "device-add type not a string" device-add '{"type":1}' 'type'
expect_err "device-add unknown key" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/q.sock\",\"colour\":\"red\"}" 'colour'
expect_err "device-add bad value" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/q.sock\",\"num-queues\":0}" 'num-queues'
expect_err "device-add value of the wrong JSON type" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/q.sock\",\"readonly\":[1]}" 'readonly: a string'
expect_err "device-add key smuggling a pair" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path,socket\":\"x\"}" 'not a key'
expect_err "device-add missing socket" device-add "{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\"}" 'socket'
expect_err "device-add duplicate id" device-add \
	"{\"type\":\"blk\",\"id\":\"vda\",\"path\":\"$T/b.img\",\"socket\":\"$T/q.sock\"}" 'vda: a device with that id exists'
expect_err "device-add duplicate socket" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/a.sock\"}" "is vda's"
expect_err "device-add on the control socket" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/ctl.sock\"}" 'control socket'
expect_err "device-add image in use" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/a.img\",\"socket\":\"$T/q.sock\"}" 'in use'
expect_err "device-add missing image" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/nope.img\",\"socket\":\"$T/q.sock\"}" 'q: .*nope.img'
expect_err "device-add socket folder missing" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/nodir/q.sock\"}" 'q: '
expect_err "device-add io-thread beyond the pool" device-add \
	"{\"type\":\"blk\",\"id\":\"q\",\"path\":\"$T/b.img\",\"socket\":\"$T/q.sock\",\"io-thread\":63}" 'io-thread'
expect_err "device-add LUN of no controller" device-add \
	'{"type":"lun","scsi":"sc9","target":0,"lun":0,"backend":"null","size":"1M"}' "no scsi device 'sc9'"
expect_err "device-add LUN of a blk device" device-add \
	'{"type":"lun","scsi":"vda","target":0,"lun":0,"backend":"null","size":"1M"}' "no scsi device 'vda'"
expect_err "device-add LUN twice" device-add \
	'{"type":"lun","scsi":"sc0","target":0,"lun":2,"backend":"null","size":"1M"}' 'sc0'
check "failed adds left no socket" test ! -e "$T/q.sock"
expect_err "device-remove without params" device-remove '[]' 'object'
expect_err "device-remove without name" device-remove '{}' 'name'
expect_err "device-remove name not a string" device-remove '{"name":5}' 'name'
expect_err "device-remove unknown parameter" device-remove '{"name":"vda","forse":true}' "unknown parameter 'forse'"
expect_err "device-remove force not a boolean" device-remove '{"name":"vda","force":"yes"}' 'force'
expect_err "device-remove no such device" device-remove '{"name":"nosuch"}' "no device named 'nosuch'"
expect_err "device-remove no such LUN" device-remove '{"name":"sc0:0:7"}' 'sc0'
expect_err "device-remove bad LUN name" device-remove '{"name":"sc0:x:y"}' "no LUN named"
expect_err "device-show without name" device-show '{}' 'name'
expect_err "device-show no such device" device-show '{"name":"nosuch"}' "no device named 'nosuch'"
expect_err "device-show extra parameter" device-show '{"name":"vda","x":1}' "unknown parameter 'x'"
expect_err "save-config with params" save-config '{"x":1}' 'no parameters'
expect_err "unknown method" frobnicate '{}' 'not found|unknown method|Method'
expect_err "list-devices with params" list-devices '{"name":"vda"}' 'no parameters'
expect_err "version with params" version '[1]' 'no parameters'
expect_err "stats of no device" stats '{"name":"nosuch"}' "no device named 'nosuch'"
expect_err "stats with a bad parameter" stats '{"device":"vda"}' 'one optional parameter'
expect_err "scsi-add-lun of no controller" scsi-add-lun '{"name":"sc9","target":0,"lun":0,"path":"x"}' "no virtio-scsi controller"
expect_err "scsi-add-lun: \"scsi\" beside \"name\"" scsi-add-lun '{"name":"sc0","target":0,"lun":9,"backend":"null","size":"1M","scsi":"sc9"}' "unknown parameter 'scsi'"
expect_err "scsi-add-lun: \"type\"" scsi-add-lun '{"name":"sc0","target":0,"lun":9,"backend":"null","size":"1M","type":"blk"}' "unknown parameter 'type'"
expect_err "scsi-add-lun bad key" scsi-add-lun '{"name":"sc0","target":0,"lun":9,"backend":"null","size":"1M","colour":1}' 'colour'
expect_err "scsi-remove-lun extra parameter" scsi-remove-lun '{"name":"sc0","target":0,"lun":2,"now":true}' "unknown parameter 'now'"
expect_err "scsi-remove-lun target out of range" scsi-remove-lun '{"name":"sc0","target":300,"lun":2}' 'target 0..255'
expect_err "scsi-resize no such LUN" scsi-resize '{"name":"sc0","target":0,"lun":9}' 'sc0'
check "sc0:0:2 survived the bad calls" ctl show sc0:0:2

expect_rc 2 "vhostctl list with an argument" ctl list vda
expect_rc 2 "vhostctl stats with two names" ctl stats vda vdb
expect_rc 1 "vhostctl stats no such device" ctl stats nosuch
expect_rc 2 "vhostctl version with an argument" ctl version x
expect_rc 2 "vhostctl unknown command" ctl frobnicate
expect_rc 2 "vhostctl raw bad JSON" ctl raw version '{'
expect_rc 1 "vhostctl raw unknown method" ctl raw frobnicate
expect_rc 2 "vhostctl scsi-add-lun bad target" ctl scsi-add-lun sc0 x 0 "$T/b.img"
expect_rc 2 "vhostctl scsi-remove-lun bad lun" ctl scsi-remove-lun sc0 0 -1
expect_rc 1 "vhostctl scsi-resize no such LUN" ctl scsi-resize sc0 0 9
expect_rc 2 "vhostctl iostat bad interval" ctl iostat vda 0
expect_rc 2 "vhostctl iostat bad count" ctl iostat vda 1 1.5
expect_rc 2 "vhostctl iostat unknown flag" ctl iostat -y
expect_rc 1 "vhostctl iostat no such device" ctl iostat nosuch 0.1 1
expect_rc 2 "vhostctl add without spec" ctl add blk
expect_rc 2 "vhostctl add bad spec" ctl add blk "id=q,=x"
expect_rc 2 "vhostctl add spec ending in a comma" ctl add blk "id=q,"
expect_rc 2 "vhostctl add key twice" ctl add blk "id=q,id=r"
expect_rc 1 "vhostctl add unknown kind" ctl add floppy "id=q"
expect_rc 1 "vhostctl add bad key" ctl add blk "id=q,path=$T/b.img,socket=$T/q.sock,colour=red"
expect_rc 2 "vhostctl remove without name" ctl remove
expect_rc 2 "vhostctl remove bad flag" ctl remove vda --frc
expect_rc 1 "vhostctl remove no such device" ctl remove nosuch
expect_rc 2 "vhostctl show without name" ctl show
expect_rc 1 "vhostctl show no such device" ctl show nosuch
expect_rc 2 "vhostctl save-config two files" ctl save-config a b
expect_rc 1 "vhostctl save-config into a missing folder" ctl save-config "$T/nodir/x.json"

# --- --json on every command ----------------------------------------------------

is_json() { python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; }
for cmd in "list" "stats" "stats vda" "version" "show vda" "show sc0:0:2" "save-config" \
	"add blk id=vdj,backend=null,size=1M,socket=$T/j.sock" "remove vdj" \
	"scsi-add-lun sc0 0 5 $T/b.img" "scsi-resize sc0 0 5" "scsi-remove-lun sc0 0 5" \
	"raw version" "iostat 0.1 1" "iostat -x vda 0.1 1"; do
	# shellcheck disable=SC2086 # the words of $cmd are its arguments
	check "--json $cmd" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' --json $cmd | python3 -c 'import json,sys; json.load(sys.stdin)'"
done
check "save-config FILE --json" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' --json save-config '$T/s.json' | python3 -c 'import json,sys; json.load(sys.stdin)'"

# --- add and remove under another device's I/O ----------------------------------

# A fixed-rate verified load on vda: latency counts from when a request was
# due, so any pause of vda's queues shows as a late request (its max).
# First alone, for the baseline, then under the churn.
lat() { python3 -c 'import json,sys; l=json.load(sys.stdin)["latency-us"]; print("p50 %d us, p99 %d us, max %d us" % (l["p50"], l["p99"], l["max"]))' <"$1"; }
"$BENCH" --socket "$T/a.sock" --rw randrw --verify --rate 4000 --iodepth 16 --queues 2 \
	--time 3 --json >"$T/base.json" 2>&1 &
BPID=$!
# iostat over 2 s of its 3: the load's own rate, half of it reads.  (The
# rate the bench achieved, not the 4000 it asked for: a loaded machine
# falls behind.)
sleep 0.5
ctl --json iostat -x vda 2 1 >"$T/iostat.json"
wait "$BPID"
BPID=
echo "# vda alone:           $(lat "$T/base.json")"
echo "# iostat under it: $(cat "$T/iostat.json")"
check "iostat: r/s + w/s is the load's achieved rate (within 25%)" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["devices"][0]
b = json.load(open(sys.argv[2]))
want = b["ios"] / b["seconds"]
assert d["name"] == "vda"
iops = d["r/s"] + d["w/s"]
print("# iostat %.0f IOPS, vhost-bench %.0f" % (iops, want))
assert abs(iops - want) <= 0.25 * want, (iops, want)
assert abs(d["rkB/s"] - 4 * d["r/s"]) < 1 and d["rareq-sz"] == 4, d
assert 0 < d["%util"] <= 100 and d["r_await"] > 0 and d["aqu-sz"] > 0, d
' "$T/iostat.json" "$T/base.json"
"$BENCH" --socket "$T/a.sock" --rw randrw --verify --rate 4000 --iodepth 16 --queues 2 \
	--time 5 --json >"$T/load.json" 2>"$T/load.err" &
BPID=$!
sleep 0.5
churn_ok=1
for i in 1 2 3 4 5 6; do
	ctl add blk "id=vdb,path=$T/b.img,socket=$T/b.sock,num-queues=2" &&
		ctl add scsi "id=sc1,socket=$T/s1.sock,num-queues=2" &&
		ctl add lun "scsi=sc1,target=0,lun=0,backend=null,size=16M" &&
		ctl add lun "scsi=sc0,target=1,lun=$i,backend=null,size=1M" &&
		"$BENCH" --socket "$T/b.sock" --rw randrw --time 0.2 --queues 2 >/dev/null &&
		ctl remove sc1:0:0 && ctl remove sc1 && ctl remove "sc0:1:$i" && ctl remove vdb &&
		test ! -e "$T/b.sock" -a ! -e "$T/s1.sock" || {
		churn_ok=0
		break
	}
done 2>"$T/churn.err"
check "6 rounds of add/remove (blk, scsi, LUNs) during the load" test "$churn_ok" = 1
sed 's/^/# /' "$T/churn.err"
wait "$BPID"
rc=$?
BPID=
sed 's/^/# /' "$T/load.json" "$T/load.err"
check "the load on vda: no failed request, no mismatch" test "$rc" = 0
max=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["latency-us"]["max"]))' <"$T/load.json")
echo "# vda under the churn: $(lat "$T/load.json") (bound ${PAUSE_BOUND_US} us)"
check "no request of vda paused beyond ${PAUSE_BOUND_US} us" test "${max:-999999999}" -lt "$PAUSE_BOUND_US"

# --- remove with a front-end connected but idle (no queue started) ---------------

ctl add blk "id=vdi,backend=null,size=1M,socket=$T/i.sock"
python3 - "$T/i.sock" >"$T/idle.out" 2>&1 <<'EOF2' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("connected", flush=True)
s.settimeout(10)
t = time.monotonic()
try:
    print("eof" if s.recv(1) == b"" else "data", "after %.1f s" % (time.monotonic() - t))
except OSError as e:
    print("error", e)
EOF2
IPID=$!
for _ in $(seq 50); do
	ctl show vdi | grep -Eq '^connected +true$' && break
	sleep 0.1
done
check "idle front-end: connected, not active" bash -c \
	"'$VHOSTCTL' --control '$T/ctl.sock' show vdi | grep -Eq '^active +false\$'"
expect_rc 0 "idle front-end: graceful remove" ctl remove vdi
wait "$IPID"
check "idle front-end: its connection closed cleanly (EOF)" grep -q '^eof' "$T/idle.out"
check "idle front-end: socket removed" test ! -e "$T/i.sock"

# --- remove under an active front-end --------------------------------------------

ctl add blk "id=vdb,path=$T/b.img,socket=$T/b.sock"
"$BENCH" --socket "$T/b.sock" --rw randread --time 20 >"$T/busy.out" 2>&1 &
BPID=$!
for _ in $(seq 50); do
	ctl show vdb | grep -Eq '^active +true$' && break
	sleep 0.1
done
check "vdb active under its front-end" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' show vdb | grep -Eq '^active +true\$'"
expect_rc 1 "remove refused while a front-end drives it" ctl remove vdb
check "the refusal says why" grep -q 'front-end' "$T/err"
check "vdb still served" test -S "$T/b.sock"
expect_rc 0 "remove --force" ctl remove vdb --force
check "vdb socket removed" test ! -e "$T/b.sock"
# vhost-bench notices only by its 10 s completion timeout: do not wait for it.
kill "$BPID"
wait "$BPID" 2>/dev/null
BPID=
check "the forced removal is logged as such" grep -q 'vdb: removed under its front-end (force)' "$T/daemon.log"
check "vda still serves after a forced removal" \
	"$BENCH" --socket "$T/a.sock" --rw randrw --verify --time 0.3

# --- save-config, then start another daemon from it -------------------------------

ctl add lun "scsi=sc0,target=3,lun=4,backend=null,size=2M,readonly=on,block-size=4096"
ctl add blk "id=vdn,backend=null,size=8M,socket=$T/n.sock,queue-size=64,cache=none,poll-us=0,serial=SN1"
check "save-config FILE" ctl save-config "$T/saved.json"
sed 's/^/# /' "$T/saved.json"
ctl list >"$T/list1"
kill "$DPID"
wait "$DPID"
check "SIGTERM: exit 0" test $? = 0
check "every socket removed" bash -c "! ls '$T'/*.sock 2>/dev/null | grep -q ."

"$VHOSTD" --config "$T/saved.json" --control "$T/ctl.sock" 2>"$T/daemon2.log" &
DPID=$!
if wait_for_socket "$T/ctl.sock" 10; then
	ctl save-config "$T/saved2.json"
	check "start from save-config: the same config" diff "$T/saved.json" "$T/saved2.json"
	ctl list >"$T/list2"
	check "start from save-config: the same list" diff "$T/list1" "$T/list2"
	check "the restarted devices serve" "$BENCH" --socket "$T/a.sock" --rw randread --time 0.3
else
	not_ok "daemon from config did not start: $(cat "$T/daemon2.log")"
fi

# --- bad config files --------------------------------------------------------------

cfg_fail() { # description regex json
	printf '%s\n' "$3" >"$T/bad.json"
	"$VHOSTD" --config "$T/bad.json" 2>"$T/err" >/dev/null </dev/null
	local rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -Eq -- "$2" "$T/err"; then
		ok "config: $1 ($(cat "$T/err"))"
	else
		not_ok "config: $1: exit $rc: $(cat "$T/err")"
	fi
}
cfg_fail "not JSON" "bad.json: line 2" $'{"devices": [\n{"type": "blk",, }]}'
cfg_fail "an empty file" "bad.json: line 2: the JSON ends too early" ''
cfg_fail "a file cut short" "bad.json: line 2: the JSON ends too early" '{"devices": ['
cfg_fail "a key twice" "bad.json: a key appears twice in one object" \
	$'{"devices": [\n{"type":"blk","id":"q","backend":"null",\n"size":"1M","size":"2M","socket":"x"}]}'
cfg_fail "a key-like comment is no second key" "bad.json: devices\[0\]: type: unknown device type 'floppy'" \
	'{"devices": [{"type": "floppy" /* "type": */}]}'
cfg_fail "cut short in a comment" "bad.json: line 2: the JSON ends too early" \
	"{\"devices\": [{\"type\":\"blk\",\"id\":\"q\",\"backend\":\"null\",\"size\":\"1M\",\"socket\":\"$T/q.sock\"} // cut"
cfg_fail "text after the object" "bad.json: line 1: text after" '{"devices": []} x'
cfg_fail "no devices key" "bad.json: \{\"devices\"" '{"devs": []}'
cfg_fail "an extra key" "bad.json: \{\"devices\"" '{"devices": [], "x": 1}'
cfg_fail "object without type" 'bad.json: devices\[0\] \(q\): an object with "type"' '{"devices": [{"id": "q"}]}'
cfg_fail "unknown type" "bad.json: devices\[0\]: type: unknown device type 'floppy'" '{"devices": [{"type": "floppy"}]}'
cfg_fail "bad key" "bad.json: devices\[1\] \(q\): num-queues: " \
	"{\"devices\": [{\"type\":\"blk\",\"id\":\"p\",\"backend\":\"null\",\"size\":\"1M\",\"socket\":\"$T/p.sock\"}, {\"type\":\"blk\",\"id\":\"q\",\"backend\":\"null\",\"size\":\"1M\",\"socket\":\"$T/q.sock\",\"num-queues\":\"many\"}]}"
cfg_fail "value of the wrong JSON type" "bad.json: devices\[0\] \(q\): size: a string" \
	"{\"devices\": [{\"type\":\"blk\",\"id\":\"q\",\"backend\":\"null\",\"size\":1.5,\"socket\":\"$T/q.sock\"}]}"
cfg_fail "LUN of no controller" "no --scsi device 'sc9'" \
	'{"devices": [{"type":"lun","scsi":"sc9","target":0,"lun":0,"backend":"null","size":"1M"}]}'
cfg_fail "same id in the file and on the command line" "duplicate device id 'vda'" \
	"{\"devices\": [{\"type\":\"blk\",\"id\":\"vda\",\"backend\":\"null\",\"size\":\"1M\",\"socket\":\"$T/q.sock\"}, {\"type\":\"blk\",\"id\":\"vda\",\"backend\":\"null\",\"size\":\"1M\",\"socket\":\"$T/r.sock\"}]}"
# A NUL byte would hide the rest of the file from the parser.
printf '{"devices": []}\0{"devices": [{"type": "floppy"}]}\n' >"$T/nul.json"
"$VHOSTD" --config "$T/nul.json" 2>"$T/err" >/dev/null </dev/null
check "config: a NUL byte, exit 2" test $? = 2
check "config: a NUL byte is named" grep -q "nul.json: a NUL byte at offset 15" "$T/err"
"$VHOSTD" --config "$T/none.json" 2>"$T/err"
check "config: a missing file, exit 2" test $? = 2
check "config: a missing file is named" grep -q "none.json" "$T/err"

# --- a flood of garbage clients -------------------------------------------------------

fds0=$(ls /proc/"$DPID"/fd | wc -l)
python3 - "$T/ctl.sock" <<'EOF' >"$T/flood.out" 2>&1
import os, random, socket, sys, threading
path = sys.argv[1]
random.seed(7)
def one(i):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        k = i % 5
        if k == 0:
            s.sendall(os.urandom(random.randint(1, 4096)) + b"\n")
        elif k == 1:
            s.sendall(b"{" * 70000)          # an oversized line
        elif k == 2:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"device-add","params":{"type":"blk"')  # cut off
        elif k == 3:
            s.sendall(b'[' + b'{"jsonrpc":"2.0","id":1,"method":"nope"},' * 50 + b'1]\n')
        else:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"device-remove","params":{"name":"vda","force":"x"}}\n')
        # A cut-off request gets no reply: only the others are waited for.
        if k != 2 and random.random() < 0.5:
            s.recv(100)
    except OSError:
        pass
    s.close()
for r in range(10):
    ts = [threading.Thread(target=one, args=(r * 40 + i,)) for i in range(40)]
    for t in ts: t.start()
    for t in ts: t.join()
print("flood done")
EOF
check "flood: 400 garbage clients ran" grep -q "flood done" "$T/flood.out"
check "flood: daemon alive" kill -0 "$DPID"
check "flood: still answers" ctl list
check "flood: vda still listed" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' show vda >/dev/null"
sleep 0.5
fds1=$(ls /proc/"$DPID"/fd | wc -l)
echo "# daemon fds before the flood: $fds0, after: $fds1"
check "flood: no descriptor leaked" test "$fds1" -le "$fds0"
kill "$DPID"
wait "$DPID"
DPID=

# --- --control-group -------------------------------------------------------------------

"$VHOSTD" --control "$T/ctl.sock" --control-group "$(id -gn)" 2>"$T/daemon3.log" &
DPID=$!
if wait_for_socket "$T/ctl.sock" 10; then
	check "--control-group: mode 0660" test "$(stat -c %a "$T/ctl.sock")" = 660
	check "--control-group: the group" test "$(stat -c %G "$T/ctl.sock")" = "$(id -gn)"
else
	not_ok "--control-group daemon did not start: $(cat "$T/daemon3.log")"
fi

exit $failed
