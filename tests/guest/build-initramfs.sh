#!/usr/bin/env bash
# Build the initramfs for the guest tests.
#
#   build-initramfs.sh                          ensure the cached base image,
#                                               print its path
#   build-initramfs.sh -o OUT TEST.sh [DATA]    OUT = base + a small payload
#                                               archive holding TEST.sh as
#                                               /test.sh and DATA/ as /data
#
# The base image (busybox-static, the virtio modules, the guest tools with
# their shared libraries, /init) is expensive to build and the same for every
# test, so it is cached and rebuilt only when its inputs change. The payload
# is a second cpio archive appended to it: the kernel unpacks concatenated
# archives in order, later files landing on top of earlier ones.
#
# Environment:
#   VHOSTD_CACHE          cache root (default: $REPO/.cache)
#   INITRAMFS_COMPRESS    compressor for the base image: none (default), gzip
#                         or zstd; see the note at compress()
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GUEST_CACHE=${VHOSTD_CACHE:-$REPO/.cache}/guest
COMPRESS=${INITRAMFS_COMPRESS:-none}

# Modules wanted in the guest, in load order; their dependencies are added
# in front of them. virtio_pci before the device drivers, as in PEERS.md.
# ext4 is usually built in (then modprobe reports it as builtin).
WANT_MODULES=(virtio_pci virtio_blk sd_mod sg virtio_scsi virtio_net ext4)

# Host programs copied into the guest with the libraries ldd reports.
# coreutils dd rather than busybox dd: it aligns its buffer for O_DIRECT and
# prints transfer rates. fio pulls in ~80 MB of libraries (rbd, gluster, ...)
# because Debian links every engine in; see compress() for the cost.
# ip, ping, ethtool and iperf3 are the real ones for the virtio-net cases
# (busybox's ip and ping lack what they check: ethtool -L, ping -M do).
REQUIRED_TOOLS=(dd mke2fs e2fsck blkdiscard fstrim lsblk fio ip ping ethtool iperf3)
# Nice to have; skipped with a note when not installed.
OPTIONAL_TOOLS=(sg_inq sg_readcap sg_turs sg_raw sg_reset)

die() { echo "build-initramfs: $*" >&2; exit 1; }
note() { echo "build-initramfs: $*" >&2; }

tmp=
cleanup() { [[ -z $tmp ]] || rm -rf "$tmp"; }
trap cleanup EXIT

# Why uncompressed by default: the kernel decompresses the image inside the
# TCG guest, where it runs at a fraction of native speed, while a plain cpio
# costs a memcpy. With ~90 MB of tools (fio's libraries) the boot to /init
# took about 3.1 s uncompressed against 4.0 s gzip and 3.9 s zstd. (lz4 is
# not offered: the kernel reads only its legacy frame, which has no end
# marker, so the appended payload would be decoded as part of it.)
compress() {
	case $COMPRESS in
	gzip) gzip -1 -n ;;
	zstd) zstd -q -3 ;;
	none) cat ;;
	*) die "unknown INITRAMFS_COMPRESS=$COMPRESS" ;;
	esac
}

# Write the contents of directory $1 as a newc cpio archive to stdout.
# Sorted names and uid/gid 0 keep the archive reproducible.
cpio_of() {
	(cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet)
}

# Copy a file to the same absolute path under the root, replacing any busybox
# applet link that is already there (cp would follow the link and overwrite
# busybox itself).
install_file() {
	local src=$1 root=$2 dst=$2$1
	mkdir -p "$(dirname "$dst")"
	rm -f "$dst"
	cp -L "$src" "$dst"
}

# Absolute paths of the shared objects a dynamic executable needs, including
# the dynamic loader. Prints nothing for static executables.
shared_libs() {
	ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }' || true
}

# Install a host program at its own path, plus its libraries. A busybox
# applet of the same name is removed from every bin directory so the real
# program is the only one on PATH.
install_tool() {
	local name=$1 root=$2 path lib d
	path=$(PATH=$PATH:/usr/sbin:/sbin command -v "$name") || return 1
	for d in bin sbin usr/bin usr/sbin; do
		if [[ -L $root/$d/$name ]]; then rm -f "$root/$d/$name"; fi
	done
	install_file "$path" "$root"
	while read -r lib; do
		[[ -e $root$lib ]] || install_file "$lib" "$root"
	done < <(shared_libs "$path")
}

install_busybox() {
	local root=$1 applet
	# ldd fails on a static executable; the dynamic busybox package would
	# need its libraries copied too.
	! ldd /bin/busybox >/dev/null 2>&1 ||
		die "/bin/busybox is not static: install busybox-static"
	install_file /bin/busybox "$root"
	while read -r applet; do
		mkdir -p "$root/$(dirname "$applet")"
		[[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
	done < <(/bin/busybox --list-full)
}

# Debian's busybox ash runs its own applet for a bare command name even when
# PATH has a real program of that name (FEATURE_SH_STANDALONE). Shell
# functions win over applets, so every copied tool that busybox also
# provides gets a function calling it by path; guest-lib.sh sources them.
# A tool started by another program (xargs, taskset) still needs its path.
write_tool_functions() {
	local root=$1 t path
	: >"$root/etc/guest-tools.sh"
	for t in "${REQUIRED_TOOLS[@]}" "${OPTIONAL_TOOLS[@]}" mkfs.ext4 fsck.ext4; do
		/bin/busybox --list | grep -qx -- "$t" || continue
		for path in /usr/sbin/$t /usr/bin/$t; do
			if [[ -e $root$path && $(readlink "$root$path") != /bin/busybox ]]; then
				echo "$t() { $path \"\$@\"; }" >>"$root/etc/guest-tools.sh"
				break
			fi
		done
	done
}

# Print the module files (relative to lib/modules) that WANT_MODULES need,
# dependencies first, each once. modprobe reads modules.dep and softdeps
# from the unpacked kernel tree, so nothing is hard-coded here.
resolve_modules() {
	local kroot=$1 kver=$2 m
	for m in "${WANT_MODULES[@]}"; do
		modprobe -d "$kroot" -S "$kver" --show-depends "$m" ||
			die "module $m not found for $kver"
	done | awk -v pre="$kroot/lib/modules/" '
		$1 == "insmod" { p = $2; sub("^" pre, "", p); if (!seen[p]++) print p }'
}

# Copy the modules into the image, decompressed: busybox insmod reads plain
# .ko files only. Writes the load order to etc/guest-modules.
install_modules() {
	local root=$1 kroot=$2 kver=$3 rel src ko
	mkdir -p "$root/etc"
	: >"$root/etc/guest-modules"
	while read -r rel; do
		src=$kroot/lib/modules/$rel
		ko=${rel%.ko*}.ko
		mkdir -p "$(dirname "$root/lib/modules/$ko")"
		case $rel in
		*.ko) cat "$src" ;;
		*.ko.xz) xz -dc "$src" ;;
		*.ko.zst) zstd -qdc "$src" ;;
		*.ko.gz) gzip -dc "$src" ;;
		*) die "unexpected module file $rel" ;;
		esac >"$root/lib/modules/$ko"
		echo "$ko" >>"$root/etc/guest-modules"
	done < <(resolve_modules "$kroot" "$kver")
}

# Everything the base image depends on, hashed: a change to any of them
# (a new kernel, an upgraded tool, an edit to /init) rebuilds the image.
base_stamp() {
	local t
	{
		cat "${BASH_SOURCE[0]}" "$HERE/initramfs/init" "$HERE/initramfs/guest-lib.sh"
		cat "$GUEST_CACHE/kver"
		echo "$COMPRESS"
		for t in busybox "${REQUIRED_TOOLS[@]}" "${OPTIONAL_TOOLS[@]}"; do
			t=$(PATH=$PATH:/usr/sbin:/sbin command -v "$t") && stat -L -c '%n %s %Y' "$t"
		done
	} | sha256sum | cut -d' ' -f1
}

build_base() {
	local out=$1 kver kroot root t
	kver=$(cat "$GUEST_CACHE/kver")
	kroot=$GUEST_CACHE/root
	root=$tmp/base
	mkdir -p "$root"/{dev,proc,sys,tmp,mnt,root,data,etc}

	install_busybox "$root"
	for t in "${REQUIRED_TOOLS[@]}"; do
		install_tool "$t" "$root" || die "required tool $t is not installed"
	done
	for t in "${OPTIONAL_TOOLS[@]}"; do
		install_tool "$t" "$root" || note "optional tool $t not installed, skipped"
	done
	ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
	ln -sf e2fsck "$root/usr/sbin/fsck.ext4"
	[[ ! -f /etc/mke2fs.conf ]] || install_file /etc/mke2fs.conf "$root"
	install_modules "$root" "$kroot" "$kver"

	write_tool_functions "$root"
	install -m 0755 "$HERE/initramfs/init" "$root/init"
	install -m 0644 "$HERE/initramfs/guest-lib.sh" "$root/lib/guest-lib.sh"
	# The kernel opens /dev/console before /init runs, so it must exist in
	# the archive itself (devtmpfs is mounted only later, by /init).
	mknod -m 600 "$root/dev/console" c 5 1

	cpio_of "$root" | compress >"$out.new"
	mv "$out.new" "$out"
}

ensure_base() {
	"$HERE/fetch-kernel.sh"
	local base=$GUEST_CACHE/base.cpio stamp
	# Two test runs starting at once must not build the image together.
	exec 9>"$GUEST_CACHE/.build.lock"
	flock 9
	case $COMPRESS in
	gzip) base=$base.gz ;;
	zstd) base=$base.zst ;;
	esac
	stamp=$(base_stamp)
	if [[ ! -s $base || $(cat "$base.stamp" 2>/dev/null) != "$stamp" ]]; then
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/initramfs.XXXXXX")
		build_base "$base"
		echo "$stamp" >"$base.stamp"
		rm -rf "$tmp"
		tmp=
	fi
	exec 9>&-
	BASE=$base
}

# The payload is tiny, so it is always gzip: decompressing it costs nothing.
build_payload() {
	local out=$1 test=$2 data=${3:-} root
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/payload.XXXXXX")
	root=$tmp/root
	mkdir -p "$root/data"
	install -m 0755 "$test" "$root/test.sh"
	[[ -z $data ]] || cp -a "$data/." "$root/data/"
	{ cat "$BASE"; cpio_of "$root" | gzip -1 -n; } >"$out"
}

main() {
	local out=
	while getopts o: opt; do
		case $opt in
		o) out=$OPTARG ;;
		*) die "usage: $0 [-o OUT TEST.sh [DATA_DIR]]" ;;
		esac
	done
	shift $((OPTIND - 1))

	ensure_base
	if [[ -z $out ]]; then
		echo "$BASE"
		return
	fi
	[[ $# -ge 1 && -f $1 ]] || die "usage: $0 -o OUT TEST.sh [DATA_DIR]"
	[[ $# -lt 2 || -d $2 ]] || die "$2 is not a directory"
	build_payload "$out" "$@"
}

main "$@"
