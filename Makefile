# CleverSocks — the commands a developer needs. Everything installs what it
# needs itself (Debian packages via scripts/install-deps.sh).
#
#   make run       install, build (release) and run with the embedded defaults
#   make test      install, build and run every test: release, ASan+UBSan, TSan
#   make bench     side-by-side benchmark against Dante and microsocks
#   make bench-micro  Google Benchmark micro-benchmarks only (ns per operation)
#   make fuzz      run every libFuzzer target (FUZZ_SECONDS each)
#   make package   build the Debian package (CPack) in build/package

JOBS          ?= $(shell nproc)
BUILD         ?= build
ARGS          ?=
FUZZ_SECONDS  ?= 60
CMAKE_FLAGS   ?=

RELEASE_DIR := $(BUILD)/release
ASAN_DIR    := $(BUILD)/asan
TSAN_DIR    := $(BUILD)/tsan
PACKAGE_DIR := $(BUILD)/package

.PHONY: all deps deps-test build run test test-release test-asan test-tsan unit bench bench-micro fuzz package clean format

all: build

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target cleversocks

run: build
	$(RELEASE_DIR)/cleversocks $(ARGS)

# --- tests -------------------------------------------------------------------

test: deps-test
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) test-tsan
	@echo "make test: all suites passed"

test-release: $(RELEASE_DIR)/build.ninja
	cmake -S . -B $(RELEASE_DIR)   # re-detect test libraries installed since `make run`
	cmake --build $(RELEASE_DIR) -j $(JOBS)
	cd $(RELEASE_DIR) && ctest --output-on-failure --timeout 600 -j $(JOBS)

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCS_SANITIZE=address,undefined \
	  -DCS_BUILD_BENCH=ON -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $(CMAKE_FLAGS)

test-asan: $(ASAN_DIR)/build.ninja
	cmake -S . -B $(ASAN_DIR) -DCS_BUILD_BENCH=ON >/dev/null  # a directory configured before the tools joined it
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ctest --output-on-failure --timeout 900 -j $(JOBS)

$(TSAN_DIR)/build.ninja:
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCS_SANITIZE=thread \
	  -DCS_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" $(CMAKE_FLAGS)

# TSan covers what is multi-threaded: the unit tests and the integration
# tests that run several workers (label "threads").
test-tsan: $(TSAN_DIR)/build.ninja
	cmake --build $(TSAN_DIR) -j $(JOBS)
	cd $(TSAN_DIR) && ctest --output-on-failure --timeout 900 -j $(JOBS) -L 'unit|threads'

# --- package -----------------------------------------------------------------

# The .deb: release build of the proxy alone (no tests, no benchmarks), then
# CPack (cmake/Packaging.cmake). Output: $(PACKAGE_DIR)/cleversocks_VERSION-1_ARCH.deb
$(PACKAGE_DIR)/build.ninja:
	@scripts/install-deps.sh package
	cmake -S . -B $(PACKAGE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCS_BUILD_TESTS=OFF -DCS_BUILD_BENCH=OFF $(CMAKE_FLAGS)

package: $(PACKAGE_DIR)/build.ninja
	@scripts/install-deps.sh package
	cmake --build $(PACKAGE_DIR) -j $(JOBS) --target cleversocks
	cd $(PACKAGE_DIR) && cpack -G DEB
	@ls -1 $(PACKAGE_DIR)/*.deb

# --- other -------------------------------------------------------------------

bench:  # run.sh builds the proxy itself (make build)
	bench/run.sh

bench-micro:
	bench/run.sh --micro-only

fuzz:
	fuzz/run.sh all $(FUZZ_SECONDS)

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
