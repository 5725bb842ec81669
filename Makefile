# Two entry points for a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url <PyTorch CPU wheel index>" on a machine
# without CUDA whose pip would otherwise take PyPI's multi-GB CUDA build of torch.
PIP_ARGS ?=

.PHONY: setup demo test browser clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PIP_ARGS) -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/realtime-me --demo

# Debian's chromium for the real-browser tests (never a downloaded browser build).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: /usr/bin/chromium missing and not root: browser tests will be skipped"; fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache engines/*.plan engines/*.onnx
