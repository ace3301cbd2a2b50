#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints the URL to use.
#
#   eval "$(tools/pg.sh start DIR)"   # exports IPSEITY_TEST_DATABASE_URL, PG_DIR
#   tools/pg.sh stop DIR [fast|immediate]   # immediate: a crash, as for a server stuck
#                                            # in recovery
#
# Installs Debian's postgresql package when no server binaries are found (as root, or
# with sudo). The cluster lives in DIR, listens only on a Unix socket in DIR (no TCP
# port, so parallel runs cannot collide), and trusts the local user: it is for tests,
# never for data. As root the server runs as the `postgres` user, which PostgreSQL
# requires.
set -euo pipefail
cmd="${1:?usage: pg.sh start|stop DIR}"
dir="${2:?usage: pg.sh start|stop DIR}"

find_bin() {
  local b
  for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && { echo "$b"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

bin="$(find_bin || true)"
if [ -z "$bin" ]; then
  echo "pg.sh: installing PostgreSQL from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
    || { $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
  bin="$(find_bin)"
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U ipseity -E UTF8 --no-locale >/dev/null
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -c listen_addresses='' -c fsync=on" start >/dev/null
    as_owner "$bin/createdb" -h "$dir" -U ipseity ipseity_test 2>/dev/null || true
    echo "export IPSEITY_TEST_DATABASE_URL='postgres://ipseity@localhost/ipseity_test?host=$dir'"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w stop >/dev/null
    ;;
  *)
    echo "usage: pg.sh start|stop DIR" >&2
    exit 2
    ;;
esac
