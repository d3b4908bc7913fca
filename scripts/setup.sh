#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine (Python 3.11) for Bento: a virtualenv in .venv
# with Bento installed in editable mode. Usage: scripts/setup.sh [EXTRAS]  (default: all,dev)
# A second run with the same extras and an unchanged pyproject.toml installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all,dev}"
sudo_cmd=""
if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $sudo_cmd apt-get update -q >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "$@" >/dev/null
}

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "Bento needs Python >= 3.11 ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv and installing bento-ddd[$extras] (once; a minute or more, mostly the embedded ClickHouse engine) ..."
  if ! "$python" -m venv .venv >/dev/null 2>&1; then
    apt_install python3-venv
    "$python" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
fi

# One stamp line per installed extra, with the pyproject.toml it was installed from.
stamp=.venv/.bento-installed
digest=$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest()[:16])')
missing=""
for extra in ${extras//,/ }; do
  grep -qxF "$extra $digest" "$stamp" 2>/dev/null || missing=1
done
if [ -n "$missing" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"
  for extra in ${extras//,/ }; do echo "$extra $digest" >> "$stamp"; done
fi
