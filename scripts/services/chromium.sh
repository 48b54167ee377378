#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (Playwright cannot download its own
# browser here; the tests launch /usr/bin/chromium). Safe to run again.
# The last line printed is an `export` that the test runner evals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

have chromium || { log "installing chromium"; apt_install chromium; }
log "$(chromium --version 2>/dev/null | head -1)"
echo "export ENVPLANE_TEST_CHROMIUM=/usr/bin/chromium"
