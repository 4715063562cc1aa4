#!/bin/bash
# bootstrap.sh - install what Postdoc needs to build and test (Debian 12,
# apt, non-interactive), then autogen, configure and build.
#
#   scripts/bootstrap.sh [--builddir DIR] [configure options...]
#
# Idempotent: apt runs only when a package is missing, autogen only when
# the autotools inputs changed, configure only when its options changed.
# Installing never starts a service (postfix, dovecot): the tests start
# their own servers on private ports.  The build is in the source tree
# unless --builddir names another directory (out-of-tree build).
set -eu

cd "$(dirname "$0")/.."
srcdir=$(pwd)
builddir=$srcdir
if [ "${1:-}" = "--builddir" ]; then
	[ $# -ge 2 ] || { echo "bootstrap.sh: --builddir needs a directory" >&2; exit 2; }
	builddir=$2
	shift 2
fi

# The packages of shared/notes/libraries.md, plus the test tools:
# python3-pytest (integration suite), valgrind (make check-valgrind) and
# file (the tests ask libmagic's CLI what a test document is), cmark
# (libcmark-dev: campaign bodies written in Markdown), the DKIM
# library and an independent verifier, and swaks's TLS support;
# headless Chromium and python3-websocket (DevTools protocol) click the
# unsubscribe page like a person would; libcurl for the webhook and
# WebDAV plugins (the GnuTLS flavour: libetpan-dev depends on it and
# Debian's two libcurl -dev flavours conflict), nginx-extras (DAV
# module) as the WebDAV peer of their test, python3-jsonschema/yaml to
# check API answers against openapi.yaml; iproute2 for ss(8), which
# shows test_connections.py a listener's backlog.  Inbound trust:
# libspf2, libopendmarc and libunbound check SPF and DMARC and resolve
# (DKIM is libopendkim's); the tests start their own nsd (zones on
# loopback, read back with python3-dnspython) and clamd (clamav-daemon,
# offline, with a signature file the test writes).  PostgreSQL, the
# second store backend (issue 18): libpq-dev to build db_pg.c, and the
# server (postgresql) whose initdb/pg_ctl tests/pg-server runs in a
# temporary directory per test; the cluster the package makes is never
# started (the policy below) nor used.
PKGS="build-essential autoconf automake libtool pkg-config libesmtp-dev
libgmime-3.0-dev libetpan-dev libsqlite3-dev libconfig-dev libevent-dev
libmicrohttpd-dev libssl-dev libjansson-dev libmagic-dev libcmark-dev check openssl
curl swaks dovecot-imapd dovecot-pop3d postfix python3-aiosmtpd sqlite3
python3 python3-pytest valgrind file libopendkim-dev python3-dkim opendkim-tools
libnet-ssleay-perl libio-socket-ssl-perl
chromium python3-websocket clang
libcurl4-gnutls-dev nginx-extras python3-jsonschema python3-yaml
iproute2
libspf2-dev libopendmarc-dev libunbound-dev nsd python3-dnspython
clamav-daemon
postgresql libpq-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
	    grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	echo "bootstrap: installing:$missing"
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "bootstrap: need root (or sudo) to install:$missing" >&2
			exit 1
		}
		SUDO=sudo
	fi
	# No service may start during installation: policy-rc.d answering
	# 101 makes invoke-rc.d skip every start (Debian policy 9.3.3).
	policy=/usr/sbin/policy-rc.d
	added_policy=no
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		added_policy=yes
	fi
	cleanup() {
		[ "$added_policy" = yes ] && $SUDO rm -f "$policy"
		return 0
	}
	trap cleanup EXIT INT TERM
	echo "postfix postfix/main_mailer_type select No configuration" |
	    $SUDO debconf-set-selections
	$SUDO apt-get update -q
	# shellcheck disable=SC2086 # word splitting of the list is intended
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $missing
	cleanup
	trap - EXIT INT TERM
else
	echo "bootstrap: all packages present, skipping apt"
fi

# autotools: regenerate when configure is missing or older than inputs.
need_autogen=no
[ -x "$srcdir/configure" ] || need_autogen=yes
for f in configure.ac Makefile.am; do
	[ "$srcdir/$f" -nt "$srcdir/configure" ] && need_autogen=yes
done
if [ "$need_autogen" = yes ]; then
	echo "bootstrap: ./autogen.sh"
	./autogen.sh
fi

mkdir -p "$builddir"
cd "$builddir"
# config.status remembers the options it was made with, quoted.
# (autoconf drops -q from what it records).
want=$(for a in "$@"; do printf "'%s' " "$a"; done)
want=${want% }
have=$( (./config.status --config 2>/dev/null || true) | tr -d '\n')
if [ ! -f Makefile ] || [ "$have" != "$want" ] ||
    [ "$srcdir/configure" -nt config.status ]; then
	echo "bootstrap: configure $* (in $builddir)"
	"$srcdir/configure" -q "$@"
fi

echo "bootstrap: make -j2 (in $builddir)"
make -j2
