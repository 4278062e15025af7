#!/usr/bin/env bash
# Install the system packages magicktune needs (ImageMagick and its MagickWand library), plus any extra
# Debian packages named as arguments. Only acts where something is missing; needs root or sudo for apt.
set -euo pipefail

need=()
# Detect ImageMagick by what it prints, never by a path existing: /usr/local/bin/convert may be a stand-in.
if ! { magick -version 2>/dev/null || convert -version 2>/dev/null; } | grep -q '^Version: ImageMagick'; then
    need+=(imagemagick)
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libMagickWand'; then
    need+=(libmagickwand-dev)
fi
for pkg in "$@"; do
    command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
elif command -v brew >/dev/null 2>&1; then
    brew install imagemagick "${@}"
else
    echo "magicktune needs ImageMagick ${need[*]}: install it with your package manager" \
         "(apt-get install imagemagick, brew install imagemagick, or conda install -c conda-forge imagemagick)" >&2
    exit 1
fi
