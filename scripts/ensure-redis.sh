#!/usr/bin/env bash
# Install redis-server, redis-sentinel and redis-cli (Debian packages) when redis-server is missing.
# Idempotent: does nothing when they are already installed. Tests start their own servers on free ports.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1; then
  redis-server --version
  exit 0
fi
. "$(dirname "$0")/apt-install.sh"
apt_install "redis-server is missing and apt-get is not available: install redis-server, redis-sentinel and redis-cli (Redis >= 6) yourself" redis-server redis-sentinel redis-tools
# The Debian package may start a system redis on 6379; tests never use it, and it is not needed.
redis-server --version
