# hardened.openresty: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# gixy-ng depends on ngxparse, a fork that installs the same `crossplane` package as the real
# crossplane in .venv: each gets its own environment so that both run as published.
GIXY_VENV := .venv-gixy
export HARDENED_GIXY := $(abspath $(GIXY_VENV))/bin/gixy
CACHE := $(abspath .cache)
COLLECTIONS := $(CACHE)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/hardened/openresty
# Outside the repository: inside it, ansible-test would list files through git, which ignores .cache.
SANITY_TREE := $(or $(TMPDIR),/tmp)/hardened-openresty-sanity/ansible_collections/hardened/openresty
SCENARIOS ?= default lua_app pentest fleet

# systemd inside a container needs these arguments on a host with cgroup v1 only.
HARDENED_SYSTEMD_COMMAND ?= $(shell if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /lib/systemd/systemd; \
  else echo /lib/systemd/systemd systemd.unified_cgroup_hierarchy=0 SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1; fi)
export HARDENED_SYSTEMD_COMMAND
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_ROLES_PATH := $(abspath roles)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

.PHONY: help venv docker images collection lint sanity unit oracle release-check molecule user-project test demo demo-clean bench clean

help:
	@echo "make demo        build images, start a 3-host local fleet, converge it, show it serving Lua"
	@echo "make demo-clean  remove the demo fleet"
	@echo "make test        lint, ansible-test sanity, unit tests, the oracle suite and every molecule scenario"
	@echo "make oracle      the verifier against real nginx / lua-nginx-module / LuaJIT (Debian 12 and 13)"

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

$(GIXY_VENV)/.installed: requirements-gixy.txt
	$(PYTHON) -m venv $(GIXY_VENV)
	$(GIXY_VENV)/bin/pip install --quiet --upgrade pip
	$(GIXY_VENV)/bin/pip install --quiet -r requirements-gixy.txt
	touch $@

venv: $(VENV)/.installed $(GIXY_VENV)/.installed

docker:
	@bash scripts/ensure-docker.sh

images: docker
	@bash scripts/build-images.sh debian12 debian13

collection:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn $(abspath .) $(COLLECTION_LINK)

lint: venv collection
	yamllint -s .
	ansible-lint --profile production

sanity: venv
	@bash scripts/ansible-test-sanity.sh $(SANITY_TREE)

unit: venv collection
	@bash scripts/ensure-luajit.sh
	cd $(COLLECTION_LINK) && PYTHONPATH=$(COLLECTIONS) python -m pytest -q -p no:cacheprovider tests/unit

molecule: venv collection images
	@for s in $(SCENARIOS); do \
	  echo "=== molecule test -s $$s"; \
	  molecule test -s $$s || exit 1; \
	done

# The verifier against the real binaries: throwaway containers (no network) of both images
# answer every case in tests/oracle/cases and a seeded generator. The containers carry this
# run's label and are removed on success, failure and interruption alike.
oracle: venv collection images
	@run_id=oracle-$$$$; \
	cleanup() { ids=$$(docker ps -aq --filter "label=hardened.openresty.oracle=$$run_id"); \
	  if [ -n "$$ids" ]; then docker rm -f $$ids >/dev/null; fi; }; \
	trap cleanup EXIT INT TERM; \
	cd $(COLLECTION_LINK) && ORACLE_RUN_ID=$$run_id PYTHONPATH=$(COLLECTIONS) \
	  python -m pytest -q -p no:cacheprovider tests/oracle

# Build the tarball, install it offline and use it; render the execution environment; changelog.
release-check: venv collection
	bash scripts/test-build-install.sh
	bash scripts/test-ee.sh
	bash scripts/test-changelog.sh

# A user's own project and molecule scenario against the collection installed from its tarball.
user-project: venv images
	bash scripts/test-user-project.sh

test: lint sanity unit oracle release-check molecule user-project
	@echo "make test: all checks passed"

demo: venv collection images
	@bash scripts/demo.sh up

demo-clean: venv collection
	@bash scripts/demo.sh down

clean: demo-clean
	rm -rf $(CACHE) tests/output

bench: venv collection images
	python scripts/bench_converge.py --runs 3 --round-trips
	python scripts/bench_fleet.py --runs 2
	python scripts/bench_redos.py --runs 9
	python scripts/bench_reload.py --runs 7
	python scripts/bench_reload_load.py --runs 5
	PYTHONPATH=$(COLLECTIONS) python scripts/bench_verify.py --servers 10000
	PYTHONPATH=$(COLLECTIONS) python scripts/bench_seal.py --runs 5
	PYTHONPATH=$(COLLECTIONS) python scripts/bench_lua_finder.py --blocks 20000
	python scripts/bench_audit_fleet.py --hosts 1000 10000 --runs 3
