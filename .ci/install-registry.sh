#!/bin/sh
# Installs what the registry end-to-end tests (tests/e2e/registry/) need:
#   docker-registry  Debian's build of the CNCF distribution registry (/usr/bin/docker-registry);
#                    the tests start their own instances on loopback ports.
#   apache2-utils    htpasswd, for the basic-auth registry.
#   openssl          signs the tokens of the bearer-token registry's test token server.
# Idempotent: does nothing when all are present, and runs `apt-get update` only when
# something is missing (the package lists of a fresh image may be stale or absent).
set -eu

missing=""
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || missing="$missing docker-registry"
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"

if [ -z "$missing" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086  # $missing is a word list on purpose
$SUDO apt-get install -y --no-install-recommends $missing
