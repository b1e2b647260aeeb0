#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# net-dpdk.sh VHOSTD VHOSTCTL - DPDK 22.11's virtio-user PMD (a front-end
# nobody here wrote) against vhostd --net, two queue pairs, split and
# packed rings:
#   - backend=null, testpmd txonly: the packets testpmd says it sent on
#     each queue are the packets vhostd counted on that tx queue;
#   - backend=loopback, testpmd io forwarding between a net_pcap port and
#     the virtio-user port: every frame of the input pcaps goes out through
#     vhostd and comes back into the output pcaps, identical and in order,
#     and vhostd dropped nothing.
# testpmd runs without hugepages (--no-huge), on both cores, and is
# stopped with its own "quit"; everything is stopped by PID on exit.
set -u

VHOSTD=$1
VHOSTCTL=$2
HERE=$(cd "$(dirname "$0")" && pwd)

T=$(mktemp -d /tmp/vhd-net-dpdk.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$HERE/tap.sh"

command -v dpdk-testpmd >/dev/null || {
	echo "not ok - dpdk-testpmd missing: scripts/deps.sh installs dpdk-dev"
	exit 1
}

start_vhostd() { # backend
	rm -f "$T/s.sock" "$T/ctl.sock"
	"$VHOSTD" --net "id=n0,socket=$T/s.sock,backend=$1,queues=2" \
		--control "$T/ctl.sock" --io-threads 1 >"$T/vhostd.log" 2>&1 &
	DPID=$!
	wait_for_socket "$T/s.sock" 5 && wait_for_socket "$T/ctl.sock" 5
}

stop_vhostd() {
	kill "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}

# testpmd in interactive mode fed by a script: start, run $1 s, stop, quit.
# "start" waits for its prompt: on a loaded machine the set-up can take
# longer than the run, and a "stop" already in the pipe would follow it at once.
testpmd() { # seconds log args...
	local secs=$1 log=$2
	shift 2
	rm -f "$log"
	(
		for ((i = 0; i < 400; i++)); do
			grep -q 'testpmd> ' "$log" 2>/dev/null && break
			sleep 0.1
		done
		echo start
		sleep "$secs"
		echo stop
		sleep 1
		echo quit
	) | timeout 60 dpdk-testpmd -l 0,1 --main-lcore 1 --no-huge -m 1024 \
		--file-prefix="vhd-net-$$" --no-pci "$@" >"$log" 2>&1 &
	BPID=$!
	wait "$BPID"
	local rc=$?
	BPID=
	return $rc
}

# vhostd's packet count of queue $1 (rx0, tx0, ...).
vhd_packets() {
	"$VHOSTCTL" --control "$T/ctl.sock" stats n0 | awk -v q="$1" '$2 == q { print $4 }'
}

vhd_field() { # queue field-name
	"$VHOSTCTL" --control "$T/ctl.sock" stats n0 |
		awk -v q="$1" -v f="$2" '$2 == q { for (i = 3; i < NF; i++) if ($i == f) print $(i + 1) }'
}

# testpmd's TX-packets of the stream that transmits on port $1 queue $2.
pmd_tx() { # log port queue
	awk -v p="$2" -v q="$3" '
		/Forward Stats for RX Port=/ {
			split($0, a, "TX Port= *"); split(a[2], b, "/Queue= *")
			cur = (b[1] + 0 == p && b[2] + 0 == q)
		}
		cur && /TX-packets:/ { print $4; cur = 0 }' "$1"
}

for ring in split packed; do
	extra=
	[ "$ring" = packed ] && extra=",packed_vq=1"

	# --- null: txonly, per-queue counters agree --------------------------------
	if start_vhostd null; then
		testpmd 3 "$T/txonly-$ring.log" \
			--vdev "net_virtio_user0,path=$T/s.sock,queues=2$extra" \
			-- -i --forward-mode=txonly --nb-cores=1 --rxq=2 --txq=2
		for q in 0 1; do
			pmd=$(pmd_tx "$T/txonly-$ring.log" 0 $q)
			vhd=$(vhd_packets tx$q)
			if [ -n "$pmd" ] && [ "${pmd:-0}" -gt 0 ] && [ "$pmd" = "$vhd" ]; then
				ok "$ring null txonly queue $q: testpmd sent $pmd, vhostd counted $vhd"
			else
				not_ok "$ring null txonly queue $q: testpmd '$pmd', vhostd '$vhd'"
				tail -20 "$T/txonly-$ring.log"
			fi
		done
		stop_vhostd
	else
		not_ok "$ring: vhostd did not start"
		cat "$T/vhostd.log"
	fi

	# --- loopback: io forwarding through pcaps, nothing lost or changed -------
	rm -f "$T"/in*.pcap "$T"/out*.pcap
	python3 "$HERE/net/pcap.py" gen "$T/in0.pcap" 1 200
	python3 "$HERE/net/pcap.py" gen "$T/in1.pcap" 2 200
	if start_vhostd loopback; then
		testpmd 2 "$T/io-$ring.log" \
			--vdev "net_pcap0,rx_pcap=$T/in0.pcap,rx_pcap=$T/in1.pcap,tx_pcap=$T/out0.pcap,tx_pcap=$T/out1.pcap" \
			--vdev "net_virtio_user1,path=$T/s.sock,queues=2$extra" \
			-- -i --forward-mode=io --nb-cores=1 --rxq=2 --txq=2 --no-flush-rx
		for q in 0 1; do
			if python3 "$HERE/net/pcap.py" cmp "$T/in$q.pcap" "$T/out$q.pcap" >"$T/cmp" 2>&1; then
				ok "$ring loopback io queue $q: 200 frames back, identical"
			else
				not_ok "$ring loopback io queue $q: $(cat "$T/cmp")"
				tail -20 "$T/io-$ring.log"
			fi
			rx=$(vhd_packets rx$q)
			tx=$(vhd_packets tx$q)
			drops=$(vhd_field tx$q drop-backend)
			check "$ring loopback queue $q: vhostd tx $tx = rx $rx = 200, no drops ($drops)" \
				test "$tx" = 200 -a "$rx" = 200 -a "$drops" = 0
		done
		stop_vhostd
	else
		not_ok "$ring: vhostd did not start"
		cat "$T/vhostd.log"
	fi
done
exit $failed
