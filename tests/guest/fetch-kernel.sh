#!/usr/bin/env bash
# Fetch a Debian cloud kernel for the guest tests and unpack it into the cache.
#
# Output (under ${VHOSTD_CACHE:-$REPO/.cache}/guest/):
#   vmlinuz               the kernel image QEMU boots with -kernel
#   kver                  the kernel release string (e.g. 6.1.0-56-cloud-amd64)
#   root/lib/modules/VER  the module tree, used by build-initramfs.sh
#
# Idempotent: once vmlinuz and the module tree exist nothing is downloaded.
# The cloud flavour is used because it is small and has every virtio driver as
# a module (see shared/PEERS.md). Quiet on success; errors go to stderr.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GUEST_CACHE=${VHOSTD_CACHE:-$REPO/.cache}/guest

die() { echo "fetch-kernel: $*" >&2; exit 1; }

# The meta package only depends on the versioned image package; resolving it at
# run time follows Debian's point releases without editing this script.
image_pkg_of_meta() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

resolve_image_pkg() {
	local pkg
	pkg=$(image_pkg_of_meta)
	if [[ -z $pkg ]]; then
		# apt-cache knows nothing until the lists have been fetched once.
		apt-get update -qq >/dev/null || die "apt-get update failed"
		pkg=$(image_pkg_of_meta)
	fi
	[[ -n $pkg ]] || die "cannot resolve linux-image-cloud-amd64"
	echo "$pkg"
}

already_fetched() {
	[[ -s $GUEST_CACHE/vmlinuz && -s $GUEST_CACHE/kver ]] &&
		[[ -s $GUEST_CACHE/root/lib/modules/$(cat "$GUEST_CACHE/kver")/modules.dep ]]
}

tmp=
main() {
	already_fetched && return 0
	mkdir -p "$GUEST_CACHE"
	# Concurrent first runs: one fetches, the others wait and find it done.
	exec 9>"$GUEST_CACHE/.fetch.lock"
	flock 9
	already_fetched && return 0

	local pkg kver deb
	pkg=$(resolve_image_pkg)
	kver=${pkg#linux-image-}

	rm -rf "$GUEST_CACHE"/fetch.*	# leftovers of an interrupted run
	tmp=$(mktemp -d "$GUEST_CACHE/fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT	# global: the trap runs after main returns

	# apt-get download writes into the current directory. The _apt sandbox
	# user may not be able to write there, hence the explicit option.
	(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null) ||
		die "apt-get download $pkg failed"
	deb=$(ls "$tmp"/*.deb)
	dpkg -x "$deb" "$tmp/root"

	[[ -f $tmp/root/boot/vmlinuz-$kver ]] || die "no vmlinuz-$kver in $deb"
	[[ -d $tmp/root/lib/modules/$kver ]] || die "no modules for $kver in $deb"

	# The .deb ships no modules.dep (postinst runs depmod on a real install);
	# build-initramfs.sh resolves module dependencies from it.
	depmod -b "$tmp/root" "$kver" || die "depmod failed"

	# Replace the previous kernel only once the new one is complete, so an
	# interrupted run never leaves a half-unpacked tree behind.
	rm -rf "$GUEST_CACHE/root"
	mv "$tmp/root" "$GUEST_CACHE/root"
	cp "$GUEST_CACHE/root/boot/vmlinuz-$kver" "$GUEST_CACHE/vmlinuz"
	echo "$kver" >"$GUEST_CACHE/kver"
}

main "$@"
