#!/bin/sh
# run-fuzz.sh - run each libFuzzer target for FUZZ_SECONDS (default 120),
# seeded from ../shared/corpus copied into fuzz/corpus-work (ignored by
# git; the corpus is not ours to commit).  Crashes land in
# fuzz/corpus-work/crashes/; make each a file under tests/regress/.
#   fuzz/run-fuzz.sh BUILDDIR [target...]
set -u
builddir=$1; shift
srcdir=$(cd "$(dirname "$0")/.." && pwd)
shared=${POSTDOC_SHARED:-$srcdir/../shared}
work=$srcdir/fuzz/corpus-work
secs=${FUZZ_SECONDS:-120}
targets=${*:-"fuzz_smtp_path fuzz_mustache fuzz_config fuzz_intake fuzz_smtp_session"}
mkdir -p "$work/crashes"
seed() {	# target -> seed dir
	d=$work/$1; mkdir -p "$d"
	case $1 in
	fuzz_intake) cp -n "$shared"/corpus/mime/*.eml "$d"/ 2>/dev/null ;;
	fuzz_smtp_path) printf '<a@b.example> SIZE=100 BODY=8BITMIME' > "$d/s1"
		printf '<d-abcdefgh@dossiers.example>' > "$d/s2"
		printf '<"q\\"x"@[127.0.0.1]> SMTPUTF8' > "$d/s3"
		printf '<>' > "$d/s4" ;;
	fuzz_mustache) cp -n "$srcdir"/templates/*/*/*.mustache "$d"/ 2>/dev/null
		printf '%s' '{{#list}}{{x}}{{/list}}{{^none}}{{>self}}{{/none}}{{=<% %>=}}<%name%>' > "$d/s1" ;;
	fuzz_config) cp -n "$srcdir"/conf/*.conf "$d"/ 2>/dev/null ;;
	fuzz_smtp_session) cp -n "$shared"/corpus/smtp/*.bin "$d"/ 2>/dev/null
		cp -n "$srcdir"/tests/regress/smtp/*.bin "$d"/ 2>/dev/null ;;
	esac
	echo "$d"
}
export LSAN_OPTIONS="suppressions=$srcdir/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
rc=0
for t in $targets; do
	d=$(seed "$t")
	echo "== $t ($secs s, corpus $d)"
	"$builddir/fuzz/$t" -max_total_time="$secs" -max_len=262144 \
	    -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$work/crashes/$t-" \
	    -print_final_stats=1 "$d" 2>"$work/$t.log"
	r=$?
	grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY" "$work/$t.log"
	[ $r -eq 0 ] || rc=$r
done
exit $rc
