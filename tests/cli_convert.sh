#!/usr/bin/env bash
# tests/cli_convert.sh REEL - `reel convert`: a model folder rewritten as F16 keeps every tensor
# (as F16), copies the configs, still generates, and bad input gets the documented exit codes.
set -u
reel="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if eval "$2"; then echo "  ok   $1"; pass=$((pass+1)); else echo "  FAIL $1"; fail=$((fail+1)); fi; }

src=tests/fixtures/models/tiny_a
"$reel" convert "$src" "$tmp/h" --dtype f16
check "convert exits 0" "[ $? -eq 0 ]"
info=$("$reel" info "$tmp/h")
check "unet tensors all F16" "echo \"\$info\" | grep -q 'UNetMotionModel, 370 tensors, .* F16 x370'"
check "configs copied byte for byte" "cmp -s $src/unet/config.json $tmp/h/unet/config.json && cmp -s $src/tokenizer/vocab.json $tmp/h/tokenizer/vocab.json"
check "no partial files left" "[ -z \"\$(find $tmp/h -name '*.partial')\" ]"
"$reel" generate "a red circle" --model "$tmp/h" --frames 4 --steps 2 -W 32 -H 32 -q -o "$tmp/c.mp4"
check "F16 folder generates" "[ $? -eq 0 ] && [ -s $tmp/c.mp4 ]"

"$reel" convert "$tmp/nope" "$tmp/x" 2>"$tmp/err"; rc=$?
check "missing source: exit 3" "[ $rc -eq 3 ] && grep -q 'no such file' $tmp/err"
"$reel" convert "$src" "$tmp/y" --dtype f8 2>"$tmp/err"; rc=$?
check "bad dtype: exit 2" "[ $rc -eq 2 ] && grep -q 'f16, bf16 or f32' $tmp/err"
printf 'garbage' > "$tmp/bad.safetensors"
"$reel" convert "$tmp/bad.safetensors" "$tmp/out.safetensors" 2>"$tmp/err"; rc=$?
check "corrupt file: exit 4, nothing written" "[ $rc -eq 4 ] && [ ! -e $tmp/out.safetensors ]"

echo "cli_convert: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
