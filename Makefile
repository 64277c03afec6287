# `make` builds the Cython kernels in place (as the original did); `make setup` also creates
# .venv with the pinned dependencies. MXNET selects the MXNet wheel (mxnet-cu112 for CUDA).
PYTHON ?= python3.11
MXNET ?= mxnet==1.9.1
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all setup build test test-all demo compare-dlib clean

all: build

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==24.0
	$(PY) -m pip install -q -r requirements.txt "$(MXNET)"
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

setup: $(STAMP) build

build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

# `test` runs a pairwise-covering set of the network builder options (tests/test_symbols.py);
# `test-all` runs their full product (384 one-step trainings, several minutes more).
test: setup
	$(PY) -m pytest -q tests

test-all: setup
	FULL_OPTION_MATRIX=1 $(PY) -m pytest -q tests

demo: setup
	$(PY) scripts/demo.py

# dlib's 68-point predictor beside ours on the same faces: REC=... [PREFIX=... EPOCH=...]
# (default: the shipped model)
compare-dlib: setup
	@test -n "$(REC)" || { echo "error: make compare-dlib needs REC=<.rec file>" >&2; exit 2; }
	$(PY) -m pip install -q -r requirements-dlib.txt
	$(PY) scripts/compare_dlib.py --rec $(REC) $(if $(PREFIX),--prefix $(PREFIX)) \
		$(if $(EPOCH),--epoch $(EPOCH))

clean:
	rm -rf build cxx/*.so cxx/*.c
