# The two quick-start commands: `make book` (build the whole book, executing every chapter)
# and `make test` (run the tests). Each one makes .venv and installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zfkit-installed
# Data, crops and training runs of the book build stay inside the build folder, so a build in a
# fresh clone really executes everything (a student's runs live in ~/.cache/zfkit or on Drive).
export ZFKIT_HOME ?= $(CURDIR)/_build/zfkit-home

.PHONY: book test browser-check clean install
install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest -q

# After `make book`: open every page in headless Chromium (apt-get install chromium); full-page
# screenshots go to _build/screenshots/.
browser-check: $(STAMP)
	$(PY) -m pytest -q tests/test_browser.py

clean:
	rm -rf _build
