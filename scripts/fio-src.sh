#!/usr/bin/env bash
# fio-src.sh [DIR] - the fio source matching Debian's fio (3.33-3),
# configured as Debian configures it, for building our external ioengine
# (tools/fio/): Debian ships no fio headers.  Downloaded once with apt-get
# source through a private apt configuration (nothing on the system
# changes), checked against the .dsc's SHA-256, unpacked and configured in
# DIR (default .cache/fio); prints the source folder.  Quiet and quick
# when it is already there.
set -euo pipefail

VERSION=3.33
DEBVER=3.33-3
SHA256=d2410e13e0f379d061d077cc5ae325835bb7c6186aa7bafc1df954cbc9b014fc
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$REPO/.cache/fio}
SRC=$DIR/fio-$VERSION

if [ -f "$SRC/config-host.h" ]; then
	echo "$SRC"
	exit 0
fi
mkdir -p "$DIR/apt/lists/partial" "$DIR/dl"
tarball=$DIR/dl/fio_$VERSION.orig.tar.gz
if [ ! -f "$tarball" ]; then
	echo "fio-src: fetching fio $DEBVER source" >&2
	printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n' \
		>"$DIR/apt/sources.list"
	apt=(-q -o "Dir::Etc::SourceList=$DIR/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$DIR/apt/lists" -o Dir::Cache=/dev/null)
	apt-get "${apt[@]}" update >/dev/null
	(cd "$DIR/dl" && apt-get "${apt[@]}" source --download-only "fio=$DEBVER" >/dev/null 2>&1)
fi
echo "$SHA256  $tarball" | sha256sum -c --quiet - >&2
rm -rf "$SRC"
tar -C "$DIR" -xzf "$tarball"
# As debian/rules does, less the GTK front-end (it changes no structure).
(cd "$SRC" && ./configure --disable-native --prefix=/usr --enable-libnbd >"$DIR/configure.log" 2>&1) ||
	{ echo "fio-src: configure failed, see $DIR/configure.log" >&2; exit 1; }
echo "$SRC"
