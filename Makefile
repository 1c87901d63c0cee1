# One-command entry points (see README.md). Everything runs inside .venv, created on first use.
PYTHON  ?= python3
PROFILE ?= ci
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: setup book test lint verify check-html claims clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,test,bench]"
	touch $(STAMP)

book: $(STAMP)
	$(PY) -m pml.cli book --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check pml tests

verify: $(STAMP)
	$(PY) -m pml.cli book --profile ci
	$(PY) -m pml.cli claims --profile ci

claims: $(STAMP)
	$(PY) -m pml.cli claims --profile $(PROFILE)

# Screenshots are on demand (`$(PY) -m pml.cli check-html --screenshots`: _build/screenshots/, about 1 s more a page).
check-html: $(STAMP)
	$(PY) -m pml.cli check-html

clean:
	rm -rf _build
