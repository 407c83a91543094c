#!/usr/bin/env bash
# The project's test command (README, CI): lint and types, unit tests (no services), then the
# integration tests against a real Kafka broker and Redis that this script brings up on
# 127.0.0.1 and stops again (only what it started) when it ends.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
py=.venv/bin/python

echo "== lint and types"
"$py" -m ruff check .
"$py" -m ruff format --check .
"$py" -m mypy

# line coverage of both runs together, subprocesses included (pyproject.toml [tool.coverage])
"$py" -m coverage erase

echo "== unit tests (no services)"
"$py" -m pytest tests/unit -q -n 2 --cov --cov-report=  # two processes: coverage doubles the time

echo "== integration tests (real Kafka and Redis on 127.0.0.1)"
started=$("$py" -m quorum.services status >/dev/null 2>&1 && echo no || echo yes)
if [[ $started == yes ]]; then
    trap 'scripts/services.sh down' EXIT
fi
scripts/services.sh up
"$py" -m pytest tests/integration -q -m integration --cov --cov-append --cov-report=

echo "== line coverage (unit + integration, subprocesses included)"
"$py" -m coverage report
"$py" scripts/coverage_gate.py
