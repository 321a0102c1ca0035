# Sourced by the ensure-*.sh scripts: `apt_install "<what to install by hand>" PACKAGE...` installs Debian
# packages quietly (sudo when not root), or exits 1 naming what to install when apt-get is not available.
apt_install() {
  local by_hand="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$by_hand" >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "$@" >/dev/null
}
