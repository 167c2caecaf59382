#!/usr/bin/env bash
# Before the first release the schema is one migration; this rebuilds it from the models.
# After a release, add migrations with `flask --app wsgi db migrate` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f migrations/versions/0001_*.py
INSTANCE_PATH="$tmp" DATABASE_URL="sqlite:///$tmp/m.db" .venv/bin/flask --app wsgi db migrate -m "initial schema" --rev-id 0001 >/dev/null
INSTANCE_PATH="$tmp" DATABASE_URL="sqlite:///$tmp/m.db" .venv/bin/flask --app wsgi db upgrade >/dev/null
echo "regenerated $(ls migrations/versions/0001_*.py)"
