#!/usr/bin/env bash
# THE test command: bash scripts/run_tests.sh [pytest args...]
# Installs what a fresh Debian machine lacks (system packages need root),
# builds the docs with warnings as errors, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# 1. System packages (Debian).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# the proxy of the tests across processes; /usr/sbin is not on every user's PATH
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)  # the benchmarks pin processes to cores
command -v npm >/dev/null 2>&1 || missing+=(npm)  # Debian's npm brings nodejs
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)  # Debian splits ensurepip out of python3
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "run_tests: installing ${missing[*]}" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "run_tests: missing system packages: ${missing[*]}" >&2
        echo "run_tests: run as root, or first: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

# 2. Python virtualenv with the package and its test extra.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstall only when packaging metadata or the package's presence changed.
stamp=.venv/.rain_ws-install-stamp
want="$(cat pyproject.toml setup.cfg MANIFEST.in 2>/dev/null | cksum) pkg=$([ -f rain_ws/__init__.py ] && echo 1 || echo 0)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/pip install -q -e '.[test]'
    printf '%s\n' "$want" > "$stamp"
fi

# 3. JavaScript dependencies: the official clients, socket.io server and jquery
#    for the tests, and the Node socket.io server the bench smoke test runs.
for dir in tests/js bench/node; do
    [ -f "$dir/package.json" ] || continue
    (
        cd "$dir"
        if [ ! -f node_modules/.rain_ws-stamp ] \
            || [ package.json -nt node_modules/.rain_ws-stamp ] \
            || { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.rain_ws-stamp ]; }; then
            if [ -f package-lock.json ]; then
                npm ci --no-audit --no-fund
            else
                npm install --no-audit --no-fund
            fi
            mkdir -p node_modules && touch node_modules/.rain_ws-stamp
        fi
    )
done

# 4. Docs (warnings are errors).
.venv/bin/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

# 5. The test suite.
exec .venv/bin/python -m pytest "$@"
