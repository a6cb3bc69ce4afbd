#!/usr/bin/env bash
# Download hearth's test models (see scripts/fetch_models.py) into $HEARTH_MODELS or ~/.cache/hearth/models.
set -euo pipefail
exec python3 "$(dirname "$0")/fetch_models.py" "$@"
