#!/bin/sh
# Adds extra CA certificates to the system bundle, for builds behind a TLS-inspecting proxy:
# the PEM text of the build argument EXTRA_CA_CERTS, and the PEM file at EXTRA_CA_URL. Each
# networked step runs this first. A URL keeps the layer cache valid when the proxy's CA is
# rotated (the cache key is the URL, not the certificate). Nothing to do when both are empty.
set -eu
pem="${EXTRA_CA_CERTS:-}"
if [ -n "${EXTRA_CA_URL:-}" ]; then
  fetched="$(python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())' "$EXTRA_CA_URL")" \
    || { echo "could not fetch EXTRA_CA_URL=$EXTRA_CA_URL" >&2; exit 1; }
  pem="$pem
$fetched"
fi
printf '%s' "$pem" | grep -q 'BEGIN CERTIFICATE' || exit 0
command -v update-ca-certificates >/dev/null || { echo "extra CA certificates given, but the base image has no ca-certificates package" >&2; exit 1; }
mkdir -p /usr/local/share/ca-certificates
printf '%s\n' "$pem" > /usr/local/share/ca-certificates/extra-build.crt
update-ca-certificates >/dev/null 2>&1
