#!/bin/sh
# Installs what nabla needs on Debian/Ubuntu (if anything is missing) and
# configures the release build in ./build. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

# zlib reads gzipped IDX files; the Fashion-MNIST files and numpy serve the
# examples and the safetensors interoperability test; graphviz renders the
# graph drawings; cairo draws the examples' charts (the library itself does
# not link it); the fortune files are char_lm's default text; Open MPI
# builds nabla_dist, the data-parallel layer, and runs its tests (libnabla
# itself never links it).
packages="build-essential meson ninja-build pkg-config libsleef-dev zlib1g-dev
libcairo2-dev dataset-fashion-mnist python3 python3-numpy graphviz doxygen
fortunes libopenmpi-dev openmpi-bin"
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing$missing"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release
fi
