# Two commands on a fresh machine: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip -q --disable-pip-version-check
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test lint clean

$(STAMP): pyproject.toml constraints.txt package.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[dev]"
	npm install --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# OCR for scanned PDFs: Debian's Tesseract with Portuguese, installed where apt-get is there and we are root;
# elsewhere a note (scanned PDFs then fail with the packages to install; text PDFs need none of it).
OCR_PACKAGES := tesseract-ocr tesseract-ocr-por

install: $(STAMP)
	mkdir -p var
	@tesseract --list-langs 2>/dev/null | grep -qx por || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(OCR_PACKAGES); } >/dev/null 2>&1; } || \
	  echo "note: $(OCR_PACKAGES) not installed; scanned PDFs will fail until they are (docs/operations.md)"
	$(PY) manage.py compilemessages --ignore=.venv --ignore=node_modules -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	@# Bytecode for our own modules, as pip writes it for installed packages: every `manage.py` start reads
	@# it instead of compiling the sources again (where PYTHONDONTWRITEBYTECODE is set, nothing else writes it).
	$(PY) -m compileall -q annotation documents training lib config

run: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py demo_users
	$(PY) manage.py serve

# Two pytest-xdist workers (TEST_WORKERS=0 runs one process). `--dist load` deals tests out in pytest-django's
# order, in runs of consecutive tests (a module's fixtures are built once per worker), so on each worker the
# rolled-back database tests still run before the transactional ones.
# The 10 slowest tests are printed at the end, so a test that starts taking a minute shows in every run.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load --durations=10 $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf var node_modules $(VENV)
