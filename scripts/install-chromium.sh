#!/bin/sh
# What the browser tests need, installed from package registries only:
# - Debian's Chromium. Browser downloads by test tools do not work on machines without
#   general internet access, so the distribution's package is used instead.
# - Debian's Noto CJK fonts, so that screenshots of Japanese (and Chinese, Korean) pages
#   show text instead of empty boxes. Checked separately from Chromium: a machine that
#   already has Chromium may still lack the fonts.
# - axe-core from the npm registry, at the version pinned in tests/e2e/axe/package-lock.json,
#   into tests/e2e/axe/node_modules/ (git-ignored), for the accessibility checks.
# Every step is skipped when its result is already there, so running it again is quick.
set -eu
cd "$(dirname "$0")/.."

missing=""
if ! command -v chromium >/dev/null 2>&1; then
    missing="chromium"
fi
if ! dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed"; then
    missing="$missing fonts-noto-cjk"
fi
if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo"
    fi
    echo "installing Debian packages for the browser tests:$missing..."
    $SUDO apt-get update -qq
    # $missing is a list of package names: split on purpose.
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    command -v chromium >/dev/null
    # Chromium reads the font list from fontconfig's cache.
    if command -v fc-cache >/dev/null 2>&1; then
        fc-cache -f >/dev/null 2>&1 || true
    fi
fi

AXE_DIR=tests/e2e/axe
pinned=$(sed -n 's/.*"axe-core": "\([0-9][0-9.]*\)".*/\1/p' "$AXE_DIR/package.json")
installed=""
if [ -f "$AXE_DIR/node_modules/axe-core/package.json" ]; then
    installed=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$AXE_DIR/node_modules/axe-core/package.json")
fi
if [ "$installed" != "$pinned" ] || [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm is needed to install axe-core for the browser tests (apt-get install npm)" >&2
        exit 1
    fi
    echo "installing axe-core $pinned for the browser tests..."
    # npm ci installs exactly the lock file's tarball and checks its integrity hash.
    npm ci --prefix "$AXE_DIR" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
fi
