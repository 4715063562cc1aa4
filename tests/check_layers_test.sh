#!/bin/sh
# scripts/check-layers can fail: a small tree that follows the table
# passes; one violation of each kind planted in it is named, line by line,
# and makes the check exit 1.  Works on a read-only source tree (distcheck).
top=$(cd "$(dirname "$0")/.." && pwd)
check="python3 $top/scripts/check-layers"
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
mk() {	# mk FILE LINE...: write a file of the scratch tree
	f=$tmp/$1; shift
	mkdir -p "$(dirname "$f")"
	printf '%s\n' "$@" > "$f"
}
mk gateway/include/postdoc/plugin.h '/* the ABI */'
mk gateway/src/lib/util.h '/* util */'
mk gateway/src/store/store.h '#include "store_int.h"'
mk gateway/src/store/store_int.h '/* private */'
mk gateway/src/store/records.h '/* rows */'
mk gateway/src/api/api.h '#include "lib/util.h"'
mk gateway/src/api/api.c '#include "api.h"' '#include "store/records.h"' \
	'/* store_open() in a comment */' 'static struct store_dossier *d;' \
	'int api_x(void) { return sizeof(struct store_dossier); }'
mk gateway/src/smtp/smtp_session.c '#include "lib/util.h"'
mk gateway/src/cli/cli.c '#include "postdoc/plugin.h"'
mk plugins/common/sync_name.h '#include "postdoc/plugin.h"'
mk plugins/demo/demo.c '#include "postdoc/plugin.h"' '#include "../common/sync_name.h"'

out=$($check --root "$tmp"); rc=$?
if [ $rc -ne 0 ]; then
	echo "FAIL: a clean tree fails (exit $rc):"; echo "$out"; fail=1
else
	echo "ok: clean tree passes: $out"
fi

# One violation of each kind.
mk gateway/src/web/http.c '#include "lib/util.h"' '#include "store/store.h"'
mk gateway/src/smtp/smtp_server.c '#include "api/api.h"'
mk gateway/src/cli/cli_args.c '#include "store/store_int.h"'
mk gateway/src/api/api_res.c '#include "api.h"' '' \
	'int f(void) { return store_foo(1); }'
mk plugins/webhook/webhook.c '#include "postdoc/plugin.h"' \
	'#include "pd_build.h"' '#include "../../gateway/src/lib/util.h"'
mk gateway/src/cli/main.c '#include "web/http.h"'
mk gateway/src/store/commit.c '#include "plugin/plugin_host.h"'
mk gateway/src/plugin/plugin_host.h '/* host */'

out=$($check --root "$tmp"); rc=$?
echo "$out"
[ $rc -eq 1 ] || { echo "FAIL: exit $rc, not 1"; fail=1; }
expect() {	# expect PATTERN WHAT: a line of the report matches PATTERN
	if printf '%s\n' "$out" | grep -q -- "$1"; then
		echo "ok: $2"
	else
		echo "FAIL: not reported: $2 ($1)"; fail=1
	fi
}
expect '^gateway/src/web/http.c:2: web includes store/store.h: ' \
	'a front end including store/store.h'
expect '^gateway/src/smtp/smtp_server.c:1: smtp includes api/api.h: ' \
	'smtp including api/'
expect '^gateway/src/cli/cli_args.c:1: cli includes store/store_int.h: a private header' \
	'a private header from another folder'
expect '^gateway/src/api/api_res.c:3: api calls store_foo(): ' \
	'a front end calling store_foo()'
expect '^plugins/webhook/webhook.c:2: plugin includes pd_build.h: ' \
	'a plugin including the build header'
expect '^plugins/webhook/webhook.c:3: plugin includes ../../gateway/src/lib/util.h: ' \
	'a plugin including a core header'
expect '^gateway/src/cli/main.c:1: cli includes web/http.h: ' \
	'one front end including another'
expect '^gateway/src/store/commit.c:1: store includes plugin/plugin_host.h: ' \
	'store including plugin'
n=$(printf '%s\n' "$out" | grep -c '^[a-z].*:[0-9][0-9]*: ')
[ "$n" -eq 8 ] || { echo "FAIL: $n violations reported, 8 planted"; fail=1; }
exit $fail
