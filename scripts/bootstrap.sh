#!/usr/bin/env bash
# Sets up everything from a fresh clone: Debian packages (headless GL, nginx), a virtualenv with
# pinned Python packages, and the pinned CDK CLI + Node 22 (for jsii) from npm.
#   scripts/bootstrap.sh            everything (make setup, make test): requirements.txt + requirements-dev.txt + npm
#   scripts/bootstrap.sh --runtime  what the pipeline runs on (make run, make render): requirements.txt only;
#                                   no lint/test tools, no CDK CLI (the demo needs neither)
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_ONLY=0
case "${1:-}" in
  --runtime) RUNTIME_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac

# GL: headless rendering; nginx: the serving front (sim2cloud/serving/launcher.py says why).
DEB_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 nginx)
# chromium and its driver: the run report's browser test and README picture (sim2cloud/report/browser.py);
# the pipeline itself does not need them.
((RUNTIME_ONLY)) || DEB_PACKAGES+=(chromium chromium-driver)
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
# One stamp per install kind, named by the hash of what it installed: the full install covers the runtime one.
full_stamp=.venv/.installed-full-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
runtime_stamp=.venv/.installed-runtime-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if ((RUNTIME_ONLY)); then
  requirements=(-r requirements.txt); stamp=$runtime_stamp; covered=("$runtime_stamp" "$full_stamp")
else
  requirements=(-r requirements.txt -r requirements-dev.txt); stamp=$full_stamp; covered=("$full_stamp")
fi
installed=0
for done_stamp in "${covered[@]}"; do
  if [ -f "$done_stamp" ]; then installed=1; fi
done
if ((!installed)); then
  echo "==> installing Python packages: ${requirements[*]} (PyTorch comes from local disk when available)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${requirements[@]}"
  .venv/bin/python -m pip install -q --no-deps -e .
  # A stamp of another kind stays only while it still matches these requirement files.
  for old in .venv/.installed-*; do
    if [ -e "$old" ] && [ "$old" != "$full_stamp" ] && [ "$old" != "$runtime_stamp" ]; then rm -f "$old"; fi
  done
  touch "$stamp"
fi

if ((RUNTIME_ONLY)); then
  echo "==> runtime setup complete (make setup adds the test tools and the CDK CLI)"
  exit 0
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
