#!/usr/bin/env bash
# Boot the test guest against an already running vhost-user-blk back-end.
#
#   run-guest.sh [options] SOCK TEST.sh
#     --packed        offer packed=on and require the guest to negotiate it
#     --queues N      virtqueues (default 2)
#     --data DIR      copied into the guest as /data
#     --log FILE      console log (default .cache/guest/logs/<test>.log)
#     --timeout SEC   kill QEMU after SEC seconds (default 300)
#     --verbose       also print the console
#
# Exits 0 only if the guest printed "GUEST-RESULT: PASS". The case drivers in
# cases/*/run.sh also start the back-end; this is the piece to use by hand,
# e.g. against a vhostd started in a debugger.
set -euo pipefail

usage() { sed -n '3,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }

data=
while [[ $# -gt 0 ]]; do
	case $1 in
	--packed) export PACKED=1 ;;
	--queues) export NUM_QUEUES=$2; shift ;;
	--data) data=$2; shift ;;
	--log) export GUEST_LOG=$2; shift ;;
	--timeout) export GUEST_TIMEOUT=$2; shift ;;
	--verbose) export GUEST_VERBOSE=1 ;;
	-h | --help) usage ;;
	--*) usage ;;
	*) break ;;
	esac
	shift
done
[[ $# -eq 2 ]] || usage
sock=$1 test=$2
[[ -S $sock ]] || { echo "run-guest: $sock is not a socket" >&2; exit 2; }

CASE=$(basename "$test" .sh)	# read by lib.sh: names the log
export CASE
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

guest_workdir
blk_device "$sock"
boot_guest "$test" "$data"
