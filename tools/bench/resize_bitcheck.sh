#!/usr/bin/env bash
# resize_bitcheck.sh - checks that the working tree's resampler
# (datasets/transforms_common/src/qdata/resize.cpp) gives byte-identical
# output to the one at git revision REV, and times both. Builds with the
# flags the project uses for resize.cpp (-O3), then once more under
# AddressSanitizer (catches reads past the image). With AVX-512 the AVX2
# path is checked too (QDATA_RESIZE_NO_AVX512=1).
#
#   tools/bench/resize_bitcheck.sh [REV=HEAD] [CASES=20000]
# SPDX-License-Identifier: Apache-2.0
set -euo pipefail
rev=${1:-HEAD}
cases=${2:-20000}
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/datasets/transforms_common/src
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" show "$rev:datasets/transforms_common/src/qdata/resize.cpp" |
  sed 's/^namespace qplug_transforms {/namespace qplug_transforms_old { using qplug_transforms::Image; using qplug_transforms::ImageView; using qplug_transforms::Box;/' \
    > "$work/resize_old.cpp"
flags=(-O3 -DNDEBUG -std=c++17 -I"$src")
c++ "${flags[@]}" "$work/resize_old.cpp" "$src/qdata/resize.cpp" "$root/tools/bench/resize_bitcheck.cpp" -o "$work/check"
c++ -O1 -g -std=c++17 -fsanitize=address -I"$src" "$work/resize_old.cpp" "$src/qdata/resize.cpp" \
  "$root/tools/bench/resize_bitcheck.cpp" -o "$work/check_asan"
echo "== -O3"; "$work/check" "$cases"
echo "== -O3, AVX2 path"; QDATA_RESIZE_NO_AVX512=1 "$work/check" "$cases"
echo "== ASan"; "$work/check_asan" $((cases / 5))
echo "== ASan, AVX2 path"; QDATA_RESIZE_NO_AVX512=1 "$work/check_asan" $((cases / 5))
