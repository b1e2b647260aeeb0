# shellcheck shell=bash
# procs.sh - the benchmark scripts' clean-up: every process they start is
# added to PIDS, and on exit (normal, Ctrl-C or SIGTERM) each gets SIGTERM,
# then SIGKILL if it is still running 5 s later, and the paths in
# CLEANUP_PATHS are removed.  Source it, then append to PIDS and
# CLEANUP_PATHS.
PIDS=()
CLEANUP_PATHS=()

# A child that has exited but was not yet waited for (a zombie) is not running.
# shellcheck disable=SC2317 # run by traps
running() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${st:0:1}" != Z ]
}

# shellcheck disable=SC2317 # run by traps
cleanup() {
	local pid i left
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	# qemu-storage-daemon can hang in its shutdown when a client vanished
	# with requests in flight (Ctrl-C): SIGKILL whatever is left after 5 s.
	for ((i = 0; i < 50; i++)); do
		left=0
		for pid in "${PIDS[@]}"; do
			running "$pid" && left=1
		done
		((left)) || break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do
		running "$pid" && kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
	done
	[ ${#CLEANUP_PATHS[@]} -eq 0 ] || rm -rf "${CLEANUP_PATHS[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
