# Two commands on a fresh machine with Python 3.11 and make:  make demo | make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-slow typecheck bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned first (on this project's machines pip takes a local CPU wheel of 2.13.0), so that no extra
	# pulls another build; torch stays an optional extra: the core and `make demo` do not need it.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,torch,onnx,report,sweep,examples,lightning]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out demo-output

# static types first (config: [tool.mypy] in pyproject.toml), then the tests
typecheck: $(STAMP)
	$(BIN)/python -m mypy verifier theorems

# two pytest workers on two cores: one BLAS thread each avoids oversubscription
test: $(STAMP) typecheck
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests verifier theorems

test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=thorough OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 -p no:doctest tests/slow --override-ini="addopts=-ra"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
