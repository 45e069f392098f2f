# Two commands do everything (see README.md):
#   make book   set up .venv, build the HTML book into _build/html
#   make test   set up .venv, run unit tests, re-execute every notebook with nbval,
#               build the book with warnings as errors, and test the built site in a browser
# Helpers for authors:
#   make lab                      JupyterLab in the same environment (klbook importable)
#   make refresh NB=book/x.ipynb  re-execute a notebook in place, storing fresh outputs
#   make benchmark                accuracy and speed table (benchmarks/accuracy_speed.py)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
NOTEBOOKS = $(sort $(wildcard book/*.ipynb))

.PHONY: book test unit nbval html browser lab refresh refresh-all benchmark clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --keep-going
	@echo "Open _build/html/index.html in a browser: file://$(CURDIR)/_build/html/index.html"

test: unit nbval html browser

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not browser"

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval --nbval-current-env $(NOTEBOOKS)

html: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . -W -n --keep-going

browser: $(STAMP)
	$(BIN)/python -m pytest tests -m browser

lab: $(STAMP)
	$(BIN)/jupyter lab book/

refresh: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make refresh NB=book/<chapter>.ipynb" && exit 2)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace "$(NB)"

refresh-all: $(STAMP)
	for nb in $(NOTEBOOKS); do $(BIN)/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done

benchmark: $(STAMP)
	$(BIN)/python benchmarks/accuracy_speed.py

clean:
	rm -rf _build .pytest_cache .hypothesis
