#!/bin/bash
# test.sh - install, build and run every test: the Check unit tests and
# the pytest integration suite (make check), then print one line
# "N passed, N failed[, N skipped]" and exit non-zero if anything failed.
#
#   scripts/test.sh               in-tree build, make check
#   scripts/test.sh --sanitizers  ASan+UBSan build of a copy of the tree
#                                 (tests/tmp/sanitizers), make check
#   scripts/test.sh --valgrind    in-tree build, make check-valgrind
#
# The hostile corpus is read from ../shared (or $POSTDOC_SHARED); without
# it the corpus tests are reported as skipped.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
srcdir=$(pwd)
mode=plain
for arg in "$@"; do
	case $arg in
	--sanitizers) mode=sanitizers ;;
	--valgrind) mode=valgrind ;;
	-h | --help)
		sed -n '2,13s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "test.sh: unknown option $arg (try --help)" >&2
		exit 2
		;;
	esac
done

export POSTDOC_SHARED=${POSTDOC_SHARED:-$(cd "$srcdir/.." && pwd)/shared}

builddir=$srcdir
target=check
case $mode in
sanitizers)
	# An in-tree build rules out a VPATH build of the same sources
	# (configure refuses), so the sanitizer build gets its own copy.
	builddir=${POSTDOC_SAN_BUILDDIR:-$srcdir/tests/tmp/sanitizers}
	mkdir -p "$builddir"
	if git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$srcdir" ls-files -z --cached --others --exclude-standard |
		    (cd "$srcdir" && tar --null -T - -cf -) |
		    tar -C "$builddir" -xf -
	else
		tar -C "$srcdir" --exclude=./tests/tmp -cf - . | tar -C "$builddir" -xf -
	fi
	"$builddir/scripts/bootstrap.sh" --enable-sanitizers || exit 1
	# Leaks are errors; the server's stack may be large under ASan.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	;;
valgrind)
	scripts/bootstrap.sh || exit 1
	target=check-valgrind
	;;
*)
	scripts/bootstrap.sh || exit 1
	;;
esac

echo "test.sh: make $target (in $builddir)"
make -C "$builddir" -j2 "$target" VERBOSE=1
make_rc=$?

/usr/bin/python3 - "$builddir" "$make_rc" <<'PY'
# Sum the Check summaries of the unit tests and pytest's junit report.
import glob, os, re, sys
import xml.etree.ElementTree as ET

builddir, make_rc = sys.argv[1], int(sys.argv[2])
passed = failed = skipped = 0

def trs_result(log):
    try:
        with open(log[:-4] + ".trs") as f:
            m = re.search(r"^:test-result: (\S+)", f.read(), re.M)
            return m.group(1) if m else None
    except OSError:
        return None

# Unit programs sit in tests/unit/<folder>/; the layer checks in tests/.
logs = glob.glob(os.path.join(builddir, "tests/unit/**/*.log"), recursive=True)
logs += glob.glob(os.path.join(builddir, "tests/*.log"))
for log in sorted(logs):
    text = open(log, errors="replace").read()
    sums = re.findall(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", text)
    res = trs_result(log)
    bad = 0
    for c, f, e in sums:
        passed += int(c) - int(f) - int(e)
        bad += int(f) + int(e)
    if res in ("FAIL", "ERROR", "XPASS") and bad == 0:
        bad = 1          # crashed, or valgrind/sanitizer found errors
    if not sums and res == "PASS":
        passed += 1
    if res == "SKIP" and not sums:
        skipped += 1
    failed += bad

junit = os.path.join(builddir, "tests/tmp/pytest-junit.xml")
run_log = os.path.join(builddir, "tests/integration/run.log")
if os.path.exists(junit):
    root = ET.parse(junit).getroot()
    for s in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        t = int(s.get("tests", 0))
        f = int(s.get("failures", 0)) + int(s.get("errors", 0))
        k = int(s.get("skipped", 0))
        passed += t - f - k
        failed += f
        skipped += k
    if trs_result(run_log) in ("FAIL", "ERROR") and failed == 0:
        failed += 1      # pytest passed its tests but run.sh failed
elif os.path.exists(run_log):
    failed += 1          # the integration suite did not even report

if make_rc != 0 and failed == 0:
    failed = 1           # the build (or make itself) failed
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed else 0)
PY
