#!/bin/bash
# test.sh - install, build and run every test: the Check unit tests and
# the pytest integration suite (make check), then print one line
# "N passed, N failed[, N skipped]" and exit non-zero if anything failed.
#
#   scripts/test.sh               in-tree build, make check
#   scripts/test.sh --sanitizers  ASan+UBSan build of a copy of the tree
#                                 (tests/tmp/sanitizers), make check
#   scripts/test.sh --valgrind    in-tree build, make check-valgrind
#   scripts/test.sh --repeat N    build once, then make check N times in
#                                 a row: each run's line, then "M of N
#                                 runs passed"; non-zero if any failed
#
# TESTS="tests/unit/lib/test_config ..." limits make check to those
# programs (e.g. to repeat a suspect one).
# The hostile corpus is read from ../shared (or $POSTDOC_SHARED); without
# it the corpus tests are reported as skipped.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
srcdir=$(pwd)
mode=plain
repeat=1
while [ $# -gt 0 ]; do
	case $1 in
	--sanitizers) mode=sanitizers ;;
	--valgrind) mode=valgrind ;;
	--repeat)
		# A flaky test shows up as one run out of N: repeat to find it.
		case ${2:-} in
		'' | *[!0-9]* | 0)
			echo "test.sh: --repeat needs a count of 1 or more" >&2
			exit 2
			;;
		esac
		repeat=$2
		shift
		;;
	--repeat=*)
		repeat=${1#--repeat=}
		case $repeat in
		'' | *[!0-9]* | 0)
			echo "test.sh: --repeat needs a count of 1 or more" >&2
			exit 2
			;;
		esac
		;;
	-h | --help)
		sed -n '2,19s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "test.sh: unknown option $1 (try --help)" >&2
		exit 2
		;;
	esac
	shift
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

# summarize BUILDDIR MAKE_RC: sum the Check summaries of the unit tests
# and pytest's junit report into one line; exit 1 if anything failed.
summarize() {
/usr/bin/python3 - "$1" "$2" <<'PY'
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
}

# Build once (a failed build fails every run: stop there), then run.
if ! make -C "$builddir" -j2 >/dev/null; then
	echo "test.sh: the build failed (make -C $builddir)" >&2
	exit 1
fi
passed_runs=0
for run in $(seq 1 "$repeat"); do
	of=""
	[ "$repeat" -gt 1 ] && of=", run $run of $repeat"
	echo "test.sh: make $target (in $builddir$of)"
	# Each run's summary counts that run only: drop the last results.
	find "$builddir/tests" -name '*.trs' -print | while read -r trs; do
		rm -f "$trs" "${trs%.trs}.log"
	done
	rm -f "$builddir/tests/tmp/pytest-junit.xml"
	make -C "$builddir" -j2 "$target" VERBOSE=1 ${TESTS:+TESTS="$TESTS"}
	line=$(summarize "$builddir" $?)
	rc=$?
	if [ "$repeat" -gt 1 ]; then
		echo "run $run: $line"
	else
		echo "$line"
	fi
	[ "$rc" -eq 0 ] && passed_runs=$((passed_runs + 1))
done
if [ "$repeat" -gt 1 ]; then
	echo "$passed_runs of $repeat runs passed"
fi
[ "$passed_runs" -eq "$repeat" ]
