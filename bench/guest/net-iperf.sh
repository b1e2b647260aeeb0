# shellcheck shell=sh
# bench/net-guest.sh's guest side: eth0 at 10.0.0.2 with two channels,
# iperf3 TCP to and from the host (10.0.0.1), two streams, eight seconds
# each way; one "REPORT IPERF direction Mbit/s" line each.
i=0
while [ ! -e /sys/class/net/eth0 ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "no eth0"
	sleep 0.1
done
ip link set lo up
ip addr add 10.0.0.2/24 dev eth0
ip link set eth0 up
ethtool -L eth0 combined 2 2>/dev/null || true
i=0
until ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 30 ] || fail "no answer from the host"
done
for dir in tx rx; do
	flag=
	[ $dir = rx ] && flag=-R
	iperf3 -c 10.0.0.1 -t 8 -O 1 -P 2 -f m $flag >/tmp/iperf.out 2>&1 || {
		cat /tmp/iperf.out
		fail "iperf3 $dir"
	}
	report IPERF "$dir $(awk '/SUM/ && /receiver/ { print $6 }' /tmp/iperf.out)"
done
