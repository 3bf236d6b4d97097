#!/usr/bin/env bash
# Build (once) and cache a Pyfhel wheel for this Python, offline but for PyPI.
#
# Pyfhel publishes no wheel for Python 3.11, and its sdist build clones
# Microsoft GSL, zlib and zstd from GitHub.  SEAL needs none of the three
# (they only add optional compression and span checks), so we switch them off
# in the sdist's [cpplibraries.SEAL.cmake_opts] and build from the PyPI sdist.
# The wheel is cached per Pyfhel version and Python tag; later runs reuse it.
# Prints the path of the cached wheel on its last line.
set -euo pipefail

version="${PYFHEL_VERSION:-3.5.0}"
python="${PYTHON:-python3}"
cache="${CIPHERFACE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cipherface/wheels}"
tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
mkdir -p "$cache"

wheel=$(ls "$cache"/[Pp]yfhel-"$version"-"$tag"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
  echo "$wheel"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Building Pyfhel $version for $tag (first time only, ~8 minutes on 2 cores)..." >&2
"$python" -m pip download --quiet --no-deps --no-binary pyfhel "pyfhel==$version" -d "$work" >&2
tar -xzf "$work"/[Pp]yfhel-"$version".tar.gz -C "$work"
src="$work/pyfhel-$version"
[ -d "$src" ] || src="$work/Pyfhel-$version"
sed -i -E "s/^(\s*SEAL_USE_(MSGSL|ZLIB|ZSTD)\s*=\s*)'ON'/\1'OFF'/" "$src/pyproject.toml"
if grep -qE "SEAL_USE_(MSGSL|ZLIB|ZSTD)\s*=\s*'ON'" "$src/pyproject.toml"; then
  echo "could not switch off SEAL's network dependencies in $src/pyproject.toml" >&2
  exit 1
fi
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
  "$python" -m pip wheel --quiet --no-deps "$src" -w "$work/dist" >&2
cp "$work"/dist/*.whl "$cache"/
ls "$cache"/[Pp]yfhel-"$version"-"$tag"-*.whl | head -n 1
