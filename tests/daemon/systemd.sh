#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# systemd.sh VHOSTD BUILD_ROOT UNIT - vhostd as a system service:
#   - the installed unit passes `systemd-analyze verify` (ExecStart pointed
#     at the build's vhostd), and a broken copy of it does not;
#   - the notify protocol: READY=1 only once every device's socket exists,
#     WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM;
#   - --log-format=json: every line one JSON object with time, level,
#     ident, msg, and the device as subject;
#   - --log-file and SIGHUP: after a logrotate-style move, new lines go to
#     a new file by the same name;
#   - `meson install` puts the binaries, man pages, unit and example
#     config in place (DESTDIR), and the example config starts a daemon.
set -u

VHOSTD=$(realpath "$1")
BUILD=$2
UNIT=$3

T=$(mktemp -d /tmp/vhostd-test-systemd.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

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
expect_fail 2 "--log-format bad" --log-format xml --control "$T/c.sock"
expect_fail 2 "--log-file in a missing folder" --log-file "$T/nodir/log" --control "$T/c.sock"

# --- the unit ---------------------------------------------------------------------

sed "s|^ExecStart=[^ ]*|ExecStart=$VHOSTD|" "$UNIT" >"$T/vhostd.service"
check "unit: Type=notify" grep -q '^Type=notify$' "$T/vhostd.service"
check "unit: a watchdog" grep -q '^WatchdogSec=' "$T/vhostd.service"
if systemd-analyze verify --man=no "$T/vhostd.service" >"$T/verify.out" 2>&1; then
	ok "systemd-analyze verify"
else
	not_ok "systemd-analyze verify: $(cat "$T/verify.out")"
fi
mkdir "$T/bad"
sed 's/^Type=notify$/Type=notifyy/; s/^WatchdogSec=.*/WatchdogSec=soon/' \
	"$T/vhostd.service" >"$T/bad/vhostd.service"
# systemd-analyze only warns about bad values: they must show up.
systemd-analyze verify --man=no "$T/bad/vhostd.service" >"$T/verify-bad.out" 2>&1
check "systemd-analyze flags a broken copy" grep -q 'Failed to parse' "$T/verify-bad.out"

# --- the notify protocol ----------------------------------------------------------

truncate -s 16M "$T/a.img"
cat >"$T/cfg.json" <<EOF
{"devices": [
 {"type": "blk", "id": "vda", "path": "$T/a.img", "socket": "$T/a.sock"},
 {"type": "scsi", "id": "sc0", "socket": "$T/s.sock"},
 {"type": "lun", "scsi": "sc0", "target": 0, "lun": 0, "backend": "null", "size": "1M"}
]}
EOF
python3 - "$VHOSTD" "$T" <<'EOF' >"$T/notify.out" 2>&1
import os, socket, subprocess, sys, time
vhostd, t = sys.argv[1], sys.argv[2]
path = t + "/notify.sock"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(10)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
# WATCHDOG_PID must be vhostd's own pid: exec keeps the shell's.
p = subprocess.Popen(["bash", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', vhostd,
                      "--config", t + "/cfg.json", "--control", t + "/ctl.sock"],
                     env=env, stderr=open(t + "/notify-daemon.log", "w"))
msgs = []
def recv():
    m = s.recv(4096).decode()
    msgs.append(m)
    return m
m = recv()
print("first:", m.replace("\n", " | "))
print("READY first:", m.startswith("READY=1"))
print("sockets at READY:", all(os.path.exists(t + "/" + n) for n in ("a.sock", "s.sock", "ctl.sock")))
start = time.monotonic()
wd = 0
while time.monotonic() - start < 1.0:
    if recv() == "WATCHDOG=1":
        wd += 1
print("watchdog pings in 1 s:", wd)
p.terminate()
stopping = False
try:
    while not stopping:
        stopping = recv().startswith("STOPPING=1")
except socket.timeout:
    pass
print("STOPPING:", stopping)
print("exit:", p.wait(timeout=10))
EOF
sed 's/^/# /' "$T/notify.out"
check "notify: READY=1 is the first message" grep -q '^READY first: True$' "$T/notify.out"
check "notify: READY=1 carries a STATUS" grep -q '^first: READY=1 | STATUS=serving 2 device(s)$' "$T/notify.out"
check "notify: every socket exists at READY=1" grep -q '^sockets at READY: True$' "$T/notify.out"
check "notify: WATCHDOG=1 about every 100 ms" \
	awk -F': ' '/^watchdog pings/ { exit !($2 >= 5 && $2 <= 15) }' "$T/notify.out"
check "notify: STOPPING=1 on SIGTERM" grep -q '^STOPPING: True$' "$T/notify.out"
check "notify: exit 0" grep -q '^exit: 0$' "$T/notify.out"

# --- JSON logs ---------------------------------------------------------------------

"$VHOSTD" --log-format json --config "$T/cfg.json" --control "$T/ctl.sock" 2>"$T/json.log" &
DPID=$!
wait_for_socket "$T/ctl.sock" 10
kill "$DPID"
wait "$DPID"
DPID=
sed 's/^/# /' "$T/json.log" | head -5
check "json logs: every line an object with time, level, ident, msg" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 4, lines
for l in lines:
    o = json.loads(l)
    assert set(o) >= {"time", "level", "ident", "msg"}, o
    assert o["level"] in ("error", "warn", "info", "debug"), o
' "$T/json.log"
check "json logs: the device is the subject" \
	grep -q '"subject":"vda","msg":"vda: listening on' "$T/json.log"

# --- --log-file and SIGHUP -----------------------------------------------------------

"$VHOSTD" --log-file "$T/vhostd.log" --config "$T/cfg.json" --control "$T/ctl.sock" &
DPID=$!
wait_for_socket "$T/ctl.sock" 10
check "log file: start-up lines written" grep -q 'vda: serving' "$T/vhostd.log"
mv "$T/vhostd.log" "$T/vhostd.log.1"
kill -HUP "$DPID"
for _ in $(seq 50); do
	[ -s "$T/vhostd.log" ] && break
	sleep 0.1
done
check "SIGHUP: a new file by the same name" grep -q 'SIGHUP: log file reopened' "$T/vhostd.log"
check "SIGHUP: the daemon lives on" kill -0 "$DPID"
kill "$DPID"
wait "$DPID"
check "SIGTERM after SIGHUP: exit 0" test $? = 0
DPID=
check "log file: the stop went to the new file" grep -q 'stopped' "$T/vhostd.log"
check "log file: the old file kept its lines only" bash -c "! grep -q stopped '$T/vhostd.log.1'"

# --- meson install ---------------------------------------------------------------------

if meson install -C "$BUILD" --no-rebuild --quiet --destdir "$T/inst" >"$T/install.out" 2>&1; then
	ok "meson install --destdir"
else
	not_ok "meson install: $(tail -5 "$T/install.out")"
fi
for f in sbin/vhostd bin/vhostctl bin/vhost-bench share/man/man8/vhostd.8 \
	share/man/man1/vhostctl.1 lib/systemd/system/vhostd.service \
	share/doc/vhostd/vhostd.json.example; do
	check "installed: $f" bash -c "find '$T/inst' -path '*/$f' | grep -q ."
done
ex=$(find "$T/inst" -name vhostd.json.example | head -1)
# The example with its paths moved into $T: it starts as it is written.
sed "s|/var/lib/vhostd|$T|g; s|/run/vhostd|$T|g" "$ex" >"$T/example.json"
truncate -s 16M "$T/vda.img" "$T/sc0-0.img"
"$VHOSTD" --config "$T/example.json" --control "$T/ctl.sock" 2>"$T/example.log" &
DPID=$!
if wait_for_socket "$T/ctl.sock" 10 && wait_for_socket "$T/sc0.sock" 10; then
	ok "the example config starts"
else
	not_ok "the example config: $(cat "$T/example.log")"
fi
kill "$DPID"
wait "$DPID"
DPID=

exit $failed
