# Two entry points for a fresh Debian 12 machine (see README.md):
#   make run    install packages, build, start calibd on the embedded store
#   make test   install packages, build, run every test (plus a sanitizer build of the FITS tests)
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
STORE ?= var/calibd

.PHONY: all deps configure build test test-asan run bench image clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The sanitizer build covers what parses hostile bytes (FITS) without the service layer.
test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCALIBD_SANITIZE=address,undefined -DCALIBD_BUILD_SERVICE=OFF -DCALIBD_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target fits_test
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L fits

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

run: build
	@mkdir -p $(STORE)
	@if [ -x $(BUILD)/server/calibd ]; then exec $(BUILD)/server/calibd --store $(STORE); \
	 else echo "calibd is not built yet; the core library and its tests are: make test"; fi

bench: build
	@bench/run.sh $(BUILD)

# The container image (docker/Dockerfile) from the work tree's files: IMAGE_TAG=calibd:dev,
# IMAGE_REV=HEAD for a commit. Starts dockerd and makes the Debian base images when missing.
IMAGE_TAG ?=
IMAGE_REV ?=
image: deps
	@scripts/build-image $(if $(IMAGE_TAG),--tag $(IMAGE_TAG)) $(if $(IMAGE_REV),--rev $(IMAGE_REV)) --jobs $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
