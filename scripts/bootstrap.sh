#!/usr/bin/env bash
# Sets up everything from a fresh clone: Debian packages (headless GL, nginx), a virtualenv with
# pinned Python packages, and the pinned CDK CLI + Node 22 (for jsii) from npm.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# GL: headless rendering; nginx: the serving front (sim2cloud/serving/launcher.py says why); chromium and
# its driver: the run report's browser test and README picture (sim2cloud/report/browser.py).
DEB_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 nginx chromium chromium-driver)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing Python packages (PyTorch comes from local disk when available)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.installed-* && touch "$stamp"
fi

if [ -f package.json ]; then
  lockhash=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "node_modules/.installed-$lockhash" ]; then
    echo "==> installing the pinned CDK CLI and Node 22 for jsii (npm)"
    if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi
    touch "node_modules/.installed-$lockhash"
  fi
fi
echo "==> setup complete"
