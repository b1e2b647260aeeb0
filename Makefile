# Thin wrapper over meson/ninja.  `make` builds, `make test` runs every test
# (normal build, ASan+UBSan build, bounded fuzzing, real-guest tests),
# `make run` boots a guest on vhostd.  Missing Debian packages are installed.

BUILD ?= build
SAN_BUILD ?= build-san

.PHONY: all deps build san test run bench format clean

all: build

# fio-src.sh: fio's source for tools/fio (Debian ships no fio headers).
deps:
	@scripts/deps.sh
	@scripts/fio-src.sh >/dev/null || echo "make: no fio source, so no tools/fio engine (scripts/fio-src.sh)" >&2

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) >/dev/null

# deps first on every run: it returns at once when nothing is missing.
build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD)

$(SAN_BUILD)/build.ninja: | deps
	meson setup $(SAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

san: deps $(SAN_BUILD)/build.ninja
	@ninja -C $(SAN_BUILD)

test: build san
	@scripts/test.sh

run: build
	@scripts/run-demo.sh

bench: build
	@bench/blk.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-fuzz
