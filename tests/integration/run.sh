#!/bin/sh
# The automake entry for the integration suite: pytest against real
# `postdoc serve` processes.  make check sets POSTDOC_BIN,
# POSTDOC_PLUGIN_DIR, POSTDOC_SRCDIR (and POSTDOC_WRAPPER/POSTDOC_SLOW
# under check-valgrind).  Exit status is pytest's, except that "no tests
# collected" (5) counts as a failure: an empty suite proves nothing.
set -u

builddir=$(pwd)
srcdir=${POSTDOC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
: "${POSTDOC_BIN:=$builddir/postdoc}"
: "${POSTDOC_PLUGIN_DIR:=$(dirname "$POSTDOC_BIN")/plugins/.libs}"
export POSTDOC_BIN POSTDOC_PLUGIN_DIR POSTDOC_SRCDIR="$srcdir"

# Results for scripts/test.sh's summary (tests/tmp/ is git-ignored).
mkdir -p "$builddir/tests/tmp"
junit=${POSTDOC_JUNIT:-$builddir/tests/tmp/pytest-junit.xml}
rm -f "$junit"

# Keep the source tree clean (it may be read-only under distcheck).
export PYTHONDONTWRITEBYTECODE=1

cd "$srcdir" || exit 99
/usr/bin/python3 -m pytest -q -ra -p no:cacheprovider \
	--junitxml="$junit" -o junit_family=xunit2 \
	--rootdir="$srcdir/tests/integration" \
	"$srcdir/tests/integration" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "run.sh: pytest collected no tests: failing" >&2
	rc=1
fi
exit "$rc"
