#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/blk.sh - vhost-bench against vhostd and qemu-storage-daemon (QSD),
# side by side in one run, and a table of vhostd/QSD ratios.
#
# Two comparisons, on terms as equal as the two programs allow:
#   null  QSD's null-co driver with read-zeroes=on against vhostd's
#         backend=null: no storage on either side; reads memset the guest's
#         buffers to zero, writes are dropped.  Only the datapath is measured.
#   file  the same image on disk, O_DIRECT on both sides: vhostd cache=none,
#         QSD cache.direct=on,aio=io_uring (and locking=off, since vhostd
#         holds its own lock on the image; the two never run at once).
#
# The null rows run in both front-end modes, completion by call eventfd
# (a guest's interrupt) and by polling the used ring (--poll), at QD1 and
# QD32; two open-loop rows (--rate 20k and 100k IOPS, QD4, interrupt mode)
# show what a fixed, moderate load costs.  Every run passes --cpu-pid, so
# each row also gives the daemon's CPU time per request (all its threads,
# from /proc/PID/stat, sampled by vhost-bench at the start and end of its
# measuring window: exactly the requests counted, without the connection
# set-up and tear-down that sampling around the vhost-bench process would
# add), and vhost-bench's own.
#
# Every workload runs on every target once per round; rounds alternate
# which daemon goes first, so slow drift of the machine hits both alike.
# Compare only within one run: figures swing from run to run.
#
# vhostd's queue thread spins up to 50 us on an idle ring before sleeping
# (poll-us); QSD's main loop does not, but an IOThread does (poll-max-ns,
# 32 us by default): QSD_IOTHREAD=1 runs both QSD exports in one, which
# compares polling with polling.
#
# Knobs (environment): BUILD (build), ROUNDS (3), SECS (5), QUEUES (1),
# NULL_SIZE (1G), FILE_SIZE (1G), FILE_DIR (/var/tmp: must be a disk, not
# tmpfs), BACKENDS ("null file": which rows to run), ROWS (an extended
# regular expression: run only the workloads whose name matches, e.g.
# "qd1|rate"), BENCH_ARGS (extra vhost-bench flags for every run),
# VHOSTD_ARGS (extra --blk options for vhostd, e.g. ",poll-us=0"),
# VHOSTD_ARGS_DAEMON (extra vhostd options before the devices, e.g.
# "--io-threads 2"; passed through as words, not checked), QSD_IOTHREAD (0),
# FIO (1 when $BUILD/tools/fio/vhostd-fio.so is built: each round also runs
# "randread 4k qd32" through fio's vhostd engine on every back-end's device
# of both daemons, printed beside vhost-bench's figures for the same row).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
QUEUES=${QUEUES:-1}
NULL_SIZE=${NULL_SIZE:-1G}
FILE_SIZE=${FILE_SIZE:-1G}
FILE_DIR=${FILE_DIR:-/var/tmp}
BACKENDS=${BACKENDS:-null file}
ROWS=${ROWS:-}
BENCH_ARGS=${BENCH_ARGS:-}
VHOSTD_ARGS=${VHOSTD_ARGS:-}
VHOSTD_ARGS_DAEMON=${VHOSTD_ARGS_DAEMON:-}
QSD_IOTHREAD=${QSD_IOTHREAD:-0}
FIO_SO=$BUILD/tools/fio/vhostd-fio.so
FIO=${FIO:-$([ -f "$FIO_SO" ] && command -v fio >/dev/null && echo 1 || echo 0)}

# name|backends|vhost-bench flags (--queues, --time, --json and --cpu-pid are added)
ALL_WORKLOADS=(
	"randread 4k qd1|null|--rw randread --bs 4k --iodepth 1"
	"randread 4k qd32|null file|--rw randread --bs 4k --iodepth 32"
	"randread 4k qd1 poll|null|--rw randread --bs 4k --iodepth 1 --poll"
	"randread 4k qd32 poll|null|--rw randread --bs 4k --iodepth 32 --poll"
	"randwrite 4k qd32|null file|--rw randwrite --bs 4k --iodepth 32"
	"read 128k qd8|null file|--rw read --bs 128k --iodepth 8"
	"rate 20k qd4|null|--rw randread --bs 4k --iodepth 4 --rate 20000"
	"rate 100k qd4|null|--rw randread --bs 4k --iodepth 4 --rate 100000"
)
WORKLOADS=()
for w in "${ALL_WORKLOADS[@]}"; do
	if [ -z "$ROWS" ] || [[ ${w%%|*} =~ $ROWS ]]; then
		WORKLOADS+=("$w")
	fi
done
[ ${#WORKLOADS[@]} -gt 0 ] || { echo "blk.sh: ROWS='$ROWS' matches no workload" >&2; exit 1; }
for b in $BACKENDS; do
	case $b in
	null | file) ;;
	*) echo "blk.sh: BACKENDS: '$b' is neither null nor file" >&2; exit 1 ;;
	esac
done
has_backend() { [[ " $BACKENDS " == *" $1 "* ]]; }

VHOSTD=$BUILD/vhostd
BENCH=$BUILD/vhost-bench
QSD=$(command -v qemu-storage-daemon || true)
for p in "$VHOSTD" "$BENCH"; do
	[ -x "$p" ] || { echo "blk.sh: $p not built (make build)" >&2; exit 1; }
done
[ -n "$QSD" ] || { echo "blk.sh: qemu-storage-daemon not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "blk.sh: python3 needed for the table" >&2; exit 1; }

SOCKS=$(mktemp -d /tmp/vhostd-bench.XXXXXX)
DISK=
# shellcheck source=bench/procs.sh
. "$(dirname "$0")/procs.sh"
CLEANUP_PATHS+=("$SOCKS")

bytes() { # 1G -> 1073741824
	numfmt --from=iec "$1"
}

wait_for_socket() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	echo "blk.sh: $1 did not appear" >&2
	exit 1
}

# --- the images and the daemons ---------------------------------------------

null_bytes=$(bytes "$NULL_SIZE")
file_bytes=$(bytes "$FILE_SIZE")
vhostd_devs=()
qsd_devs=()
qsd_exp_opts=""
if [ "$QSD_IOTHREAD" = 1 ]; then
	qsd_devs=(--object "iothread,id=io0")
	qsd_exp_opts=",iothread=io0"
fi
if has_backend null; then
	vhostd_devs+=(--blk "id=null,backend=null,size=$null_bytes,socket=$SOCKS/vhostd-null.sock,num-queues=$QUEUES$VHOSTD_ARGS")
	qsd_devs+=(--blockdev "driver=null-co,node-name=null0,size=$null_bytes,read-zeroes=on"
		--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$SOCKS/qsd-null.sock,node-name=null0,writable=on,num-queues=$QUEUES$qsd_exp_opts")
fi
if has_backend file; then
	DISK=$(mktemp -d "$FILE_DIR/vhostd-bench.XXXXXX")
	CLEANUP_PATHS+=("$DISK")
	# Really written, so O_DIRECT reads hit the disk rather than unwritten extents.
	echo "blk.sh: writing a $FILE_SIZE image in $DISK ..." >&2
	dd if=/dev/zero of="$DISK/disk.img" bs=1M count=$((file_bytes >> 20)) oflag=direct \
		conv=fsync status=none
	vhostd_devs+=(--blk "id=file,path=$DISK/disk.img,socket=$SOCKS/vhostd-file.sock,num-queues=$QUEUES,cache=none$VHOSTD_ARGS")
	qsd_devs+=(--blockdev "driver=file,node-name=file0,filename=$DISK/disk.img,cache.direct=on,aio=io_uring,locking=off"
		--blockdev "driver=raw,node-name=raw0,file=file0"
		--export "type=vhost-user-blk,id=exp1,addr.type=unix,addr.path=$SOCKS/qsd-file.sock,node-name=raw0,writable=on,num-queues=$QUEUES$qsd_exp_opts")
fi

# shellcheck disable=SC2086 # VHOSTD_ARGS_DAEMON is a list of options
"$VHOSTD" --log-level warn $VHOSTD_ARGS_DAEMON "${vhostd_devs[@]}" &
VHOSTD_PID=$!
PIDS+=("$VHOSTD_PID")
"$QSD" "${qsd_devs[@]}" &
QSD_PID=$!
PIDS+=("$QSD_PID")
for b in $BACKENDS; do
	for d in vhostd qsd; do
		wait_for_socket "$SOCKS/$d-$b.sock"
	done
done

# --- the runs ----------------------------------------------------------------

RESULTS=$SOCKS/results
: >"$RESULTS"

run() { # daemon backend workload-index round
	local daemon=$1 backend=$2 w=${WORKLOADS[$3]} round=$4 name flags out pid
	name=${w%%|*}
	flags=${w##*|}
	pid=$VHOSTD_PID
	[ "$daemon" = qsd ] && pid=$QSD_PID
	# shellcheck disable=SC2086 # flags and BENCH_ARGS are lists of flags
	if out=$("$BENCH" --socket "$SOCKS/$daemon-$backend.sock" $flags --queues "$QUEUES" \
		--time "$SECS" --json --cpu-pid "$pid" $BENCH_ARGS 2>&1); then
		printf '%s\t%s\t%s\t%s\t%s\n' "$backend" "$name" "$daemon" "$round" "$out" >>"$RESULTS"
		python3 -c 'import json,sys
r = json.loads(sys.argv[1])
print("  round %s  %-5s %-20s %-7s %7.0f IOPS  p50 %6.1f us  %5.2f CPU-us/req"
      % (*sys.argv[2:], r["iops"], r["latency-us"]["p50"], r["cpu-us-per-request"]))' \
			"$out" "$round" "$backend" "$name" "$daemon" >&2
	else
		printf '%s\t%s\t%s\t%s\tFAIL\n' "$backend" "$name" "$daemon" "$round" >>"$RESULTS"
		echo "  round $round $backend $name $daemon: FAILED: $out" >&2
	fi
}

# The same device through fio's vhostd engine (tools/fio): randread 4k QD32.
FIO_RESULTS=$SOCKS/fio-results
: >"$FIO_RESULTS"
run_fio() { # daemon backend round
	local out
	if out=$(fio --thread --ioengine="external:$FIO_SO" --socket="$SOCKS/$1-$2.sock" \
		--filename="$2" --name=j --rw=randread --bs=4k --iodepth=32 --numjobs="$QUEUES" \
		--group_reporting --time_based --runtime="$SECS" --output-format=json 2>/dev/null); then
		printf '%s\t%s\t%s\t%s\n' "$2" "$1" "$3" "$(tr -d '\n' <<<"$out")" >>"$FIO_RESULTS"
	else
		echo "  round $3 $2 fio $1: FAILED" >&2
	fi
}

LOAD_START=$(cat /proc/loadavg)
echo "blk.sh: $ROUNDS rounds x ${#WORKLOADS[@]} workloads x ($BACKENDS) x 2 daemons x ${SECS}s" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order=(vhostd qsd); else order=(qsd vhostd); fi
	for ((w = 0; w < ${#WORKLOADS[@]}; w++)); do
		backends=${WORKLOADS[$w]#*|}
		backends=${backends%%|*}
		for backend in $BACKENDS; do
			[[ " $backends " == *" $backend "* ]] || continue
			for daemon in "${order[@]}"; do
				run "$daemon" "$backend" "$w" "$round"
			done
		done
	done
	if [ "$FIO" = 1 ]; then
		for backend in $BACKENDS; do
			for daemon in "${order[@]}"; do
				run_fio "$daemon" "$backend" "$round"
			done
		done
	fi
done

# --- the table ---------------------------------------------------------------

python3 - "$RESULTS" "$ROUNDS" "$SECS" "$QUEUES" "$NULL_SIZE" "$FILE_SIZE" "$FILE_DIR" \
	"$VHOSTD_ARGS" "$QSD_IOTHREAD" "$VHOSTD_ARGS_DAEMON" "$BENCH_ARGS" "$LOAD_START" \
	"$(cat /proc/loadavg)" "$BACKENDS" "$FIO_RESULTS" <<'EOF'
import json, statistics, sys
(path, rounds, secs, queues, null_size, file_size, file_dir, vargs, qiot, vdargs, bargs,
 load0, load1, backends, fio_path) = sys.argv[1:]
runs = {}
order = []
for line in open(path):
    backend, name, daemon, rnd, out = line.rstrip("\n").split("\t", 4)
    key = (backend, name)
    if key not in order:
        order.append(key)
    runs.setdefault(key, {}).setdefault(daemon, {})[rnd] = None if out == "FAIL" else json.loads(out)

def med(xs):
    return statistics.median(xs) if xs else None

def ok(by):
    return [r for r in by.values() if r]

def m(by, get):
    return med([get(r) for r in ok(by)])

def num(x, f="{:.0f}"):
    return "FAIL" if x is None else f.format(x)

def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"

iops = lambda r: r["iops"]
p50 = lambda r: r["latency-us"]["p50"]
p99 = lambda r: r["latency-us"]["p99"]
cpu = lambda r: r["cpu-us-per-request"]
bcpu = lambda r: r["bench-cpu-us-per-request"]
kicks = lambda r: r["kicks-per-request"]
calls = lambda r: r["calls-per-request"]
late = lambda r: 100.0 * (r["late"] + r["dropped"]) / r["scheduled"] if r["scheduled"] else 0.0

print(f"vhost-bench, {queues} queue(s), {secs} s per run, {rounds} rounds interleaved; "
      "medians over rounds")
if "null" in backends.split():
    print(f"  null: vhostd backend=null,size={null_size}")
    print(f"        vs qemu-storage-daemon null-co, size={null_size}, read-zeroes=on")
if "file" in backends.split():
    print(f"  file: the same {file_size} image in {file_dir}, O_DIRECT on both: vhostd cache=none,")
    print("        vs qemu-storage-daemon cache.direct=on,aio=io_uring")
print(f"  vhostd daemon options: '{vdargs}'; extra --blk options: '{vargs}'; qsd exports in "
      + ("an IOThread (polls)" if qiot == "1" else "the main loop (no polling)"))
print(f"  vhost-bench extra flags: '{bargs}'; 'poll' rows: --poll, others: call eventfd;")
print("  'rate' rows: open loop (--rate), latency counted from each request's due time")
print(f"  /proc/loadavg before: {load0}")
print(f"  /proc/loadavg after:  {load1}")
print()

print("Throughput and latency")
fmt = "{:<5} {:<20} {:>9} {:>9} {:>6} {:>11}  {:>8} {:>8} {:>6}  {:>8} {:>8}"
print(fmt.format("", "", "vhostd", "qsd", "IOPS", "(per round)", "vhostd", "qsd", "p50",
                 "vhostd", "qsd"))
print(fmt.format("", "workload", "IOPS", "IOPS", "ratio", "", "p50 us", "p50 us", "ratio",
                 "p99 us", "p99 us"))
for key in order:
    v = runs[key].get("vhostd", {})
    q = runs[key].get("qsd", {})
    per = [v[r]["iops"] / q[r]["iops"] for r in v if v.get(r) and q.get(r) and q[r]["iops"]]
    spread = f"{min(per):.2f}..{max(per):.2f}" if per else "-"
    print(fmt.format(key[0], key[1], num(m(v, iops)), num(m(q, iops)),
                     ratio(m(v, iops), m(q, iops)), spread,
                     num(m(v, p50), "{:.1f}"), num(m(q, p50), "{:.1f}"),
                     ratio(m(v, p50), m(q, p50)),
                     num(m(v, p99), "{:.1f}"), num(m(q, p99), "{:.1f}")))
    fails = sum(1 for r in list(v.values()) + list(q.values()) if r is None)
    if fails:
        print(f"      ({fails} failed run(s) left out)")
print()
print("CPU and notifications (per request)")
fmt = "{:<5} {:<20} {:>8} {:>8} {:>6}  {:>11}  {:>11}  {:>11}  {:>11}"
print(fmt.format("", "", "vhostd", "qsd", "CPU", "vhost-bench", "kicks", "calls", "late+drop"))
print(fmt.format("", "workload", "CPU-us", "CPU-us", "ratio", "CPU-us v/q", "v/q", "v/q",
                 "% v/q"))
for key in order:
    v = runs[key].get("vhostd", {})
    q = runs[key].get("qsd", {})
    is_rate = any(r.get("rate") for r in ok(v) + ok(q))
    print(fmt.format(key[0], key[1], num(m(v, cpu), "{:.2f}"), num(m(q, cpu), "{:.2f}"),
                     ratio(m(v, cpu), m(q, cpu)),
                     num(m(v, bcpu), "{:.2f}") + "/" + num(m(q, bcpu), "{:.2f}"),
                     num(m(v, kicks), "{:.3f}") + "/" + num(m(q, kicks), "{:.3f}"),
                     num(m(v, calls), "{:.3f}") + "/" + num(m(q, calls), "{:.3f}"),
                     num(m(v, late), "{:.1f}") + "/" + num(m(q, late), "{:.1f}")
                     if is_rate else "-"))
fio_runs = {}
for line in open(fio_path):
    backend, daemon, rnd, out = line.rstrip("\n").split("\t", 3)
    rd = json.loads(out)["jobs"][0]["read"]
    pct = rd["clat_ns"]["percentile"]
    fio_runs.setdefault((backend, daemon), []).append(
        {"iops": rd["iops"], "latency-us": {"p50": pct["50.000000"] / 1e3,
                                           "p99": pct["99.000000"] / 1e3}})
if fio_runs:
    print()
    print("The same devices through fio (tools/fio vhostd-fio.so) beside vhost-bench:"
          " randread 4k qd32")
    fmt = "{:<5} {:<12} {:>9} {:>9} {:>6}  {:>8} {:>8} {:>6}  {:>8} {:>8}"
    print(fmt.format("", "driver", "vhostd", "qsd", "IOPS", "vhostd", "qsd", "p50",
                     "vhostd", "qsd"))
    print(fmt.format("", "", "IOPS", "IOPS", "ratio", "p50 us", "p50 us", "ratio",
                     "p99 us", "p99 us"))
    for b in backends.split():
        vb = runs.get((b, "randread 4k qd32"), {})
        rows = [("vhost-bench", vb.get("vhostd", {}), vb.get("qsd", {})),
                ("fio", {str(i): r for i, r in enumerate(fio_runs.get((b, "vhostd"), []))},
                 {str(i): r for i, r in enumerate(fio_runs.get((b, "qsd"), []))})]
        for name, v, q in rows:
            if not ok(v) or not ok(q):
                continue
            print(fmt.format(b, name, num(m(v, iops)), num(m(q, iops)),
                             ratio(m(v, iops), m(q, iops)),
                             num(m(v, p50), "{:.1f}"), num(m(q, p50), "{:.1f}"),
                             ratio(m(v, p50), m(q, p50)),
                             num(m(v, p99), "{:.1f}"), num(m(q, p99), "{:.1f}")))
print()
print("IOPS ratio = vhostd / qsd median IOPS (above 1: vhostd faster); p50 ratio = vhostd /")
print("qsd median p50 latency (below 1: vhostd quicker); CPU ratio = vhostd / qsd CPU time per")
print("request (below 1: vhostd cheaper).  CPU-us: the daemon's user+system time, all threads,")
print("over vhost-bench's measuring window (clock ticks: coarse on short runs), per request;")
print("a daemon that spins while idle (vhostd's poll-us) pays for it here.  late+drop: open-loop")
print("requests that found --iodepth full, as a percentage of those due.")
EOF
exit 0
