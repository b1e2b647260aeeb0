#!/usr/bin/env bash
# Long runs that do not fit in `make test`: the ring's two-sided stress at
# many times its test size, every fuzz harness for longer, and the
# real-guest fio case over and over.  Stops by itself; exits non-zero on the
# first failure.
#
#   bench/soak-stress.sh [MINUTES]   default 30, split about evenly over the three
#   (or bench/soak.sh --stress [MINUTES]; bench/soak.sh itself is the
#   kill/reconnect/migrate soak of issue 9)
#
# `make test` runs a bounded slice of each (1M requests per ring
# configuration, ~105 s of fuzzing, one fio run per ring layout).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
slice=$((minutes * 60 / 3))
deadline() { echo $(($(date +%s) + $1)); }

ninja -C build >/dev/null

echo "== ring stress, random seeds, until $slice s have passed =="
end=$(deadline "$slice")
rounds=0
while (($(date +%s) < end)); do
	for layout in "" --packed; do
		for evidx in "" --event-idx; do
			for transport in "" --processes; do
				seed=$RANDOM$RANDOM
				# shellcheck disable=SC2086 # empty flags vanish on purpose
				VHOSTD_TEST_SEED=$seed build/tests/ring_stress $layout $evidx \
					$transport --indirect --requests 5000000 >/dev/null ||
					{ echo "ring_stress failed: seed $seed $layout $evidx $transport"; exit 1; }
			done
		done
	done
	rounds=$((rounds + 1))
done
echo "ring stress: $rounds rounds of 8 configurations x 5M requests, no failure"

echo "== fuzzing every harness, $slice s in all =="
scripts/fuzz.sh "$(( (slice + 6) / 7 ))" all

echo "== real-guest fio, repeated for $slice s =="
end=$(deadline "$slice")
runs=0
while (($(date +%s) < end)); do
	BACKEND=vhostd tests/guest/run-all.sh blk-fio
	runs=$((runs + 1))
done
echo "guest fio: $runs rounds (split and packed), no failure"
