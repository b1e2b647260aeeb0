# shellcheck shell=sh
# net-macvtap, guest side: eth0 on a macvtap (bridge mode) through vhostd,
# with the address in /data/ip; the sibling guest is at /data/peer.  Ping
# the sibling until it answers, say READY, then wait for the host's pings
# (which reach us only through the macvlan workaround, see run.sh).
ME=$(cat /data/ip)
PEER=$(cat /data/peer)

icmp_in_echos() {
	awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i; h = 1 } else print $c }' /proc/net/snmp
}

i=0
while [ ! -e /sys/class/net/eth0 ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "no eth0"
	sleep 0.1
done
ip link set lo up
ip addr add "$ME/24" dev eth0
ip link set eth0 up

# The sibling boots at about the same time: give it a minute.
i=0
until ping -c 1 -W 1 "$PEER" >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 60 ] || fail "the sibling guest $PEER never answered"
done
ping -c 3 -i 0.2 "$PEER" >/dev/null || fail "ping $PEER"
log "sibling $PEER reached through the macvtap bridge"
base=$(icmp_in_echos)
report STEP ready
i=0
while [ "$(icmp_in_echos)" -lt $((base + 5)) ]; do
	i=$((i + 1))
	[ "$i" -le 600 ] || fail "the host's pings never came"
	sleep 0.1
done
# Let the host's last replies go out before powering off.
sleep 2
log "host reached us"
