# The two commands of the README:
#   make demo   run the main job against the embedded local AWS (no account needed)
#   make test   run the whole test suite
# Both set themselves up from a fresh clone: a virtualenv in .venv with requirements.txt, the
# collection link in .collections, and (as root) the Debian packages the SSH test fleet needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/canarykeys/aws

.PHONY: demo test setup system-deps unit integration lint sanity molecule bench clean

setup: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

# The host tools (AWS CLI for the fleet's hosts) are built from /usr/bin/python3 outside /root,
# which each fleet host hides.
system-deps: setup
	@if [ "$$(id -u)" = 0 ]; then bash tests/tooling/system_deps.sh && $(BIN)/python tests/tooling/fleet.py hosttools; \
	 else echo "not root: skipping Debian packages (the SSH fleet tests will skip)"; fi

# seed -> attack -> alert on the local AWS, then stop it all (docs/demo.md); logs and planted files in .sandbox/demo
demo: setup
	$(BIN)/python -m tools.demo

test: setup system-deps
	$(BIN)/python -m pytest -q tests
	$(MAKE) lint sanity molecule

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup system-deps
	$(BIN)/python -m pytest -q tests/integration

lint: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production --offline

sanity: setup
	VENV=$(CURDIR)/$(VENV) bash tests/tooling/sanity.sh

# Molecule 26 finds collection scenarios under extensions/molecule when run from the collection root.
molecule: setup system-deps
	for s in extensions/molecule/*/; do \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$(basename $$s) || exit 1; done

bench: setup system-deps
	$(BIN)/python benchmarks/bench_seed.py
	$(BIN)/python benchmarks/bench_rotate.py
	$(BIN)/python benchmarks/bench_alert_handler.py
	$(BIN)/python benchmarks/bench_canary_key_info.py

clean:
	rm -rf .sandbox .tmp .collections
