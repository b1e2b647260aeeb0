#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/scale.sh - many devices on one daemon: what they cost it, and how
# well one busy device fares among many quiet ones.  vhostd against
# qemu-storage-daemon (QSD), one after the other in one run.
#
# Each daemon serves DEVICES vhost-user-blk devices of DEV_QUEUES queues on
# null back-ends (vhostd backend=null; QSD null-co with read-zeroes=on, all
# exports in one IOThread, as a QSD serving many disks would be set up).
# Then, for each daemon:
#   1. idle: its thread count (/proc/PID/status Threads) and VmRSS;
#   2. solo: vhost-bench on device 0 alone, closed loop (HEAVY_ARGS), SECS;
#   3. loaded: one vhost-bench per other device, open loop at LIGHT_RATE
#      IOPS on one queue (LIGHT_ARGS); once all are connected, device 0's
#      closed loop again for SECS, threads and RSS sampled halfway;
#   4. the heavy device's loaded IOPS over its solo IOPS, and the aggregate
#      IOPS (heavy + every light device, each over its own window).
# The daemon's CPU use is the heavy run's --cpu-pid figure: everything the
# daemon did during that window, light devices included.
#
# Many vhost-bench processes on a small machine is a lot: keep each light
# one light (one queue, a low rate: they sleep between requests) and the
# run short.  Figures are noisy; compare the two daemons within one run.
#
# Knobs (environment): BUILD (build), DEVICES (64), DEV_QUEUES (2),
# DEV_SIZE (1G), SECS (10), LIGHT_RATE (200), LIGHT_ARGS ("--rw randread
# --bs 4k --iodepth 2"), HEAVY_ARGS ("--rw randread --bs 4k --iodepth 32"),
# CONNECT_MAX (15: seconds allowed for the light processes to connect),
# DAEMONS ("vhostd qsd"), VHOSTD_ARGS (extra --blk options, e.g.
# ",poll-us=0"), VHOSTD_ARGS_DAEMON (vhostd options before the devices, e.g.
# "--io-threads 2"; passed through as words, not checked).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DEVICES=${DEVICES:-64}
DEV_QUEUES=${DEV_QUEUES:-2}
DEV_SIZE=${DEV_SIZE:-1G}
SECS=${SECS:-10}
LIGHT_RATE=${LIGHT_RATE:-200}
LIGHT_ARGS=${LIGHT_ARGS:---rw randread --bs 4k --iodepth 2}
HEAVY_ARGS=${HEAVY_ARGS:---rw randread --bs 4k --iodepth 32}
CONNECT_MAX=${CONNECT_MAX:-15}
DAEMONS=${DAEMONS:-vhostd qsd}
VHOSTD_ARGS=${VHOSTD_ARGS:-}
VHOSTD_ARGS_DAEMON=${VHOSTD_ARGS_DAEMON:-}

VHOSTD=$BUILD/vhostd
BENCH=$BUILD/vhost-bench
QSD=$(command -v qemu-storage-daemon || true)
for p in "$VHOSTD" "$BENCH"; do
	[ -x "$p" ] || { echo "scale.sh: $p not built (make build)" >&2; exit 1; }
done
[[ " $DAEMONS " != *" qsd "* || -n "$QSD" ]] ||
	{ echo "scale.sh: qemu-storage-daemon not installed (or DAEMONS=vhostd)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "scale.sh: python3 needed for the table" >&2; exit 1; }
((DEVICES >= 2)) || { echo "scale.sh: DEVICES must be at least 2" >&2; exit 1; }

T=$(mktemp -d /tmp/vhostd-scale.XXXXXX)
# shellcheck source=bench/procs.sh
. "$(dirname "$0")/procs.sh"
CLEANUP_PATHS+=("$T")

size_bytes=$(numfmt --from=iec "$DEV_SIZE")
# Light processes run past the heavy window, whatever their connection took.
LIGHT_SECS=$((SECS + CONNECT_MAX + 2))

status_field() { # pid field: a number from /proc/PID/status
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

start_daemon() { # name; sets DPID
	local i args=()
	if [ "$1" = vhostd ]; then
		for ((i = 0; i < DEVICES; i++)); do
			args+=(--blk "id=d$i,backend=null,size=$size_bytes,socket=$T/$1-$i.sock,num-queues=$DEV_QUEUES$VHOSTD_ARGS")
		done
		# shellcheck disable=SC2086 # VHOSTD_ARGS_DAEMON is a list of options
		"$VHOSTD" --log-level warn $VHOSTD_ARGS_DAEMON "${args[@]}" 2>"$T/$1.log" &
	else
		args=(--object "iothread,id=io0")
		for ((i = 0; i < DEVICES; i++)); do
			args+=(--blockdev "driver=null-co,node-name=null$i,size=$size_bytes,read-zeroes=on"
				--export "type=vhost-user-blk,id=exp$i,addr.type=unix,addr.path=$T/$1-$i.sock,node-name=null$i,writable=on,num-queues=$DEV_QUEUES,iothread=io0")
		done
		"$QSD" "${args[@]}" 2>"$T/$1.log" &
	fi
	DPID=$!
	PIDS+=("$DPID")
	for ((i = 0; i < 300; i++)); do
		[ -S "$T/$1-$((DEVICES - 1)).sock" ] && [ -S "$T/$1-0.sock" ] && return 0
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
	done
	echo "scale.sh: $1 did not start: $(cat "$T/$1.log")" >&2
	exit 1
}

stop_daemon() {
	kill "$DPID" 2>/dev/null || true
	wait "$DPID" 2>/dev/null || true
}

heavy() { # daemon out-file: device 0, closed loop
	# shellcheck disable=SC2086 # HEAVY_ARGS is a list of flags
	"$BENCH" --socket "$T/$1-0.sock" $HEAVY_ARGS --time "$SECS" --json --cpu-pid "$DPID" \
		>"$2" 2>"$2.err"
}

# Wait until every light vhost-bench has started its worker thread (it does
# so only once connected and set up) or has exited.
wait_lights_connected() {
	local pid n left deadline=$((SECONDS + CONNECT_MAX))
	while ((SECONDS < deadline)); do
		left=0
		for pid in "${LIGHT_PIDS[@]}"; do
			n=$(status_field "$pid" Threads 2>/dev/null || echo 2)
			((${n:-2} >= 2)) || left=$((left + 1))
		done
		((left == 0)) && return 0
		sleep 0.2
	done
	echo "scale.sh: $left light vhost-bench processes not connected after ${CONNECT_MAX}s" >&2
	return 1
}

run_daemon() { # name
	local d=$1 i out pid
	echo "scale.sh: $d: $DEVICES devices x $DEV_QUEUES queues" >&2
	start_daemon "$d"
	sleep 0.5
	out=$T/$d.summary
	{
		echo "idle_threads=$(status_field "$DPID" Threads)"
		echo "idle_rss_kb=$(status_field "$DPID" VmRSS)"
	} >"$out"

	echo "scale.sh: $d: solo run on device 0, ${SECS}s" >&2
	heavy "$d" "$T/$d-solo.json" || echo "scale.sh: $d: solo run failed: $(cat "$T/$d-solo.json.err")" >&2

	echo "scale.sh: $d: starting $((DEVICES - 1)) light vhost-bench at $LIGHT_RATE IOPS" >&2
	LIGHT_PIDS=()
	for ((i = 1; i < DEVICES; i++)); do
		# shellcheck disable=SC2086 # LIGHT_ARGS is a list of flags
		"$BENCH" --socket "$T/$d-$i.sock" $LIGHT_ARGS --queues 1 --rate "$LIGHT_RATE" \
			--time "$LIGHT_SECS" --json >"$T/$d-light-$i.json" 2>"$T/$d-light-$i.err" &
		LIGHT_PIDS+=($!)
		PIDS+=($!)
	done
	local t0=$SECONDS
	wait_lights_connected || true
	echo "scale.sh: $d: lights connected in $((SECONDS - t0))s; loaded run on device 0, ${SECS}s" >&2
	heavy "$d" "$T/$d-loaded.json" &
	pid=$!
	PIDS+=("$pid")
	sleep "$(python3 -c "print($SECS / 2)")"
	{
		echo "loaded_threads=$(status_field "$DPID" Threads)"
		echo "loaded_rss_kb=$(status_field "$DPID" VmRSS)"
	} >>"$out"
	wait "$pid" || echo "scale.sh: $d: loaded run failed: $(cat "$T/$d-loaded.json.err")" >&2
	echo "scale.sh: $d: waiting for the light processes to finish" >&2
	for pid in "${LIGHT_PIDS[@]}"; do
		wait "$pid" || true
	done
	stop_daemon
}

LOAD_START=$(cat /proc/loadavg)
for d in $DAEMONS; do
	run_daemon "$d"
done

python3 - "$T" "$DAEMONS" "$DEVICES" "$DEV_QUEUES" "$DEV_SIZE" "$SECS" "$LIGHT_RATE" \
	"$LIGHT_ARGS" "$HEAVY_ARGS" "$VHOSTD_ARGS_DAEMON" "$VHOSTD_ARGS" "$LOAD_START" \
	"$(cat /proc/loadavg)" <<'EOF'
import glob, json, os, sys
(t, daemons, devices, queues, size, secs, rate, largs, hargs, vdargs, vargs, load0,
 load1) = sys.argv[1:]
devices = int(devices)

def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None

def kv(path):
    d = {}
    for line in open(path):
        k, _, v = line.strip().partition("=")
        d[k] = v
    return d

print(f"{devices} vhost-user-blk devices x {queues} queues, null back-ends of {size}, on one daemon")
print(f"  heavy: device 0, closed loop: {hargs}, {secs} s, alone then among the others")
print(f"  light: each other device, open loop at {rate} IOPS, one queue: {largs}")
print(f"  vhostd daemon options: '{vdargs}'; extra --blk options: '{vargs}'")
print("  qemu-storage-daemon: every export in one IOThread (iothread=io0)")
print(f"  /proc/loadavg before: {load0}")
print(f"  /proc/loadavg after:  {load1}")
print()
rows = []
for d in daemons.split():
    s = kv(os.path.join(t, f"{d}.summary"))
    solo = load(os.path.join(t, f"{d}-solo.json"))
    loaded = load(os.path.join(t, f"{d}-loaded.json"))
    lights = [load(p) for p in glob.glob(os.path.join(t, f"{d}-light-*.json"))]
    ok = [r for r in lights if r]
    light_iops = sum(r["iops"] for r in ok)
    due = sum(r["scheduled"] for r in ok)
    late = sum(r["late"] + r["dropped"] for r in ok)
    worst_p99 = max((r["latency-us"]["p99"] for r in ok), default=None)
    rows.append((d, s, solo, loaded, ok, len(lights), light_iops, due, late, worst_p99))

def f(x, fmt="{:.0f}"):
    return "-" if x is None else fmt.format(x)

fmt = "{:<8} {:>8} {:>8} {:>9} {:>9}  {:>9} {:>9} {:>6} {:>8} {:>6}  {:>9}  {:>7} {:>9} {:>9}"
print(fmt.format("", "threads", "threads", "RSS MiB", "RSS MiB", "heavy", "heavy", "heavy",
                 "heavy", "daemon", "aggregate", "lights", "lights", "lights"))
print(fmt.format("daemon", "idle", "loaded", "idle", "loaded", "solo IOPS", "loaded", "ratio",
                 "p99 us", "CPU %", "IOPS", "ok", "late %", "worst p99"))
for d, s, solo, loaded, ok, nl, light_iops, due, late, worst in rows:
    si = solo["iops"] if solo else None
    li = loaded["iops"] if loaded else None
    cpu = loaded["cpu-us"] / loaded["seconds"] / 1e4 if loaded else None
    print(fmt.format(d, s.get("idle_threads", "-"), s.get("loaded_threads", "-"),
                     f(int(s["idle_rss_kb"]) / 1024, "{:.1f}") if s.get("idle_rss_kb") else "-",
                     f(int(s["loaded_rss_kb"]) / 1024, "{:.1f}") if s.get("loaded_rss_kb") else "-",
                     f(si), f(li), f(li / si if si and li is not None else None, "{:.2f}x"),
                     f(loaded["latency-us"]["p99"] if loaded else None, "{:.0f}"), f(cpu, "{:.0f}"),
                     f((li or 0) + light_iops), f"{len(ok)}/{nl}",
                     f(100.0 * late / due if due else None, "{:.1f}"), f(worst, "{:.0f}")))
print()
print("heavy ratio = device 0's IOPS among the light devices / its IOPS alone (1.00x: not")
print("disturbed).  daemon CPU %: its user+system time during the loaded heavy run, all threads,")
print("light devices included (100 = one core).  aggregate = heavy + the light devices' IOPS.")
print("lights late %: open-loop requests that found their queue full, of those due; worst p99:")
print("the highest p99 latency (us, from due time) among the light devices.")
EOF
exit 0
