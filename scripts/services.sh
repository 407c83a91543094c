#!/usr/bin/env bash
# Start, stop or inspect the local Kafka broker and Redis used by quorum (no Docker needed).
#   scripts/services.sh up|down|status [--only kafka|redis]
# Runs `python -m quorum.services` from the repository root with the project's venv if present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
exec "$py" -m quorum.services "$@"
