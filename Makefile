# Nimbus — build, run and test.
#
#   make run     # install deps, release build, start the cloud on 127.0.0.1:5000
#   make test    # install deps, build, swift test (+PostgreSQL), front-door suite
#
# Everything here works as root on a fresh Debian 12 with Swift in /opt/swift.

SHELL := /bin/bash
.DEFAULT_GOAL := build

# Swift lives in /opt/swift on our machines; use it when `swift` isn't on PATH.
ifeq ($(shell command -v swift 2>/dev/null),)
ifneq ($(wildcard /opt/swift/usr/bin/swift),)
export PATH := /opt/swift/usr/bin:$(PATH)
endif
endif

PYTHON ?= python3
VENV := .venv
REQS := tests/frontdoor/requirements.txt
VENV_STAMP := $(VENV)/.requirements.stamp

STATE_DIR ?= .nimbus
LISTEN ?= 127.0.0.1:5000

# Debian packages the build, the tests and `make run` need (qemu-utils: qemu-img
# makes the qcow2 fixtures of the image front-door tests; dnsmasq-base, nftables and iproute2
# are the network dataplane).
APT_PACKAGES := postgresql python3-venv python3-pip curl ca-certificates util-linux make git wrk \
	dnsmasq-base nftables iproute2 procps \
	$(shell cat scripts/guest-deps.txt)

.PHONY: deps build release venv run test bench clean distclean pg-start pg-stop

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	else \
	  echo "deps: all Debian packages present"; \
	fi
	@command -v swift >/dev/null || { echo "deps: swift not found (expected /opt/swift/usr/bin)" >&2; exit 1; }

build:
	swift build

# The Swift runtime and Foundation linked in: the agent's RSS with 10 guests falls from 39.8 to
# 36.6 MiB (pages of shared libraries it barely uses no longer count), and the control plane is
# no slower (see BENCHMARKS.md). Still PIE; glibc, libstdc++ and zlib stay shared.
release:
	swift build -c release --static-swift-stdlib

venv: $(VENV_STAMP)

# Reinstall only when the requirements change (or the venv is gone).
$(VENV_STAMP): $(REQS)
	@if [ ! -x $(VENV)/bin/python ]; then $(PYTHON) -m venv $(VENV) || /usr/bin/python3 -m venv $(VENV); fi
	$(VENV)/bin/pip install --disable-pip-version-check -q -r $(REQS)
	cp $(REQS) $@

run: deps release
	@[ -f $(STATE_DIR)/guest/disk.qcow2 ] || .build/release/nimbus guest-image build --out $(STATE_DIR)/guest
	.build/release/nimbus up --state-dir $(STATE_DIR) --listen $(LISTEN)

test: deps venv
	scripts/test-all.sh

# Figures for BENCHMARKS.md (release build, loopback only, bounded load).
bench: deps venv release
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk </dev/null
	$(VENV)/bin/python scripts/bench.py

pg-start:
	@scripts/pg-test.sh start

pg-stop:
	@scripts/pg-test.sh stop

clean:
	swift package clean

distclean:
	rm -rf .build $(VENV) $(STATE_DIR)
