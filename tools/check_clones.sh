#!/bin/sh
# tools/check_clones.sh [BUILD_DIR] - the multi-versioned kernels give the same bits at every
# ISA. Builds tools/check_clones.c against core/ops_act.c, ops_attn.c, ops_norm.c compiled
# with -DRL_NO_CLONES for one ISA at a time (baseline x86-64, AVX2, AVX-512, -march=native;
# the ones this CPU can run), and against BUILD_DIR's libreel.a as built (ifunc dispatch),
# at 1 and 2 threads, then requires identical output from all. Run from the repository root
# after `ninja -C BUILD_DIR`. Exit status 0 when all agree.
set -eu
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libs="$(pkg-config --libs openblas libcjson fftw3f libutf8proc libavcodec libavformat libavutil libswscale) -lm"
inc="-I. -I$(pkg-config --variable=includedir openblas)"
for d in /usr/include/x86_64-linux-gnu/openblas-openmp; do [ -d "$d" ] && inc="$inc -I$d"; done
cflags="-std=c11 -O3 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fno-math-errno -fopenmp -DNDEBUG -w"
flags_of() { grep -o -w "$1" /proc/cpuinfo | head -1; }
variants="base"
[ -n "$(flags_of avx2)" ] && variants="$variants avx2"
[ -n "$(flags_of avx512f)" ] && variants="$variants avx512"
variants="$variants native"
# as built: the library's own objects, ifunc picks the clone
gcc $cflags $inc tools/check_clones.c "$build/libreel.a" -o "$tmp/asbuilt" $libs
"$tmp/asbuilt" 1 >"$tmp/asbuilt.1"
"$tmp/asbuilt" 2 >"$tmp/asbuilt.2"
status=0
for v in $variants; do
    case $v in
        base) isa="-march=x86-64" ;;
        avx2) isa="-march=x86-64 -mavx2" ;;
        avx512) isa="-march=x86-64 -mavx2 -mavx512f" ;;
        native) isa="-march=native" ;;
    esac
    objs=""
    for f in ops_act ops_attn ops_norm; do
        gcc $cflags $isa -DRL_NO_CLONES $inc -c core/$f.c -o "$tmp/$f.$v.o"
        objs="$objs $tmp/$f.$v.o"
    done
    gcc $cflags $inc tools/check_clones.c $objs "$build/libreel.a" -o "$tmp/$v" $libs
    for t in 1 2; do
        "$tmp/$v" $t >"$tmp/$v.$t"
        if cmp -s "$tmp/$v.$t" "$tmp/asbuilt.1"; then
            echo "ok   $v ($isa), $t thread(s): same bits as the default build"
        else
            echo "FAIL $v ($isa), $t thread(s) differs from the default build:"
            diff "$tmp/asbuilt.1" "$tmp/$v.$t" || true
            status=1
        fi
    done
done
if cmp -s "$tmp/asbuilt.1" "$tmp/asbuilt.2"; then
    echo "ok   default build: 1 vs 2 threads"
else
    echo "FAIL default build: 1 vs 2 threads"; status=1
fi
wc -l <"$tmp/asbuilt.1" | sed 's/^/     kernels hashed: /'
exit $status
