#!/usr/bin/env bash
# Install every Debian package the build, the tests and `make run` need.
# Idempotent and quiet: does nothing when all are present.
set -euo pipefail

PACKAGES=(
	# build
	gcc clang meson ninja-build pkg-config liburing-dev libjson-c-dev libmicrohttpd-dev
	libsystemd-dev
	# sanitizer and fuzzer runtimes for clang
	libclang-rt-dev
	# real-guest tests and make run
	qemu-system-x86 qemu-utils busybox-static cpio kmod xz-utils zstd
	e2fsprogs util-linux fio sg3-utils python3
	# backend=rbd (librbd) and its tests' one-node Ceph cluster; qemu's rbd
	# driver for bench/rbd.sh
	librbd-dev librados-dev ceph-mon ceph-mgr ceph-osd ceph-common uuid-runtime
	qemu-block-extra
	# promtool checks the metrics exposition (tests/daemon/metrics.sh);
	# systemd-analyze verifies the unit (tests/daemon/systemd.sh)
	prometheus systemd
	# the NBD back-end (libnbd) and the NBD servers its tests start
	libnbd-dev nbdkit
	# virtio-net: DPDK's testpmd as a foreign front-end, guest network tools
	dpdk-dev iproute2 iperf3 ethtool iputils-ping tcpdump
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
