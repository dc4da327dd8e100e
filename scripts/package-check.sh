#!/usr/bin/env bash
# Builds the Debian package from the release build, installs it with dpkg (plus apt-get -f install for
# its dependencies), and runs the installed `nic` from its installed location.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/build.sh" release
(cd build/release && cpack -G DEB >/dev/null)
deb="$(ls -t build/release/nic-studio_*.deb | head -n 1)"
echo "package: $deb"
dpkg-deb --info "$deb" | sed -n '/Depends/p'
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO dpkg -i "$deb" || $SUDO apt-get -f install -y -q --no-install-recommends
dpkg -s nic-studio | grep -E '^(Status|Version)'
installed="$(dpkg -L nic-studio | grep -E '/bin/nic$')"
echo "installed: $installed"
"$installed" --version
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$installed" synth --out "$tmp/cohort" --count 2 --size 2048x2048 --seed 3
ls "$tmp/cohort"
man -w nic >/dev/null && echo "man page: $(man -w nic)"
