# make demo : the main job (layergrad demo on SmolLM2-135M-Instruct and built-in data)
# make test : the test suite (fast unit tests on tiny random models + real-model integration tests)
# make test-kernels : the fast unit tests once more under another CPU's kernels (one thread, scalar
#   PyTorch, SSE4.2 MKL): a tolerance that holds only on this machine's BLAS fails here (CI runs both)
# make docs : the documentation site into site/ (mkdocs build --strict)
# They create .venv in the repository root on first use. TORCH pins the CPU build by default.
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.layergrad-installed

.PHONY: demo test test-fast test-kernels docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/layergrad demo

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal

test-fast: $(STAMP)
	$(PY) -m pytest -q -n auto --dist worksteal -m "not integration"

test-kernels: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
	  $(PY) -m pytest -q -n auto --dist worksteal -m "not integration and not slow" -p no:cacheprovider

docs: $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) benchmarks/cpu_vs_original.py

clean:
	rm -rf $(VENV) demo-run site
