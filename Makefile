# Thin wrapper over CMake: installs what is missing, builds, runs, tests.
#
#   make run    install packages, build, create the demo model, start recsysd on 127.0.0.1:50051
#   make test   install packages, build, run the whole test suite (ctest)
#   make test-sanitize SAN=address|undefined|thread   the same suite under a sanitizer
#   make fuzz   run every libFuzzer target for FUZZ_SECONDS each (clang)
#   make bench  build and run the benchmarks in bench/
#   make bench-events  only bench/events.py (live events, about 2 minutes)
#   make bench-models  only bench/models.py (several models and routes, about 2 minutes)
#   make bench-ghz     only bench/ghz.py (ghz, the gRPC load tool, by reflection)
#   make bench-peers   only the peers: FAISS, implicit, Spark (bench/score_faiss.py,
#                      bench/train.sh's peers, bench/spark_import.py)
#   make format        rewrite every C file as .clang-format says
#   make format-check  fail, naming the files, if any C file is not formatted
#   make test-clang    the unit tests built with clang (-Werror)

BUILD     ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS      ?= $(shell nproc)
LISTEN    ?= 127.0.0.1:50051
DEMO      ?= $(BUILD)/demo/model.lmdb
SAN       ?= address

# Debian packages the project builds, runs and tests with. One list, used by
# `make deps`, the Dockerfile and CI.
PACKAGES := build-essential cmake pkg-config \
            libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler grpc-proto \
            liblmdb-dev libopenblas-dev libjemalloc-dev liburcu-dev zlib1g-dev libnghttp2-dev \
            libjansson-dev \
            python3 python3-grpcio python3-protobuf python3-numpy python3-lmdb

# Only for `make test`: the independent clients the tests drive the daemon
# with besides python3-grpcio. h2load comes from nghttp2-client; Node's
# @grpc/grpc-js from npm needs node and npm, taken from Debian unless the
# machine already has them (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm package). openssl makes the TLS tests' certificates;
# systemd's systemd-analyze checks the unit in deploy/systemd offline;
# python3-venv holds kubernetes-validate (PyPI), python3-yaml reads the
# manifests of deploy/kubernetes; python3-hpack decodes the server's header
# blocks for tests/lib/h2peer.py. curl fetches the pinned Go toolchain from
# the Go module proxy (tests/go/go.sh), for grpcurl, ghz and the Go client
# example; Maven and a JDK build the Java one, taken from Debian unless the
# machine has them.
TEST_PACKAGES := nghttp2-client openssl systemd python3-venv python3-yaml python3-hpack \
                 curl ca-certificates \
                 $(shell command -v npm >/dev/null 2>&1 || echo nodejs npm) \
                 $(shell command -v mvn >/dev/null 2>&1 || echo maven) \
                 $(shell command -v javac >/dev/null 2>&1 || echo default-jdk-headless)

# Only for `make format`/`format-check` and `make test-clang`: Debian's
# clang-format (14 on bookworm; the check depends on its version) and clang.
LINT_PACKAGES := clang-format clang

# Only for `make bench`: h2load drives bench/rpc.py, matplotlib draws the
# curves. The peers (implicit, FAISS, PySpark, pinned in bench/requirements.txt
# and tools/spark/requirements.txt) go into a venv that sees Debian's numpy
# and scipy; Spark runs on a JDK, Debian's unless the machine has one.
BENCH_PACKAGES := nghttp2-client python3-matplotlib python3-venv python3-scipy \
                  $(shell command -v java >/dev/null 2>&1 || echo default-jdk-headless)
PEERS_VENV := $(BUILD)/bench/peers-venv

# Only for `make fuzz`: libFuzzer comes with clang's runtime.
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_TARGETS  := npy csv ids request model route export
FUZZ_SECONDS  ?= 120

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps configure build demo run test test-sanitize test-clang fuzz bench bench-events bench-models bench-ghz bench-peers peers-venv clean \
        packages format format-check

all: build

packages:
	@echo $(PACKAGES)

# Installs only what dpkg does not already report as installed, so a
# prepared machine runs no apt at all.
deps:
	@missing=$$(for p in $(PACKAGES) $(EXTRA_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The build directory remembers the arguments it was configured with; when
# they differ (another BUILD_TYPE, CMAKE_ARGS added or dropped), its cache is
# thrown away and it is configured anew, since a cached option that is no
# longer passed would otherwise stay in force.
CONFIGURE_ARGS := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ] || \
	    [ "$$(cat $(BUILD)/configure-args 2>/dev/null)" != '$(CONFIGURE_ARGS)' ]; then \
	  rm -f $(BUILD)/CMakeCache.txt && \
	  cmake -S . -B $(BUILD) $(CONFIGURE_ARGS) && \
	  echo '$(CONFIGURE_ARGS)' > $(BUILD)/configure-args; \
	fi

build: configure
	cmake --build $(BUILD) -j$(JOBS)

$(DEMO): | build
	mkdir -p $(dir $(DEMO))
	$(BUILD)/recsys-model demo -o $(DEMO)

demo: build $(DEMO)

run: demo
	exec $(BUILD)/recsysd --model $(DEMO) --listen $(LISTEN)

test:
	$(MAKE) deps EXTRA_PACKAGES="$(TEST_PACKAGES)"
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-sanitize:
	$(MAKE) test BUILD=build-$(SAN) BUILD_TYPE=Debug CMAKE_ARGS="-DRECSYS_SANITIZE=$(SAN) $(CMAKE_ARGS)"

# The unit tests only: the end-to-end ones test the same code through the
# daemon, which the gcc suites already run four times.
test-clang:
	$(MAKE) deps EXTRA_PACKAGES="$(LINT_PACKAGES)"
	$(MAKE) build BUILD=build-clang BUILD_TYPE=Debug CMAKE_ARGS="-DCMAKE_C_COMPILER=clang $(CMAKE_ARGS)"
	cd build-clang && ctest --output-on-failure -j$(JOBS) -R '^unit/'

C_FILES = $(shell git ls-files '*.c' '*.h')

format:
	$(MAKE) deps EXTRA_PACKAGES="$(LINT_PACKAGES)"
	clang-format -i $(C_FILES)

format-check:
	$(MAKE) deps EXTRA_PACKAGES="$(LINT_PACKAGES)"
	clang-format --dry-run --Werror $(C_FILES)

# Each target starts from its committed seed corpus and keeps what it
# learns in build-fuzz/corpus-<target>; a crash stops that target and
# leaves its reproducer in the current directory.
fuzz:
	$(MAKE) deps EXTRA_PACKAGES="$(FUZZ_PACKAGES)"
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECSYS_FUZZ=ON
	cmake --build build-fuzz -j$(JOBS) $(addprefix --target fuzz_,$(FUZZ_TARGETS))
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus-$$t && \
	  build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

bench:
	$(MAKE) deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(MAKE) build peers-venv
	$(BUILD)/bench/score
	/usr/bin/python3 bench/score_faiss.py $(BUILD) --python $(PEERS_VENV)/bin/python \
	    --plot $(BUILD)/bench
	$(BUILD)/bench/batch
	$(BUILD)/bench/reload --recsysd $(BUILD)/recsysd
	$(BUILD)/bench/reload --recsysd $(BUILD)/recsysd --items 100000 --quantize --clients 1 \
	    --swaps 1 --soak-swaps 0 --steady-seconds 10
	PEERS_PYTHON=$(PEERS_VENV)/bin/python bench/train.sh $(BUILD)
	/usr/bin/python3 bench/spark_import.py $(BUILD)
	/usr/bin/python3 bench/rpc.py $(BUILD) --plot $(BUILD)/bench
	/usr/bin/python3 bench/events.py $(BUILD) --plot $(BUILD)/bench
	/usr/bin/python3 bench/models.py $(BUILD)
	$(BUILD)/bench/overload --recsysd $(BUILD)/recsysd --items 100000 \
	    --csv $(BUILD)/bench/overload.csv
	/usr/bin/python3 bench/overload_plot.py $(BUILD)/bench/overload.csv $(BUILD)/bench/overload.png

# The live events' figures alone: RecordEvents from build/bench/events,
# the folded-in Recommend, serving during a burst, the state across swaps.
bench-events:
	$(MAKE) deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(MAKE) build
	/usr/bin/python3 bench/events.py $(BUILD) --plot $(BUILD)/bench

# ghz, built from tests/go/ghz's pinned modules, against the demo model by
# server reflection: each read RPC and health, a rate sweep, ghz against
# h2load. Needs curl for the pinned Go toolchain, as the tests do.
bench-ghz:
	$(MAKE) deps EXTRA_PACKAGES="$(BENCH_PACKAGES) curl ca-certificates"
	$(MAKE) build
	/usr/bin/python3 bench/ghz.py $(BUILD)

# The peers side by side: FAISS against the exact scan (bench/score_faiss.py),
# implicit's and Spark's ALS against recsys-train (bench/train.sh), and the
# Spark export's import at 10^6 and 10^7 users (bench/spark_import.py,
# about 15 GB of scratch in /var/tmp).
bench-peers:
	$(MAKE) deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(MAKE) build peers-venv
	/usr/bin/python3 bench/score_faiss.py $(BUILD) --python $(PEERS_VENV)/bin/python \
	    --plot $(BUILD)/bench
	PEERS_PYTHON=$(PEERS_VENV)/bin/python bench/train.sh $(BUILD)
	/usr/bin/python3 bench/spark_import.py $(BUILD)

peers-venv: $(PEERS_VENV)/requirements.stamp
$(PEERS_VENV)/requirements.stamp: bench/requirements.txt tools/spark/requirements.txt
	/usr/bin/python3 -m venv --system-site-packages $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
	    -r bench/requirements.txt -r tools/spark/requirements.txt
	touch $@

# Several models: the split over 100,000 users, routing's cost with three
# models against one, route changes and removal under load.
bench-models:
	$(MAKE) deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(MAKE) build
	/usr/bin/python3 bench/models.py $(BUILD)

clean:
	rm -rf $(BUILD) build-address build-undefined build-thread build-clang build-fuzz
