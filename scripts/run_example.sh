#!/usr/bin/env bash
# THE run command for the example project: bash scripts/run_example.sh [addr:port]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q -e .

export DJANGO_SETTINGS_MODULE=mysite.settings
cd example_project
../.venv/bin/python manage.py migrate --noinput
exec ../.venv/bin/python manage.py runserver "${1:-127.0.0.1:8000}"
