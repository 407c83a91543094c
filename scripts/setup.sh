#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install quorum with its dev tools. Idempotent and quick when
# nothing changed (the install is skipped while pyproject.toml is older than the marker).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: quorum needs Python 3.11 or newer ($py is $("$py" --version 2>&1))" >&2
    exit 1
fi
[[ -x .venv/bin/python ]] || "$py" -m venv .venv
marker=.venv/.quorum-installed
if [[ ! -f $marker || pyproject.toml -nt $marker ]]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$marker"
fi
