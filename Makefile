# quorum — the two commands of the README, plus the checks and benchmarks.
.PHONY: setup demo live-demo test check unit integration golden mutants bench services-up services-down clean

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/quorum backtest data/binance/spot/*.gz --out out/demo

test:
	scripts/test.sh

# the live loop for 60 s against the local exchange simulator on the sample (needs the services)
live-demo: setup services-up
	scripts/live_demo.sh

check: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

unit: setup
	.venv/bin/python -m pytest tests/unit -q

integration: setup services-up
	.venv/bin/python -m pytest tests/integration -q -m integration

# rewrite the regression golden (tests/fixtures/golden.json), printing old and new scores
golden: setup
	.venv/bin/python -m tests.goldens --write

# inject each known bug in a scratch copy; tests/unit must catch every one (a few minutes)
mutants: setup
	.venv/bin/python scripts/mutants.py

bench: setup
	.venv/bin/python -m bench.bench_backtest

services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

clean:
	rm -rf out bench/out .pytest_cache .mypy_cache .ruff_cache
