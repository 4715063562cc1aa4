#!/bin/bash
# quickstart.sh - install, build and run Postdoc from this checkout.
#
# Creates a demo account and dossier the first time (state lives in
# var/, see conf/postdoc.conf), prints how to send a first message, then
# runs `postdoc serve` in the foreground (Ctrl-C stops it).  Options are
# passed to configure (e.g. --enable-sanitizers).  POSTDOC_CONF picks
# another configuration file.
set -euo pipefail

cd "$(dirname "$0")/.."
scripts/bootstrap.sh "$@"

conf=${POSTDOC_CONF:-conf/postdoc.conf}
pd() { ./postdoc --config "$conf" "$@"; }
pd check-config >/dev/null

contact=demo@example.com
if ! pd dossier list --account DEMO --json >/dev/null 2>&1 ||
    [ "$(pd dossier list --account DEMO --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d))')" = 0 ]; then
	pd account add DEMO >/dev/null 2>&1 || true
	pd dossier create --account DEMO --contact "$contact" --ref DEMO-1 >/dev/null
fi
addr=$(pd dossier list --account DEMO --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
listen=$(pd check-config -v 2>/dev/null | sed -n 's/^server\.smtp_listen = "\(.*\)"$/\1/p' | head -n1)
listen=${listen:-127.0.0.1:2525}
api=$(pd check-config -v 2>/dev/null | sed -n 's/^api\.listen = "\(.*\)"$/\1/p' | head -n1)

cat <<MSG

Postdoc is starting on $listen with the dossier $addr
(account DEMO, contact $contact).  Send it a first message from another
terminal:

  swaks --server $listen --from $contact --to $addr --attach-type text/plain --attach-name README --attach @README

Then look at what was filed:

  ./postdoc --config $conf dossier list
  ./postdoc --config $conf dossier show <ID>
MSG
if [ -n "$api" ]; then
cat <<MSG

The JSON API is on http://$api/api/v1 (docs/api.md):

  TOKEN=\$(./postdoc --config $conf token create --account DEMO --name demo)
  curl -H "Authorization: Bearer \$TOKEN" http://$api/api/v1/dossiers
MSG
fi
echo
exec ./postdoc --config "$conf" serve
