#!/bin/sh
# The layer table of scripts/check-layers over this source tree: fails
# when a file includes a header across a forbidden line (docs/architecture.md).
top=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$top/scripts/check-layers" --root "$top"
