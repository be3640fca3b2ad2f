# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   set up, then run three simulated weeks of the sample cadence
#   make test   set up, then lint (ruff, import contracts, mypy) and run the
#               whole suite (PostgreSQL tests need
#               TOUCHFLOW_TEST_POSTGRES_URL; .ci/run sets it)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-services lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m touchflow.demo

test: $(STAMP) test-services lint
	$(BIN)/python -m pytest

# The reply tests run against a real IMAP server: Dovecot from Debian's
# packages (started by the tests themselves, on a free port, as this user).
# The speech tests need espeak-ng and sox (Debian packages too).
# The dashboard's browser tests drive Debian's chromium through Playwright.
test-services:
	@test -x /usr/sbin/dovecot || command -v dovecot >/dev/null || { \
	  echo "installing dovecot-imapd for the IMAP tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dovecot-imapd >/dev/null; \
	} || echo "warning: could not install dovecot-imapd; the IMAP tests will be skipped (and fail under CI=true)"
	@# The speech tests synthesize a call's audio (espeak-ng) and turn it into
	@# Twilio's 8 kHz mu-law (sox), then run it through the offline recogniser.
	@{ command -v espeak-ng >/dev/null && command -v sox >/dev/null; } || { \
	  echo "installing espeak-ng and sox for the speech tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng sox >/dev/null; \
	} || echo "warning: could not install espeak-ng and sox; the speech tests will be skipped (and fail under CI=true)"
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	} || echo "warning: could not install chromium; the browser tests will be skipped (and fail under CI=true)"

# Style, the tiers' import contracts (pyproject [tool.importlinter]) and types.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/tick.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/speed_to_lead.py
	$(BIN)/python bench/forecast.py
	$(BIN)/python bench/forecast_store.py
	$(BIN)/python bench/guidance_matching.py
	$(BIN)/python bench/reports.py

clean:
	rm -rf demo-run .pytest_cache .hypothesis touchflow.db* outbox
