#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/net.sh - vhostd's virtio-net datapath against DPDK's own vhost PMD,
# both driven by the same DPDK 22.11 testpmd with a virtio-user port (no
# hugepages anywhere), side by side and interleaved in one run:
#   1. txonly, 64-byte frames: into vhostd --net backend=null, and into a
#      testpmd with --vdev net_vhost0 in rxonly mode;
#   2. the same with 1500-byte frames;
#   3. loopback: the front-end forwards what it receives (io, after a first
#      burst of TX_FIRST x 32 frames) into vhostd backend=loopback, and into
#      a net_vhost testpmd in io mode (it sends each frame straight back).
# The front-end's lcore polls on CPU 0; vhostd (--io-threads 1) and the
# back-end testpmd's lcore run on CPU 1.  Each measurement is the packet
# count the front-end's port stats moved over a window of SECS seconds
# (TX-packets for txonly: what the back-end consumed; RX-packets for
# loopback: what came back), after 2 s of warm-up.  The table gives the
# median of ROUNDS rounds and vhostd / DPDK.
#
# Knobs: BUILD (build), SECS (5), ROUNDS (3), TX_FIRST (8), QUEUES (1).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
TX_FIRST=${TX_FIRST:-8}
QUEUES=${QUEUES:-1}
VHOSTD=$BUILD/vhostd
[[ -x $VHOSTD ]] || { echo "bench/net.sh: build first (make build)" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "bench/net.sh: dpdk-testpmd missing (scripts/deps.sh)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vhd-net-bench.XXXXXX")
# shellcheck source=bench/procs.sh
. "$(dirname "$0")/procs.sh"
[[ -n ${KEEP:-} ]] || CLEANUP_PATHS+=("$T")
echo "bench/net.sh: logs in $T" >&2

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# The back-end: "vhostd null|loopback" or "dpdk rxonly|io"; sets BE_PID.
start_be() {
	rm -f "$T/s.sock"
	if [[ $1 == vhostd ]]; then
		taskset -c 1 "$VHOSTD" --log-level warn --io-threads 1 \
			--net "id=n0,socket=$T/s.sock,backend=$2,queues=$QUEUES" 2>"$T/vhostd.log" &
	else
		(sleep $((SECS + 30)); echo quit) | dpdk-testpmd -l 0,1 --main-lcore 0 --no-huge -m 1024 \
			--file-prefix="vhd-net-be-$$" --no-pci \
			--vdev "net_vhost0,iface=$T/s.sock,queues=$QUEUES" -- -i --auto-start \
			--forward-mode="$2" --nb-cores=1 --rxq="$QUEUES" --txq="$QUEUES" \
			>"$T/be.log" 2>&1 &
	fi
	BE_PID=$!
	PIDS+=("$BE_PID")
	for ((i = 0; i < 100; i++)); do
		[[ -S $T/s.sock ]] && return 0
		sleep 0.1
	done
	echo "bench/net.sh: back-end $1 $2 did not start" >&2
	cat "$T/vhostd.log" "$T/be.log" 2>/dev/null >&2
	exit 1
}

# The front-end: MODE (txonly|io) SIZE -> packets per second.
run_fe() {
	local mode=$1 size=$2 start field a b
	start="start"
	[[ $mode == io ]] && start="start tx_first $TX_FIRST"
	field=TX-packets
	[[ $mode == io ]] && field=RX-packets
	(
		sleep 2
		echo "$start"
		sleep 2
		echo "show port stats 0"
		sleep "$SECS"
		echo "show port stats 0"
		echo stop
		sleep 0.5
		echo quit
	) | timeout $((SECS + 30)) dpdk-testpmd -l 0,1 --main-lcore 1 --no-huge -m 1024 \
		--file-prefix="vhd-net-fe-$$" --no-pci \
		--vdev "net_virtio_user0,path=$T/s.sock,queues=$QUEUES" -- -i \
		--forward-mode="$mode" --txpkts="$size" --nb-cores=1 \
		--rxq="$QUEUES" --txq="$QUEUES" >"$T/fe.log" 2>&1 || true
	read -r a b < <(awk -v f="$field:" '$0 ~ /NIC statistics for port 0/ { n++ }
		n && $1 == f { v[n] = $2 } END { print v[1] + 0, v[2] + 0 }' "$T/fe.log")
	echo $(((b - a) / SECS))
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A res
cases=("txonly 64 null rxonly" "txonly 1500 null rxonly" "io 64 loopback io")
for ((r = 1; r <= ROUNDS; r++)); do
	for c in "${cases[@]}"; do
		read -r mode size vmode dmode <<<"$c"
		for who in vhostd dpdk; do
			if [[ $who == vhostd ]]; then start_be vhostd "$vmode"; else start_be dpdk "$dmode"; fi
			pps=$(run_fe "$mode" "$size")
			stop_pid "$BE_PID"
			res["$c/$who"]+="$pps "
			echo "round $r: $mode ${size}B into $who: $pps pps" >&2
		done
	done
done

printf '\n%-28s %14s %14s %8s\n' "test ($QUEUES queue pair(s))" "vhostd pps" "DPDK vhost pps" "ratio"
for c in "${cases[@]}"; do
	read -r mode size vmode dmode <<<"$c"
	v=$(tr ' ' '\n' <<<"${res[$c/vhostd]}" | grep . | median)
	d=$(tr ' ' '\n' <<<"${res[$c/dpdk]}" | grep . | median)
	name="$mode ${size}B ($vmode / $dmode)"
	printf '%-28s %14s %14s %8s\n' "$name" "$v" "$d" \
		"$(awk -v v="$v" -v d="$d" 'BEGIN { if (d > 0) printf "%.2f", v / d; else print "-" }')"
done
