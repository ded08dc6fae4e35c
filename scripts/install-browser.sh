#!/usr/bin/env bash
# Installs the browser the browser tests drive: Debian's `chromium` package (/usr/bin/chromium).
# Playwright (a Python package from the `test` extras) launches this binary by path; its own
# browser download (`playwright install`) is never used. Idempotent: a no-op when chromium is
# already there. Never fails the build: without apt (or root/sudo) it prints what is missing
# and the browser tests skip, naming it (tests/browser/conftest.py).
set -uo pipefail

CHROMIUM="${O2C_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

say() { echo "install-browser: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found: cannot install Debian's chromium; the browser tests will be skipped."
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    say "not root and no password-less sudo: cannot run apt-get install chromium; the browser tests will be skipped."
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
say "installing Debian's chromium (apt-get install --no-install-recommends chromium) ..."
# A package list is needed first; refresh it only when chromium is not known to apt yet.
if ! apt-cache show chromium >/dev/null 2>&1 || [ -z "$(apt-cache policy chromium 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)')" ]; then
    $SUDO apt-get update -qq || say "apt-get update failed; trying the install with the lists there are."
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    # The lists may be stale (a version no longer on the mirror): refresh once and retry.
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ -x "$CHROMIUM" ]; then
    say "$("$CHROMIUM" --version 2>/dev/null) installed in $(( $(date +%s) - started ))s."
else
    say "chromium could not be installed; the browser tests will be skipped."
fi
exit 0
