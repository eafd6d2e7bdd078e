# golive: everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint layers bench bench-deps ffmpeg prometheus clean

# setup.py compiles these ingest modules with mypyc: rebuild after editing one, or the stale
# compiled module next to it would shadow the edit.
$(STAMP): pyproject.toml setup.py ingest/chunk.py ingest/timestamps.py ingest/flv.py \
          ingest/connection.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start the server with embedded defaults (RTMP 1935, HTTP 8080, in-memory store)
run: $(STAMP)
	-@$(MAKE) --no-print-directory player
	$(BIN)/golive serve $(ARGS)

## test: the whole test suite (what CI runs). The ffmpeg CLI is installed when possible for
## the tests that publish with it; without it they skip and say why.
test: $(STAMP)
	-@$(MAKE) --no-print-directory ffmpeg
	-@$(MAKE) --no-print-directory prometheus
	-@$(MAKE) --no-print-directory player browser-deps
	$(BIN)/ruff check .
	@$(MAKE) --no-print-directory layers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## layers: the import contracts of pyproject.toml (which stage may import which, no cycles).
## import-linter walks a package's folder, and golive's stages live beside golive/ (mapped
## by package-dir), so it reads a copy of the sources laid out by import name.
LAYERS_DIR = build/import-layers
layers: $(STAMP)
	@rm -rf $(LAYERS_DIR) && mkdir -p $(LAYERS_DIR)/golive/chat && cp golive/*.py $(LAYERS_DIR)/golive/ && cp golive/chat/*.py $(LAYERS_DIR)/golive/chat/
	@for stage in ingest transcode packager origin; do \
	  mkdir -p $(LAYERS_DIR)/golive/$$stage && cp $$stage/*.py $(LAYERS_DIR)/golive/$$stage/; done
	cd $(LAYERS_DIR) && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports --no-cache $(CURDIR)/pyproject.toml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## ffmpeg: the ffmpeg CLI, for the tests that publish with it (Debian package)
ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; fi; }

## prometheus: Prometheus and promtool (Debian package), for the test of deploy/'s dashboard
## and alert rules. Its own system service, if the package starts one, is never used: the
## test runs its own instance on a free loopback port.
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; fi; }

## player: hls.js for the /watch page and playwright-core for the browser test, from npm
## (package.json, pinned by package-lock.json) into node_modules/, which is never committed
.PHONY: player browser-deps
player: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; fi; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## browser-deps: Debian's Chromium for the browser tests (never a browser download by
## playwright), and a colour emoji font so that the chat's reactions and gifts show in its
## screenshots
browser-deps:
	@[ -x /usr/bin/chromium ] && [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; fi; }

## bench-deps: reference servers for the benchmarks (nginx with the RTMP module) and wrk,
## the HTTP load generator of the HLS origin benchmark
bench-deps:
	@command -v nginx >/dev/null 2>&1 && [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] && command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-rtmp wrk >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-rtmp wrk >/dev/null; fi; }

BENCH_STAMP = $(VENV)/.bench-installed

# the benchmarks' own Python packages (pyproject's bench extra: the FFmpeg 9 CLI, py-spy)
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

## bench: every benchmark, one table
bench: $(BENCH_STAMP) bench-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
