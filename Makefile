# Two commands do everything (see README.md):
#   make book   set up .venv, build the HTML book into _build/html
#   make test   set up .venv, run unit tests, re-execute every notebook with nbval,
#               build the book with warnings as errors, and test the built site in a browser
# Helpers for authors:
#   make lab                      JupyterLab in the same environment (klbook importable)
#   make reader-notebooks         check the reader's notebooks the HTML build writes (_build/reader-notebooks)
#   make pdf                      the whole book as a PDF through XeLaTeX (_build/latex/klbook.pdf), checked
#   make refresh NB=book/x.ipynb  re-execute a notebook in place, storing fresh outputs
#   make nbval-matrix             nbval under every kernel configuration (tests/nbval_tolerance.py)
#   make nbval-haswell            nbval under one of them (default haswell skylakex generic one-thread avx2)
#   make benchmark                accuracy and speed table (benchmarks/accuracy_speed.py)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
NOTEBOOKS = $(sort $(wildcard book/*.ipynb))

.PHONY: book test unit nbval nbval-matrix html browser reader-notebooks pdf lab refresh refresh-all benchmark mutation clean

# Kernel configurations (defined in tests/nbval_tolerance.py): each makes numpy, scipy and torch pick
# other numerical kernels, as another CPU would. `make test` runs the default and the two that move
# trained results the most; `make nbval-matrix` runs all of them.
NBVAL_CONFIGS     = default generic avx2
NBVAL_ALL_CONFIGS = default haswell skylakex generic one-thread avx2
# One chapter per worker (its cells share one kernel, in order); two workers for the two cores.
NBVAL_RUN = $(BIN)/python -m pytest --nbval --nbval-current-env -p no:cacheprovider -n 2 --dist loadfile

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --keep-going
	@echo "Open _build/html/index.html in a browser: file://$(CURDIR)/_build/html/index.html"

test: unit nbval html browser reader-notebooks

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not browser and not site and not pdf"

nbval: $(addprefix nbval-,$(NBVAL_CONFIGS))

nbval-matrix: $(addprefix nbval-,$(NBVAL_ALL_CONFIGS))

nbval-%: $(STAMP)
	@echo "== nbval, kernel configuration '$*': $$($(BIN)/python tests/nbval_tolerance.py env $*)"
	env $$($(BIN)/python tests/nbval_tolerance.py env $*) $(NBVAL_RUN) $(NOTEBOOKS)

html: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . -W -n --keep-going

browser: $(STAMP)
	$(BIN)/python -m pytest tests -m browser

# The HTML build writes the reader's notebooks (book/_ext/klbook_notebooks.py) into _build/html/_notebooks;
# this checks them (tests/test_reader_notebooks.py: each runs alone in an empty folder) and copies them out.
reader-notebooks: $(STAMP)
	@test -d _build/html/_notebooks || $(MAKE) html
	$(BIN)/python -m pytest tests -m site -n 2
	rm -rf _build/reader-notebooks && cp -r _build/html/_notebooks/book _build/reader-notebooks

# Needs TeX Live from Debian (README). Checked by tests/test_pdf.py. An HTML build after it copies the PDF
# into the site, and every page's download menu links it (CI: make pdf, then make test).
pdf: $(STAMP)
	rm -rf _build/latex
	$(BIN)/jupyter-book build . --builder pdflatex -n --keep-going
	$(BIN)/python -m pytest tests -m "pdf and not site"

# --allow-root: Jupyter refuses to start as root (a container's usual user) without it.
lab: $(STAMP)
	$(BIN)/jupyter lab book/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Re-executes a notebook in place; no per-cell timestamps, so a refresh changes only what the chapter shows
EXECUTE = $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.record_timing=False

refresh: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make refresh NB=book/<chapter>.ipynb" && exit 2)
	$(EXECUTE) "$(NB)"
	$(BIN)/python tests/nbval_tolerance.py stamp "$(NB)"

refresh-all: $(STAMP)
	for nb in $(NOTEBOOKS); do $(EXECUTE) "$$nb" || exit 1; done
	$(BIN)/python tests/nbval_tolerance.py stamp $(NOTEBOOKS)

benchmark: $(STAMP)
	$(BIN)/python benchmarks/accuracy_speed.py

# Mutation testing (cosmic-ray) of the core modules listed in pyproject.toml, in a temporary copy of the
# tree; survivors are printed, the equivalent ones are listed in tests/MUTATION.md. Hours for a full run:
# `make mutation MUTATION_ARGS="--sample 40"` draws 40 mutants per module (seeded).
mutation: $(STAMP)
	$(BIN)/python tests/mutation_run.py $(MUTATION_ARGS)

clean:
	rm -rf _build .pytest_cache .hypothesis
