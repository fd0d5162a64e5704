# make demo : the main job (layergrad demo on SmolLM2-135M-Instruct and built-in data)
# make test : the test suite (fast unit tests on tiny random models + real-model integration tests)
# Both create .venv in the repository root on first use. TORCH pins the CPU build by default.
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.layergrad-installed

.PHONY: demo test test-fast bench clean

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

bench: $(STAMP)
	$(PY) benchmarks/cpu_vs_original.py

clean:
	rm -rf $(VENV) demo-run
