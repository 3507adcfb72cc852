#!/usr/bin/env bash
# tools/setup.sh - installs what reel needs on a Debian 12 machine (only what is missing) and
# builds the release binary build/tools/reel.
#   tools/setup.sh            dependencies + release build (portable: no -march=native)
#   tools/setup.sh --native   the same, tuned for this CPU (-Dnative=true)
#   tools/setup.sh --deps     dependencies only (with the test tools: ffmpeg, clang's fuzzer runtime)
set -euo pipefail
cd "$(dirname "$0")/.."

native=false
deps_only=false
for a in "$@"; do
    case "$a" in
        --native) native=true ;;
        --deps) deps_only=true ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

# build: compiler, meson (1.0 in bookworm), and the libraries reel links
pkgs=(gcc pkg-config meson ninja-build libopenblas-openmp-dev libcjson-dev libfftw3-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libutf8proc-dev)
# tests: ffprobe/ffmpeg decode what reel wrote; python3 (Debian's, for its json module) reads
# ffprobe's JSON in the CLI tests; clang + its runtime for the sanitizer and fuzz runs
pkgs+=(ffmpeg python3 clang libclang-rt-14-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
$deps_only && exit 0

if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release -Dnative="$native" >/dev/null
else
    meson configure build -Dnative="$native" >/dev/null
fi
ninja -C build >/dev/null
echo "setup: built build/tools/reel"
