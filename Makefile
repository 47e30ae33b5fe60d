# The two commands of the README. Python 3.12+ comes from .python-version (pyenv).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

.PHONY: run test install bench-ingest fuzz

run: $(STAMP)
	$(VENV)/bin/python manage.py run

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

install: $(STAMP)

# Schema fuzzing of the REST API against a live server on the seeded demo tenant (.ci/fuzz-api).
fuzz: $(STAMP)
	bash .ci/fuzz-api

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "BillingWatch needs Python 3.12+; found " + sys.version.split()[0])'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

bench-ingest: $(STAMP)
	$(VENV)/bin/python bench/ingest.py
