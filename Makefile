# The two commands of the README:
#   make demo   run the main job against the embedded local AWS (no account needed)
#   make test   run the whole test suite
# Both set themselves up from a fresh clone: a virtualenv in .venv with requirements.txt (what the
# collection needs to run) and requirements-test.txt (tests, local AWS, linters, ansible-builder), the
# collection link in .collections, and (as root) the Debian packages the SSH test fleet needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/canarykeys/aws
# pytest-xdist workers of `make pytest` (so of `make test`), `make unit` and `make integration`: each
# worker has its own fleet and local AWS. --dist loadfile keeps a file on one worker, so a module's
# fixtures (a seeded fleet, a deployed stack) are set up once; --no-loadscope-reorder hands out the files
# in collection order (tests/integration first, whose files run longest) instead of most tests first,
# which left the longest file for last.
PYTEST_WORKERS ?= 3
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
# Parts of `make test` that run side by side (see the test target).
TEST_JOBS ?= 3
MOLECULE_SCENARIOS := $(sort $(notdir $(patsubst %/,%,$(wildcard extensions/molecule/*/))))
# Longest first: make starts the parts of `make test` in this order.
MOLECULE_TARGETS := $(addprefix molecule-,detection $(filter-out detection,$(MOLECULE_SCENARIOS)))
TIMED := bash tests/tooling/timed.sh

.PHONY: demo test setup system-deps pytest unit integration lint sanity molecule $(MOLECULE_TARGETS) bench clean

setup: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

# The host tools (AWS CLI for the fleet's hosts) are built from /usr/bin/python3 outside /root,
# which each fleet host hides.
# The fleet's OS users are made here, once, before `make test` starts its parts side by side: then no
# fleet runs useradd while a unit test adds or removes its throwaway user (both need /etc/passwd's lock).
system-deps: setup
	@if [ "$$(id -u)" = 0 ]; then bash tests/tooling/system_deps.sh && $(BIN)/python tests/tooling/fleet.py hosttools \
	   && $(BIN)/python tests/tooling/fleet.py accounts --webservers 2 --laptops 2; \
	 else echo "not root: skipping Debian packages (the SSH fleet tests will skip)"; fi

# seed -> attack -> alert on the local AWS, then stop it all (docs/demo.md); logs and planted files in .sandbox/demo
demo: setup
	$(BIN)/python -m tools.demo

# Everything, in parts that run side by side (docs/testing.md): pytest (unit + integration, on
# $(PYTEST_WORKERS) xdist workers), each Molecule scenario, lint and sanity; at most $(TEST_JOBS) parts at
# once. They share no state: every pytest worker and every scenario has its own fleet directory, local
# AWS and ports. Each part's output is printed whole when it ends (--output-sync), a failed part does
# not stop the others (-k) and fails `make test`; a table of every part's time closes the run.
test: setup
	@mkdir -p .tmp && rm -f .tmp/test-timings
	@TEST_TIMINGS=$(CURDIR)/.tmp/test-timings $(MAKE) --no-print-directory -k -j$(TEST_JOBS) --output-sync=target \
	   pytest $(MOLECULE_TARGETS) lint sanity; rc=$$?; \
	 echo "== make test: every part (run side by side, $(TEST_JOBS) at most; pytest on $(PYTEST_WORKERS) workers)"; \
	 cat .tmp/test-timings 2>/dev/null; \
	 if [ $$rc = 0 ]; then echo "== make test: all parts passed"; else echo "== make test: FAILED (a part above failed)"; fi; \
	 exit $$rc

pytest: setup system-deps
	@$(TIMED) pytest $(BIN)/python -m pytest -q $(PYTEST_XDIST) --durations=15 tests

unit: setup
	$(BIN)/python -m pytest -q $(PYTEST_XDIST) tests/unit

integration: setup system-deps
	$(BIN)/python -m pytest -q $(PYTEST_XDIST) tests/integration

lint: setup
	@$(TIMED) lint env PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production --offline

sanity: setup
	@$(TIMED) sanity env VENV=$(CURDIR)/$(VENV) bash tests/tooling/sanity.sh

# Molecule 26 finds collection scenarios under extensions/molecule when run from the collection root.
# One target per scenario (make molecule-seed); `make -j4 molecule` runs them side by side.
molecule: $(MOLECULE_TARGETS)

$(MOLECULE_TARGETS): molecule-%: setup system-deps
	@$(TIMED) molecule-$* env PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $*

bench: setup system-deps
	$(BIN)/python benchmarks/bench_seed.py
	$(BIN)/python benchmarks/bench_rotate.py
	$(BIN)/python benchmarks/bench_alert_handler.py
	$(BIN)/python benchmarks/bench_canary_key_info.py
	$(BIN)/python benchmarks/bench_last_used.py
	$(BIN)/python benchmarks/bench_controller.py --sizes 500,2000

clean:
	rm -rf .sandbox .tmp .collections
