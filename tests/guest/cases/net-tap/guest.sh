# shellcheck shell=sh
# net-tap, guest side: eth0 on vhostd's virtio-net with two queue pairs,
# the host at 10.0.0.1 behind the tap.  Lines "REPORT STEP name" tell the
# host driver (run.sh) to do its half; the guest waits for the host's
# pings by watching its own ICMP counters.

HOST=10.0.0.1

icmp_in_echos() {
	awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp
}

# Wait until at least $1 echo requests have come in (the host's pings).
wait_echos() {
	i=0
	while [ "$(icmp_in_echos)" -lt "$1" ]; do
		i=$((i + 1))
		[ "$i" -le 300 ] || fail "the host's pings did not arrive ($(icmp_in_echos) of $1)"
		sleep 0.1
	done
}

i=0
while [ ! -e /sys/class/net/eth0 ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "no eth0"
	sleep 0.1
done
[ "$(basename "$(readlink /sys/class/net/eth0/device/driver)")" = virtio_net ] ||
	fail "eth0 is not virtio_net"
feat=$(cat /sys/class/net/eth0/device/features)
report FEATURES "$feat"
# MRG_RXBUF (15), CSUM (0), HOST_TSO4 (11), GUEST_TSO4 (7), MQ (22)
for b in 0 7 11 15 22; do
	[ "$(echo "$feat" | cut -c$((b + 1)))" = 1 ] || fail "feature bit $b not negotiated"
done

ip link set lo up
ip addr add 10.0.0.2/24 dev eth0
ip link set eth0 up
ethtool -L eth0 combined 2 || fail "ethtool -L eth0 combined 2"
ethtool -l eth0 | grep -A4 'Current' | grep -q 'Combined:.*2' || fail "not 2 combined channels"
ethtool -k eth0 | grep -E '^(tx-checksumming|tcp-segmentation-offload|generic-receive-offload):'

# Until the link answers (the host's neighbour entry, STP-free tap).
i=0
until ping -c 1 -W 1 $HOST >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 30 ] || fail "no answer from $HOST"
done
ping -c 3 -i 0.2 $HOST >/dev/null || fail "ping $HOST"
log "ping guest -> host ok"
# 8000-byte payloads: IP fragments at MTU 1500.
ping -c 3 -i 0.2 -s 8000 $HOST >/dev/null || fail "ping -s 8000 $HOST"
log "ping -s 8000 ok"

# The host pings us (3 echoes).
base=$(icmp_in_echos)
report STEP host-ping
wait_echos $((base + 3))
log "host -> guest ping ok"

# TCP both ways, 4 streams so both queue pairs carry flows.
iperf3 -c $HOST -t 2 -P 4 -f m | tail -n 4 || fail "iperf3 guest -> host"
iperf3 -c $HOST -t 2 -P 4 -f m -R | tail -n 4 || fail "iperf3 host -> guest"
for q in 0 1; do
	tx=$(ethtool -S eth0 | awk -v k="tx_queue_${q}_packets:" '$1 == k { print $2 }')
	rx=$(ethtool -S eth0 | awk -v k="rx_queue_${q}_packets:" '$1 == k { print $2 }')
	report QUEUE "$q $rx $tx"
	[ "${tx:-0}" -gt 0 ] && [ "${rx:-0}" -gt 0 ] || fail "queue pair $q idle: rx $rx tx $tx"
done

# Jumbo frames: MTU 9000 on both ends, unfragmented 9000-byte IP packets.
ip link set eth0 mtu 9000 || fail "mtu 9000"
report STEP mtu-9000
i=0
until ping -c 1 -W 1 -M do -s 8972 $HOST >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 20 ] || fail "ping -M do -s 8972 (jumbo) $HOST"
done
ping -c 3 -i 0.2 -M do -s 8972 $HOST >/dev/null || fail "jumbo ping"
log "jumbo ping ok"

# A new MAC address (CTRL_MAC_ADDR): the host must reach us at it.
ip link set eth0 address 02:00:00:00:aa:02 || fail "ip link set eth0 address"
base=$(icmp_in_echos)
report STEP mac-changed
wait_echos $((base + 3))
log "reached at the new MAC"

# Promiscuous mode: the flag reaches the device model (QEMU's, see README).
ip link set eth0 promisc on
ip link show eth0 | grep -q PROMISC || fail "promisc flag not set"
ip link set eth0 promisc off
report DONE 1
