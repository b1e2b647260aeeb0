#!/usr/bin/env bash
# Bounded libFuzzer runs of the fuzz harnesses (tests/fuzz/), built with
# clang, ASan and UBSan (LeakSanitizer on):
#
#   scripts/fuzz.sh [SECONDS] [NAME]
#
# NAME (default virtq):
#   virtq      the device-side chain walker (fuzz_virtq_pop.c): after touching
#              src/virtq/device*.c or memmap.c
#   scsi       the SCSI CDB parser (fuzz_scsi_cdb.c): after touching scsi_disk.c
#   blk        the virtio-blk request parser on the null back-end
#              (fuzz_blk_req.c): after touching src/devices/blk.c
#   scsi-ctrl  virtio-scsi control-queue requests (TMF, AN) and request-queue
#              headers (fuzz_scsi_ctrl.c): after touching scsi.c or scsi_ctrl.c
#   vu         vhost-user message sequences with fake descriptors, guest
#              writes and shrinking memory (fuzz_vu_msgs.c): after touching
#              src/vhost-user/backend*.c
#   net        virtio-net's tx header check, control commands and receive
#              filter (fuzz_net.c): after touching net_proto.c
#   inflight   the in-flight region's recovery at ring start and the
#              tracking after it, crashed and recovered again (exactly once;
#              fuzz_inflight.c): after touching src/vhost-user/inflight.c
#   all        each of the above for SECONDS, one after the other
#
#   scripts/fuzz.sh 30 all	what `make test` runs, in shorter slices
#   scripts/fuzz.sh 3600 vu	an hour; do this before a release
#
# FUZZ_JOBS=N runs N libFuzzer processes in parallel (-fork=N); nice the
# whole thing on a shared machine (nice -n 19 scripts/fuzz.sh ...).
#
# Sets up build-fuzz/ (CC=clang, -Dfuzz=true) on first use.  Each corpus
# grows in build-fuzz/fuzz-corpus-NAME across runs, seeded from the
# repository's tests/fuzz/*corpus (regenerate the seeds with
# build/tests/fuzz_gen_corpus tests/fuzz/corpus and
# build/tests/fuzz_gen_dev_corpus blk|scsi|vu|inflight DIR).  A crash leaves its input
# in build-fuzz/fuzz-artifacts/; replay it with
#   build-fuzz/tests/fuzz_blk_req build-fuzz/fuzz-artifacts/crash-...
# or, without clang, build/tests/fuzz_blk_req_run -n 0 FILE.  A fixed crash
# goes into the seed corpus, so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
which=${2:-virtq}
dir=build-fuzz

# name: binary seeds max_len
harness() {
	case "$1" in
	virtq)	   echo "fuzz_virtq_pop tests/fuzz/corpus 12304" ;;
	scsi)	   echo "fuzz_scsi_cdb tests/fuzz/scsi-corpus 8192" ;;
	blk)	   echo "fuzz_blk_req tests/fuzz/blk-corpus 8192" ;;
	scsi-ctrl) echo "fuzz_scsi_ctrl tests/fuzz/scsi-ctrl-corpus 8192" ;;
	vu)	   echo "fuzz_vu_msgs tests/fuzz/vu-corpus 8192" ;;
	net)	   echo "fuzz_net tests/fuzz/net-corpus 4096" ;;
	inflight)  echo "fuzz_inflight tests/fuzz/inflight-corpus 10700" ;;
	*) echo "scripts/fuzz.sh: unknown harness '$1' (virtq, scsi, blk, scsi-ctrl, vu, net, inflight, all)" >&2
	   exit 2 ;;
	esac
}

if [ "$which" = all ]; then
	names="virtq scsi blk scsi-ctrl vu net inflight"
else
	names=$which
	harness "$which" >/dev/null
fi

if [ ! -f "$dir/build.ninja" ]; then
	# fuzzer-no-link: coverage for the library too, not just the harness.
	CC=clang CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" \
		meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dwerror=false >/dev/null
fi

status=0
for name in $names; do
	read -r bin seeds max_len <<<"$(harness "$name")"
	ninja -C "$dir" "tests/$bin" >/dev/null
	# The old name of the chain walker's corpus is kept.
	corpus=$dir/fuzz-corpus-$name
	[ "$name" = virtq ] && corpus=$dir/fuzz-corpus
	[ "$name" = scsi ] && corpus=$dir/fuzz-scsi-corpus
	[ "$name" = net ] && corpus=$dir/fuzz-net-corpus
	mkdir -p "$corpus" "$dir/fuzz-artifacts"
	fork=()
	[ -n "${FUZZ_JOBS:-}" ] && fork=(-fork="$FUZZ_JOBS" -ignore_crashes=0)
	echo "--- fuzz $name for ${secs}s ($bin)"
	# -close_fd_mask=2: the models log one line per refused request; crash
	# reports still reach the terminal.
	if ! "$dir/tests/$bin" -max_total_time="$secs" -timeout=10 -max_len="$max_len" \
		-close_fd_mask=2 -print_final_stats=1 "${fork[@]}" \
		-artifact_prefix="$dir/fuzz-artifacts/" "$corpus" "$seeds"; then
		echo "FAIL: fuzz $name (see $dir/fuzz-artifacts/)"
		status=1
	fi
done
exit $status
