# The two commands a newcomer needs (see README):
#   make run   - set up everything, then serve the chat on the bundled sample documents
#   make test  - set up everything, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-fast bench clean

setup:
	bash scripts/setup.sh

run: setup
	$(VENV)/bin/assistant demo

# PostgreSQL, Chromium and nginx are real services for the log, browser and cluster tests; each script is
# idempotent and only warns when it cannot provide its service (the tests then say so loudly).
test: setup
	@if [ -f scripts/install_browser.sh ]; then bash scripts/install_browser.sh || true; fi
	@if [ -f scripts/install_nginx.sh ]; then bash scripts/install_nginx.sh || true; fi
	@set -e; pg=""; if [ -f scripts/start_postgres.sh ]; then pg="$$(bash scripts/start_postgres.sh || true)"; fi; \
	eval "$$pg"; $(PY) -m pytest tests -q

test-fast: setup
	$(PY) -m pytest tests -q -m "not slow and not browser"

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) workspace .pytest_cache
