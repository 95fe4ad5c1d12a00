#!/usr/bin/env bash
# Installs the Debian packages the test suite starts for real: tshark (reference RTP analysis),
# sipp, influxd, prometheus, iperf3 and rt-tests' cyclictest (benchmark references), nftables + iproute2 (impaired network
# namespaces), libcap2-bin/util-linux (setpriv, capsh: runs without CAP_NET_RAW), GNU time.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  tshark sip-tester influxdb influxdb-client prometheus iperf3 rt-tests nftables iproute2 \
  libcap2-bin util-linux procps time >/dev/null
# sip-ping over TLS: Debian's sipp is built without OpenSSL, so haproxy terminates TLS in front of it.
$SUDO apt-get install -y -qq --no-install-recommends haproxy openssl >/dev/null
# Report and collector pages in a real browser (playwright-core drives Debian's chromium; Playwright's
# own browser download does not work here); pdftotext reads the printed PDF's first page.
$SUDO apt-get install -y -qq --no-install-recommends chromium poppler-utils fonts-dejavu-core >/dev/null
# Host checks: systemd-journal-remote writes the test journals journalctl reads; unshare/nsenter
# (util-linux) hold the tests' tmpfs mounts in a private mount namespace.
$SUDO apt-get install -y -qq --no-install-recommends systemd-journal-remote systemd util-linux >/dev/null
# The collector's PostgreSQL store: tests initdb their own throwaway cluster in a temp directory (as
# the postgres user the package creates) on a free port with its socket in that directory, so the
# cluster Debian's postinst creates (and starts where services may start) on 5432 is neither used
# nor in the way. The server binaries live in /usr/lib/postgresql/<version>/bin, off the PATH.
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# DSCP path trace benchmark: Debian's traceroute as the reference (npm run bench:trace).
$SUDO apt-get install -y -qq --no-install-recommends traceroute >/dev/null
echo "test dependencies installed: $(tshark --version | head -1); $(influxd version 2>/dev/null | head -1); $(prometheus --version 2>&1 | head -1)"
