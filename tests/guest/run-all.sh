#!/usr/bin/env bash
# Run every real-guest case against one back-end.
#
#   BACKEND=qsd|vhostd tests/guest/run-all.sh [CASE...]
#
# Prints one line per run, "PASS name", "FAIL name" or "SKIP name", and
# timings at the end; exits 1 if any run failed. A case runs once per ring
# layout in RINGS: "split packed" for vhostd, "split" for qsd (it offers no
# packed ring, so packed=on would silently test split again). Packed runs
# are named CASE/packed. Each run's output and guest console are kept in
# .cache/guest/logs/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BACKEND=${BACKEND:-qsd}
if [[ $BACKEND == qsd ]]; then
	RINGS=${RINGS:-split}
else
	RINGS=${RINGS:-split packed}
fi
REPO=$(cd "$HERE/../.." && pwd)
LOG_DIR=${GUEST_LOG_DIR:-${VHOSTD_CACHE:-$REPO/.cache}/guest/logs}
export GUEST_LOG_DIR=$LOG_DIR

failed=0
timings=()

# run_case CASE RING: one driver run, reported on one line.
run_case() {
	local case=$1 ring=$2 name=$1 packed=0 out start rc=0 ms
	if [[ $ring == packed ]]; then
		name=$case/packed
		packed=1
	fi
	out=$LOG_DIR/${name//\//-}.out
	start=${EPOCHREALTIME/./}	# microseconds, no external clock tool
	PACKED=$packed CASE=$case "$HERE/cases/$case/run.sh" >"$out" 2>&1 || rc=$?
	ms=$(((${EPOCHREALTIME/./} - start) / 1000))
	timings+=("$(printf '%-22s %4d.%d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))")
	case $rc in
	0) echo "PASS $name" ;;
	77) echo "SKIP $name" ;;
	*)
		echo "FAIL $name"
		failed=1
		tail -n 20 "$out" | sed 's/^/    /'
		echo "    (full output: $out)"
		;;
	esac
}

main() {
	local cases=("$@") c ring
	if [[ ${#cases[@]} -eq 0 ]]; then
		for c in "$HERE"/cases/*/run.sh; do
			cases+=("$(basename "$(dirname "$c")")")
		done
	fi
	mkdir -p "$LOG_DIR"

	# Fetch the kernel and build the base image up front, so its one-off
	# cost does not land in the first case's time (or its timeout).
	if ! "$HERE/build-initramfs.sh" >"$LOG_DIR/setup.out" 2>&1; then
		echo "FAIL guest-setup"
		sed 's/^/    /' "$LOG_DIR/setup.out"
		exit 1
	fi

	for c in "${cases[@]}"; do
		[[ -x $HERE/cases/$c/run.sh ]] || { echo "FAIL $c (no such case)"; failed=1; continue; }
		for ring in $RINGS; do
			run_case "$c" "$ring"
		done
	done

	echo "guest tests ($BACKEND), seconds per run:"
	printf '  %s\n' "${timings[@]}"
	return "$failed"
}

main "$@"
