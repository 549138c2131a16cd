# hwnas: `make demo` and `make test` build the virtual environment when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# nnabla 1.39 ships wheels for Python 3.8-3.10 only: find a working python3.10
# on PATH first, then through pyenv.
PYTHON310 ?= $(shell \
	if python3.10 -c 'import sys' >/dev/null 2>&1; then command -v python3.10; \
	elif command -v pyenv >/dev/null 2>&1; then \
		for p in $$(pyenv root)/versions/3.10.*/bin/python3.10; do \
			if [ -x "$$p" ] && "$$p" -c 'import sys' >/dev/null 2>&1; then echo "$$p"; break; fi; done; \
	fi)

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON310)" ]; then \
		echo "hwnas needs Python 3.10 (nnabla 1.39 has wheels for 3.8-3.10 only)."; \
		echo "Install it, e.g. 'apt-get install python3.10 python3.10-venv' or 'pyenv install 3.10',"; \
		echo "or run 'make PYTHON310=/path/to/python3.10'."; exit 2; fi
	@[ -x $(PY) ] || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# nnabla's ONNX exporter; without its TensorFlow requirements (see pyproject.toml).
	$(PY) -m pip install --quiet --no-deps nnabla-converter==1.39.0
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hwnas run experiments/digits.yaml --out runs/digits

test: $(STAMP)
	$(PY) -m pytest -q

# Every benchmark runs (bench_learners.py alone takes ~45 min, bench_ranking.py at its full
# settings several hours: README gives its shorter command); a missed target fails at the end.
bench: $(STAMP)
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "missed targets:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) runs build *.egg-info
