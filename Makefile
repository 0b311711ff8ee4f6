# Works on a fresh Debian machine with only python3: `make setup` installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# apt-get needs root; elsewhere go through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

# Same search as pgconverge.dev.embedded.find_bindir: pg_config's bindir, else /usr/lib/postgresql/*/bin.
HAVE_INITDB = { b=$$(pg_config --bindir 2>/dev/null) && [ -x "$$b/initdb" ]; } || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1

.PHONY: setup postgres test deploy clean

setup: postgres $(VENV)/.installed

postgres:
	@if [ -n "$$PGCONVERGE_PG_BINDIR" ] || $(HAVE_INITDB); then :; else \
	  echo "installing PostgreSQL server packages"; \
	  $(APT) update && \
	  { $(APT) install -y postgresql postgresql-contrib || $(APT) install -y postgresql; }; \
	fi
	@command -v runuser >/dev/null || { $(APT) update && $(APT) install -y util-linux; }
# sign-offs are signed and verified with ssh-keygen -Y (OpenSSH 8.2 or later)
	@command -v ssh-keygen >/dev/null || { $(APT) update && $(APT) install -y openssh-client; }

# Debian's python3 has no ensurepip without python3-venv.
$(PY):
	@python3 -c 'import ensurepip' 2>/dev/null || { $(APT) update && $(APT) install -y python3-venv; }
	python3 -m venv $(VENV)

# The stamp is newer than pyproject.toml once its dependencies are installed.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

deploy: setup
	$(PY) -m pgconverge.dev.demo

# Stop every cluster under .pgconverge before deleting its files.
clean:
	@if [ -d .pgconverge ] && [ -x $(PY) ]; then \
	  for d in $$(find .pgconverge -maxdepth 3 -path '*/data/PG_VERSION' -printf '%h\n'); do \
	    $(PY) -m pgconverge.dev.embedded --dir "$${d%/data}" stop; \
	  done; \
	fi
	rm -rf .pgconverge
