#!/usr/bin/env bash
# make lint's proto checks: buf lint (STANDARD, with the exceptions buf.yaml
# gives reasons for) and buf breaking against the last released schemas
# (protos/released/v1.binpb). `scripts/buf.sh release` records the current
# schemas as the release: run it only when a new release is cut.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BUF=node_modules/.bin/buf

command -v npm >/dev/null || { echo "error: npm is needed for buf (make system installs it)" >&2; exit 1; }
[ -x "$BUF" ] || npm ci --no-audit --no-fund --ignore-scripts --silent

# The google/api protos the schemas import, from the pinned wheel protoc also uses.
deps=build/protodeps/google/api
mkdir -p "$deps"
src=$("$PYTHON" -c 'import pathlib; from google.api import http_pb2; print(pathlib.Path(http_pb2.__file__).parent)')
cp "$src"/{annotations,http,field_behavior,resource,client,launch_stage}.proto "$deps"/

if [ "${1:-}" = release ]; then
  "$BUF" build protos --exclude-source-info -o protos/released/v1.binpb
  echo "recorded protos/released/v1.binpb"
  exit 0
fi
"$BUF" lint
"$BUF" breaking protos --against protos/released/v1.binpb
