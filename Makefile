# The quick start is `make demo` and `make test`; `make bench` runs the benchmarks. Each installs what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-im7 check bench system venv clean

system:
	@bash scripts/install-system.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: system $(STAMP)

# Lint, format and types first: they take seconds, the tests minutes.
check: venv
	$(PY) -m ruff check magicktune tests benchmarks
	$(PY) -m ruff format --check magicktune tests benchmarks
	$(PY) -m mypy

test: check
	$(PY) -m pytest -q

# The fast suite under ImageMagick 7 Q16 and Q16-HDRI, in a Debian trixie chroot cached outside the repo
# (needs root; builds the root once, a few minutes). Never touches this .venv.
test-im7:
	@bash scripts/im7.sh $(IM7_ARGS)

demo: venv
	$(PY) -m magicktune.demo

bench: venv
	@bash scripts/install-system.sh ffmpeg pngquant gifsicle
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
