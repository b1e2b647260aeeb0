#!/usr/bin/env bash
# Bounded libFuzzer run of the device-side chain walker
# (tests/fuzz/fuzz_virtq_pop.c) or of the SCSI CDB parser
# (tests/fuzz/fuzz_scsi_cdb.c), built with clang, ASan and UBSan.
#
#   scripts/fuzz.sh [SECONDS]	default 30: what `make test` runs
#   scripts/fuzz.sh 3600		an hour: do this after touching src/virtq/device*.c
#				or memmap.c, and before a release
#   scripts/fuzz.sh SECONDS scsi	the CDB parser (after touching scsi_disk.c), corpus
#				in build-fuzz/fuzz-scsi-corpus, seeds tests/fuzz/scsi-corpus
#   scripts/fuzz.sh SECONDS net	virtio-net's tx header check, control commands and
#				receive filter (after touching net_proto.c), corpus in
#				build-fuzz/fuzz-net-corpus, seeds tests/fuzz/net-corpus
#
# Sets up build-fuzz/ (CC=clang, -Dfuzz=true) on first use.  The corpus
# grows in build-fuzz/fuzz-corpus across runs, seeded from tests/fuzz/corpus
# (regenerate those seeds with build/tests/fuzz_gen_corpus tests/fuzz/corpus).
# A crash leaves its input in build-fuzz/fuzz-artifacts/; replay it with
#   build-fuzz/tests/fuzz_virtq_pop build-fuzz/fuzz-artifacts/crash-...
# or, without clang, build/tests/fuzz_virtq_pop_run -n 0 FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
which=${2:-virtq}
dir=build-fuzz

if [ ! -f "$dir/build.ninja" ]; then
	# fuzzer-no-link: coverage for the library too, not just the harness.
	CC=clang CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" \
		meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dwerror=false >/dev/null
fi
if [ "$which" = scsi ]; then
	ninja -C "$dir" tests/fuzz_scsi_cdb >/dev/null
	mkdir -p "$dir/fuzz-scsi-corpus" "$dir/fuzz-artifacts"
	exec "$dir/tests/fuzz_scsi_cdb" -max_total_time="$secs" -timeout=10 -max_len=8192 \
		-print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/" \
		"$dir/fuzz-scsi-corpus" tests/fuzz/scsi-corpus
fi
if [ "$which" = net ]; then
	ninja -C "$dir" tests/fuzz_net >/dev/null
	mkdir -p "$dir/fuzz-net-corpus" "$dir/fuzz-artifacts"
	exec "$dir/tests/fuzz_net" -max_total_time="$secs" -timeout=10 -max_len=4096 \
		-print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/" \
		"$dir/fuzz-net-corpus" tests/fuzz/net-corpus
fi
ninja -C "$dir" tests/fuzz_virtq_pop >/dev/null

mkdir -p "$dir/fuzz-corpus" "$dir/fuzz-artifacts"
# -close_fd_mask=2: the walker logs one line per refused ring; crash
# reports still reach the terminal.
"$dir/tests/fuzz_virtq_pop" -max_total_time="$secs" -timeout=10 -max_len=12304 \
	-close_fd_mask=2 -print_final_stats=1 \
	-artifact_prefix="$dir/fuzz-artifacts/" "$dir/fuzz-corpus" tests/fuzz/corpus
