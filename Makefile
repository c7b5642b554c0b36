# make demo   - roll DICOM TLS out to a demo fleet on this machine and print the C-ECHO matrix
# make test   - lint, unit, sanity, ansible-lint, release checks, integration (live dcmtk/Orthanc/openssl), molecule
SHELL := /bin/bash
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
NETNS := scripts/netns.sh
PYTEST_ARGS ?=

.PHONY: demo test bootstrap lint unit sanity ansible-lint release-checks ee-context integration molecule benchmarks clean

demo: bootstrap
	$(NETNS) scripts/demo.sh

test: bootstrap lint unit sanity ansible-lint release-checks integration molecule

bootstrap:
	scripts/bootstrap.sh

lint: bootstrap
	ruff check .
	ruff format --check .

# two workers (CI has 2 cores); integration files run whole on one worker: their fixed ports never collide
unit: bootstrap
	python -m pytest -q -p no:cacheprovider -n 2 tests/unit $(PYTEST_ARGS)

sanity: bootstrap
	scripts/sanity.sh

ansible-lint: bootstrap
	ansible-lint --profile production

# galaxy-importer, antsibull-docs lint, antsibull-changelog lint, ansible-builder create (scripts/release_checks.sh)
release-checks: bootstrap
	scripts/release_checks.sh

# the execution environment's build context in .build/ee (then: podman build .build/ee)
ee-context: bootstrap
	scripts/release_checks.sh tarball ee

# the Debian root test_systemd.py boots is built (once, cached in .build) outside the network namespace
integration: bootstrap
	scripts/systemd_root.sh
	$(NETNS) python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 tests/integration $(PYTEST_ARGS)

molecule: bootstrap
	scripts/molecule.sh

benchmarks: bootstrap
	$(NETNS) scripts/benchmarks.sh

clean:
	rm -rf .build tests/output
