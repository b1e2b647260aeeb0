# shellcheck shell=sh
# net-reconnect, guest side: eth0 on vhostd's virtio-net, the host at
# 10.0.0.1 behind the tap. Once the link answers, a stream of pings with a
# fixed payload pattern runs in the background (iputils ping compares every
# echo's payload with what it sent and prints "wrong data byte" otherwise)
# and the guest fetches a random blob from the host's server over and
# over, checking its sha256 each time. The host kills and restarts vhostd
# meanwhile; a fetch that times out during an outage is retried, a fetch
# that completes with other bytes is a failure. When the host's /state says
# "done", three more good fetches end the test.
HOST=10.0.0.1
PORT=$(cat /data/port)	# the blob; the state on PORT + 1
WANT=$(cut -d' ' -f1 /data/blob.sha256)
SIZE=$(cut -d' ' -f2 /data/blob.sha256)
PATTERN=a55a0ff0c33c

i=0
while [ ! -e /sys/class/net/eth0 ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "no eth0"
	sleep 0.1
done
ip link set lo up
ip addr add 10.0.0.2/24 dev eth0
ip link set eth0 up
i=0
until ping -c 1 -W 1 $HOST >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 30 ] || fail "no answer from $HOST"
done
log "link up"

# The binary itself, not the guest-tools function: a function in the
# background is a subshell, which would take the SIGINT below instead.
/usr/bin/ping -i 0.2 -s 1000 -p $PATTERN $HOST >/tmp/ping.out 2>&1 &
PING=$!
report STEP ready

good=0 bad=0 after=0 t0=$(uptime_s)
while [ "$after" -lt 3 ]; do
	state=$(timeout 5 nc -w 3 $HOST $((PORT + 1)) </dev/null 2>/dev/null) || state=
	rm -f /tmp/blob
	timeout 20 nc -w 3 $HOST "$PORT" </dev/null >/tmp/blob 2>/dev/null || true
	# A transfer cut short by a timeout is a lost one; a whole one with
	# other bytes is a corrupted one.
	if [ "$(wc -c </tmp/blob)" -eq "$SIZE" ]; then
		sum=$(sha256sum /tmp/blob | cut -d' ' -f1)
		[ "$sum" = "$WANT" ] || fail "fetch $good: the blob has sha256 $sum, not $WANT"
		good=$((good + 1))
		[ "$state" != "done" ] || after=$((after + 1))
	else
		bad=$((bad + 1))
		log "a fetch failed (outage?), $good good so far"
	fi
	awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { exit !(b - a < 150) }' ||
		fail "no end after 150 s: state '$state', $good good fetches, $bad failed"
done
log "$good good fetches, $bad failed ones"
report FETCHES "$good $bad"

kill -INT $PING
wait $PING || true
if grep -q 'wrong data byte' /tmp/ping.out; then
	grep 'wrong data byte' /tmp/ping.out | head -n 3
	fail "an echo reply came back with a corrupted payload"
fi
report PING "$(grep 'packets transmitted' /tmp/ping.out)"
grep -q 'packets transmitted' /tmp/ping.out || fail "ping printed no summary"
report DONE 1
