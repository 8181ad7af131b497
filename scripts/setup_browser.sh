#!/usr/bin/env bash
# Install what the browser end-to-end test needs, idempotently:
#   Debian's chromium + chromium-driver (apt) and Selenium (pip, into the project venv).
# Safe to run again: each step is skipped when its result is already there.
# Run by `make browser` (a step of `make test`, before pytest); no test runs it.
# Usage: scripts/setup_browser.sh [PYTHON]   (default: .venv/bin/python beside this script)
# Exit: 0 ready; 3 cannot install here (no apt-get, not root); else the failing step's status.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup_browser: apt-get not available; install chromium and chromium-driver by hand" >&2
        exit 3
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            echo "setup_browser: need root (or passwordless sudo) to apt-get install chromium" >&2
            exit 3
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt/dpkg run to finish rather than fail on its lock; give up on an
    # unreachable mirror quickly.
    APT_OPTS=(-o DPkg::Lock::Timeout=120 -o Acquire::Retries=1 -o Acquire::http::Timeout=20)
    echo "setup_browser: installing chromium and chromium-driver with apt-get" >&2
    $SUDO apt-get "${APT_OPTS[@]}" update -q
    # With recommends (fonts-liberation, mesa): the set-up the browser test was verified with.
    $SUDO apt-get "${APT_OPTS[@]}" install -y -q chromium chromium-driver
fi

if ! "$PY" -c "import selenium" >/dev/null 2>&1; then
    "$PY" -m pip install -q "selenium>=4.15"
fi

/usr/bin/chromium --version 2>/dev/null | head -n1
/usr/bin/chromedriver --version | head -n1
"$PY" -c "import selenium; print('selenium', selenium.__version__)"
