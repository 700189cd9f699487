# The two commands: `make book` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= default
DEVICE ?= auto
ONLY ?=
CHROMIUM ?= /usr/bin/chromium

.PHONY: book pdf test setup lint browser bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# not --no-compile: with PYTHONDONTWRITEBYTECODE=1 (set on the CI machine) no module would
	# ever be cached compiled, and every process (kernels, workers) would compile its imports
	# again: a fresh install saved 49 s, and the test suite lost minutes
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

book: $(VENV)/.installed
	$(PY) -m kernelfusion book --preset $(PRESET) --device $(DEVICE) $(if $(ONLY),--only $(ONLY),)

# The built book as one PDF (book/_build/book.pdf), printed by headless Chromium.
pdf: $(VENV)/.installed browser
	$(PY) -m kernelfusion pdf

# Debian's chromium for the browser test (root, or sudo where there is one).
browser:
	@test -x $(CHROMIUM) || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The venv and Debian's chromium are installed side by side (-j2): pip is busy unpacking and
# compiling while apt-get fetches and unpacks (each about a minute on a bare machine).
test:
	$(MAKE) --no-print-directory -j2 --output-sync=target setup
	$(PY) -m ruff check kernelfusion tests benchmarks
	$(PY) -m pytest

setup: $(VENV)/.installed browser

bench: $(VENV)/.installed
	$(PY) -m benchmarks

clean:
	rm -rf book/_build runs
