# bnlab: why batch normalization works.
#   make lab    set up (venv, packages, data) and open the course in JupyterLab
#   make test   set up and run the unit tests and every notebook (quick mode)
#   make run    re-execute every notebook in place in full mode (regenerates the outputs)
#   make bench  time bnlab.train.fit against hand-written training loops

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: setup data lab test unit notebooks run bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[test]"
	touch $@

setup: $(VENV)/.installed

data: setup
	$(PY) -m bnlab.data fetch fashion-mnist

# (jupyter refuses to run as root without --allow-root, e.g. in a container)
lab: data
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

# Two test workers, one thread each: small models run faster single-threaded,
# and two workers with several threads each would fight over the cores.
TEST_ENV := BNLAB_QUICK=1 OMP_NUM_THREADS=1

unit: data
	$(TEST_ENV) $(PY) -m pytest -n 2 tests/

notebooks: data
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope notebooks/

test: unit notebooks

# One thread, as the committed outputs were made: float sums in another order (more
# threads) change the last digits of the results.
run: data
	cd notebooks && BNLAB_PROGRESS=0 OMP_NUM_THREADS=1 ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=1800 $(notdir $(NOTEBOOKS))
	$(PY) scripts/clean_notebooks.py $(NOTEBOOKS)

bench: data
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/parallel_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
