#!/usr/bin/env bash
# Sets up a fresh machine: system tools (gdb, zstd, lz4, xz, gcc) where missing, then
# .venv at the repo root with the project installed. Idempotent; pass --test to add the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=(gdb zstd lz4 xz gcc g++)
# The test suite drives the dashboard in a real headless Chromium.
[ "${1:-}" = "--test" ] && tools+=(chromium chromedriver)
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  declare -A pkg=([gdb]=gdb [zstd]=zstd [lz4]=lz4 [xz]=xz-utils [gcc]=gcc [g++]=g++ [chromium]=chromium
                  [chromedriver]=chromium-driver)
  packages=()
  for tool in "${missing[@]}"; do packages+=("${pkg[$tool]}"); done
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${packages[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install ${packages[*]}) and run again" >&2
    exit 1
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
stamp=".venv/.installed${extras:+-test}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the project${extras:+ with test tools} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/coredump-agent --help >/dev/null
  touch "$stamp"
fi
