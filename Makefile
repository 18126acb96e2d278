# refstack: two commands for a newcomer (`make up`, `make test`); the rest are for contributors.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PY := .venv/bin/python

.PHONY: up down status test fuzz lint bench deps isolation-matrix

deps:  ## Debian packages (as root, only the missing ones), uv, and the locked Python environment
	@bash stack/install-debian-packages.sh
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

up: deps  ## start the whole stack in the foreground (Ctrl-C stops everything)
	@$(PY) -m stack up

down:  ## stop the stack started by `make up` (by recorded PIDs)
	@$(PY) -m stack down

status:
	@$(PY) -m stack status

test: deps  ## every test, against a private stack of real services started by the fixtures
	@bash stack/install-debian-packages.sh test
	@$(PY) -m pytest -p no:cacheprovider

fuzz: deps  ## the contract fuzzer for longer, with a fresh seed it prints (REFSTACK_FUZZ_SEED=<seed> make fuzz replays it)
	@seed=$${REFSTACK_FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "contract fuzz seed: $$seed (replay: REFSTACK_FUZZ_SEED=$$seed make fuzz)"; \
	REFSTACK_FUZZ_SEED=$$seed REFSTACK_FUZZ_EXAMPLES=$${REFSTACK_FUZZ_EXAMPLES:-100} \
	REFSTACK_FUZZ_BOUND_S=$${REFSTACK_FUZZ_BOUND_S:-900} $(PY) -m pytest -p no:cacheprovider -s tests/security/test_contract_fuzz.py

lint: deps
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy app stack simulators lab tests bench

bench: deps
	@$(PY) -m bench.cold_start
	@$(PY) -m bench.cache
	@$(PY) -m bench.holds
	@$(PY) -m bench.pagination
	@$(PY) -m bench.rate_limits
	@$(PY) -m bench.read_scaling
	@$(PY) -m bench.sharding
	@$(PY) -m bench.search
	@$(PY) -m bench.outbox

isolation-matrix: deps  ## the Hermitage anomalies × isolation levels, measured on a private PostgreSQL
	@$(PY) -m bench.isolation_matrix
