# One-command entry points (see README.md). Everything runs inside .venv, created on first use.
PYTHON  ?= python3
PROFILE ?= ci
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: setup book test test-all lint verify verify-results check-html claims clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,test,bench]"
	touch $(STAMP)

# The paper profile is built from the results shipped in results/ (unpacked first, checked by hash; idempotent):
# what they hold is drawn and judged, what they lack is marked as not computed. Other profiles compute everything.
book: $(STAMP)
ifeq ($(PROFILE),paper)
	$(PY) -m pml.cli results unpack --shipped
	$(PY) -m pml.cli book --profile paper --stored
else
	$(PY) -m pml.cli book --profile $(PROFILE)
endif

# The fast unit suite (minutes): every test but the chapter executions (marker `chapters`) and the slowest tests
# (marker `slow`: time-limited fits, sweeps through the engine). `make test-all` runs every test (CI runs it).
test: $(STAMP)
	$(PY) -m pytest -q -m "not chapters and not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check pml tests

verify: $(STAMP)
	$(PY) -m pml.cli book --profile ci
	$(PY) -m pml.cli claims --profile ci

# Recompute a sample of the shipped results (one cheap task per step, seeded by the commit, <= 5 minutes).
verify-results: $(STAMP)
	$(PY) -m pml.cli results verify --shipped --time-limit 300

claims: $(STAMP)
	$(PY) -m pml.cli claims --profile $(PROFILE)

# Screenshots are on demand (`$(PY) -m pml.cli check-html --screenshots`: _build/screenshots/, about 1 s more a page).
check-html: $(STAMP)
	$(PY) -m pml.cli check-html

clean:
	rm -rf _build
