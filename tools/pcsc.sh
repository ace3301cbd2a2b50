#!/usr/bin/env bash
# A PC/SC stack for the reader test (crates/ipseity-cli/tests/pcsc_reader.rs): pcscd
# with the vsmartcard virtual reader (vpcd), behind which the test serves a simulated
# chip. Installs Debian's pcscd, libpcsclite-dev and vsmartcard-vpcd when missing (as
# root, or with sudo), and starts pcscd unless one runs.
#
#   tools/pcsc.sh install           # the packages only (the `pcsc` feature's build needs
#                                   # libpcsclite-dev, even to be checked)
#   tools/pcsc.sh start [PIDFILE]   # exit 0 when vpcd listens on 127.0.0.1:35963
#   tools/pcsc.sh stop [PIDFILE]    # stops the pcscd that start recorded in PIDFILE
#
# A pcscd already running is used and never stopped: only one this script started (and
# recorded in PIDFILE, by default in TMPDIR) is.
set -euo pipefail
cmd="${1:?usage: pcsc.sh install|start|stop [PIDFILE]}"
pidfile="${2:-${TMPDIR:-/tmp}/ipseity-pcscd.pid}"
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

# Looked up rather than connected to: a connection would be taken for the card.
# (35963 is 8C7B; state 0A is LISTEN.)
listening() { grep -qi ':8C7B 00000000:0000 0A' /proc/net/tcp 2>/dev/null; }

install_packages() {
    pkgs=()
    command -v pcscd >/dev/null 2>&1 || pkgs+=(pcscd)
    [ -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || pkgs+=(vsmartcard-vpcd)
    command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
    pkg-config --exists libpcsclite 2>/dev/null || pkgs+=(libpcsclite-dev)
    if [ "${#pkgs[@]}" -gt 0 ]; then
      echo "pcsc.sh: installing ${pkgs[*]} from Debian's packages" >&2
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 \
        || { $sudo apt-get update -q >&2 \
             && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; }
    fi
}

case "$cmd" in
  install)
    install_packages
    ;;
  start)
    install_packages
    if ! pgrep -x pcscd >/dev/null 2>&1; then
      $sudo mkdir -p /run/pcscd
      $sudo pcscd
      sleep 1
      pgrep -x pcscd > "$pidfile"
    fi
    for _ in $(seq 50); do listening && exit 0; sleep 0.2; done
    echo "pcsc.sh: pcscd runs but vpcd does not listen on 127.0.0.1:35963" >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      $sudo kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: pcsc.sh install|start|stop [PIDFILE]" >&2
    exit 2
    ;;
esac
