# Sourced by the benchmark drivers that run PyTorch beside Spreadout: where each finds its two
# sides, in one place so the drivers agree on the order of the places they look.

# Sets $python to a Python that imports MODULES (a Python import list, e.g. "torch, numpy"):
# $SPREADOUT_PYTHON, else python3, else Debian's /usr/bin/python3 (a python3 earlier on PATH,
# pyenv's, does not see Debian's packages), else a virtual environment in $SPREADOUT_VENV made
# once with PACKAGES from the package registry (about 3 GB with torch).
# Usage: bench_python MODULES PACKAGE...
bench_python() {
  local probe="import $1" venv
  shift
  if [ -n "${SPREADOUT_PYTHON:-}" ]; then
    python=$SPREADOUT_PYTHON
  elif python3 -c "$probe" 2>/dev/null; then
    python=python3
  elif /usr/bin/python3 -c "$probe" 2>/dev/null; then
    python=/usr/bin/python3
  else
    venv=${SPREADOUT_VENV:-/var/cache/spreadout/bench-venv}
    if ! "$venv/bin/python" -c "$probe" 2>/dev/null; then
      echo "making $venv with $* from the package registry (once; about 3 GB)" >&2
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet "$@"
    fi
    python=$venv/bin/python
  fi
}

# Sets $spreadout to the CLI: $SPREADOUT_BIN, else the workspace's debug build, built first
# with the scripts' settings (scripts/env.sh) so it shares their artefacts.
spreadout_binary() {
  if [ -n "${SPREADOUT_BIN:-}" ]; then
    spreadout=$SPREADOUT_BIN
  else
    . scripts/env.sh
    cargo build --quiet --bin spreadout --features spreadout-app/custom-protocol --workspace >&2
    spreadout=$CARGO_TARGET_DIR/debug/spreadout
  fi
}
