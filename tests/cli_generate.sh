#!/usr/bin/env bash
# tests/cli_generate.sh REEL - `reel generate` / `reel travel` / `reel info` end to end on the
# tiny_a fixture model: every output type, checked with ffprobe (codec, pixel format, frame
# count, fps, size with --scale, metadata), byte-identical reruns (also across thread counts),
# --json, Ctrl-C. Run from the repository root (meson's workdir).
set -u
REEL=${1:?usage: cli_generate.sh PATH/TO/reel}
MODEL=tests/fixtures/models/tiny_a
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { echo "  ok   $*"; pass=$((pass + 1)); }
bad() { echo "  FAIL $*"; fail=$((fail + 1)); }
check() {  # check "what" CONDITION...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
differ() { ! cmp -s "$1" "$2"; }
probe() {  # probe FILE ENTRY: one value of the video stream
    ffprobe -v error -select_streams v:0 -show_entries "stream=$2" -of default=nw=1:nk=1 "$1"
}
frames_of() {  # decoded frame count
    ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames \
        -of default=nw=1:nk=1 "$1"
}
tag() {  # tag FILE KEY (format tags; Matroska upper-cases keys)
    ffprobe -v error -show_entries format_tags -of json "$1" |
        /usr/bin/python3 -c "import json,sys; t=json.load(sys.stdin)['format'].get('tags',{}); \
t={k.lower():v for k,v in t.items()}; print(t.get('$2','<absent>'))"
}
command -v ffprobe >/dev/null || { echo "ffprobe not found"; exit 77; }

# small and quick: 32x32 (8x8 latents), 5 frames, 3 steps
BASE=(--model "$MODEL" --steps 3 --frames 5 -W 32 -H 32 --fps 10 --scale 1 -q)
PROMPT="a red circle moves left"

echo "[mp4]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --seed 42 --scale 3 -o "$TMP/a.mp4"
check "exit 0" test $? -eq 0
check "codec h264" test "$(probe "$TMP/a.mp4" codec_name)" = h264
check "pix_fmt yuv420p" test "$(probe "$TMP/a.mp4" pix_fmt)" = yuv420p
check "5 frames" test "$(frames_of "$TMP/a.mp4")" = 5
check "fps 10" test "$(probe "$TMP/a.mp4" r_frame_rate)" = 10/1
check "size 96x96 (--scale 3)" test "$(probe "$TMP/a.mp4" width)x$(probe "$TMP/a.mp4" height)" = 96x96
check "tag prompt" test "$(tag "$TMP/a.mp4" prompt)" = "$PROMPT"
check "tag seed" test "$(tag "$TMP/a.mp4" seed)" = 42
check "tag steps" test "$(tag "$TMP/a.mp4" steps)" = 3
check "no .partial left" test ! -e "$TMP/a.mp4.partial"

echo "[long prompt]"
# more tokens than the text encoder reads: a warning naming the counts (unless -q), and the clip
LONG=$(printf 'a red circle moves left %.0s' $(seq 40))
NOQ=()
for a in "${BASE[@]}"; do [ "$a" = -q ] || NOQ+=("$a"); done
"$REEL" generate "$LONG" "${NOQ[@]}" -o "$TMP/long.mp4" 2>"$TMP/long.err"
check "long prompt: exit 0, clip written" test $? -eq 0 -a -s "$TMP/long.mp4"
check "long prompt: warning with the token counts" \
    grep -q "warning: the prompt has [0-9]* tokens; the text encoder reads the first [0-9]*" "$TMP/long.err"
"$REEL" generate "$LONG" "${BASE[@]}" -o "$TMP/long.mp4" 2>"$TMP/long.err"
check "long prompt with -q: no warning" test ! -s "$TMP/long.err"
"$REEL" generate "$PROMPT" "${NOQ[@]}" -o "$TMP/short.mp4" 2>"$TMP/short.err"
check "short prompt: no warning" test "$(grep -c warning "$TMP/short.err")" = 0

echo "[determinism]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --seed 42 --scale 3 -o "$TMP/b.mp4"
check "same seed and settings: byte-identical" cmp -s "$TMP/a.mp4" "$TMP/b.mp4"
"$REEL" generate "$PROMPT" "${BASE[@]}" --seed 42 --scale 3 --threads 1 -o "$TMP/c.mp4"
check "--threads 1: byte-identical" cmp -s "$TMP/a.mp4" "$TMP/c.mp4"
"$REEL" generate "$PROMPT" "${BASE[@]}" --seed 43 --scale 3 -o "$TMP/d.mp4"
check "another seed: another clip" differ "$TMP/a.mp4" "$TMP/d.mp4"

echo "[info]"
info=$("$REEL" info "$TMP/a.mp4")
check "info exit 0" test $? -eq 0
check "info shows the prompt" grep -q "prompt *$PROMPT" <<<"$info"
check "info shows the seed" grep -q "seed *42" <<<"$info"
check "info shows h264 and 5 frames" grep -q "h264 yuv420p, 96x96, 5 frames" <<<"$info"

echo "[webm]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --negative "blurry" -o "$TMP/a.webm"
check "exit 0" test $? -eq 0
check "codec vp9" test "$(probe "$TMP/a.webm" codec_name)" = vp9
check "5 frames" test "$(frames_of "$TMP/a.webm")" = 5
check "tag negative_prompt" test "$(tag "$TMP/a.webm" negative_prompt)" = blurry

echo "[gif]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --scale 2 -o "$TMP/a.gif"
check "exit 0" test $? -eq 0
check "codec gif" test "$(probe "$TMP/a.gif" codec_name)" = gif
check "5 frames" test "$(frames_of "$TMP/a.gif")" = 5
check "size 64x64" test "$(probe "$TMP/a.gif" width)x$(probe "$TMP/a.gif" height)" = 64x64

echo "[png]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --scale 2 -o "$TMP/frames/"
check "exit 0" test $? -eq 0
check "5 PNG frames" test "$(ls "$TMP/frames" | grep -c '^[0-9]*\.png$')" -eq 5
check "frame 0: png, 64 wide" test "$(probe "$TMP/frames/0000.png" codec_name) $(probe "$TMP/frames/0000.png" width)" = "png 64"

echo "[json]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --json -o "$TMP/j.mp4" >"$TMP/j.json"
check "exit 0" test $? -eq 0
check "--json parses, settings in it" /usr/bin/python3 -c "
import json, sys
j = json.load(open('$TMP/j.json'))
assert j['file'] == '$TMP/j.mp4' and j['seed'] == 0 and j['frames'] == 5 and j['steps'] == 3, j
assert j['prompt'] == '$PROMPT' and j['seconds']['total'] >= 0, j"

echo "[long clip: context windows]"
"$REEL" generate "$PROMPT" "${BASE[@]}" --frames 11 --context 4 --overlap 2 -o "$TMP/long.mp4"
check "exit 0" test $? -eq 0
check "11 frames" test "$(frames_of "$TMP/long.mp4")" = 11
check "tag context" test "$(tag "$TMP/long.mp4" context)" = "4/2"

echo "[schedulers, FreeInit]"
for s in ddpm euler; do
    "$REEL" generate "$PROMPT" "${BASE[@]}" --scheduler $s -o "$TMP/$s.mp4"
    check "--scheduler $s: exit 0, tagged" test "$?/$(tag "$TMP/$s.mp4" scheduler)" = "0/$s"
done
"$REEL" generate "$PROMPT" "${BASE[@]}" --scheduler ddpm -o "$TMP/ddpm2.mp4"
check "ddpm: same seed, same bytes" cmp -s "$TMP/ddpm.mp4" "$TMP/ddpm2.mp4"
"$REEL" generate "$PROMPT" "${BASE[@]}" --freeinit 2 -o "$TMP/fi.mp4"
check "--freeinit 2: exit 0, 5 frames" test "$?/$(frames_of "$TMP/fi.mp4")" = "0/5"

echo "[presets]"
printf '{"frames": 9, "scale": 1, "fps": 12}' >"$TMP/p.json"
"$REEL" generate "$PROMPT" --frames 6 -p "$TMP/p.json" --model "$MODEL" --steps 2 -W 32 -H 32 -q -o "$TMP/p.mp4"
check "preset file: its fps and scale, --frames before -p still wins" \
    test "$?/$(frames_of "$TMP/p.mp4")/$(probe "$TMP/p.mp4" r_frame_rate)/$(probe "$TMP/p.mp4" width)" = "0/6/12/1/32"

echo "[travel]"
printf '{"0": "a red circle moves left", "7": "a blue square moves right"}' >"$TMP/s.json"
"$REEL" travel "$TMP/s.json" --model "$MODEL" --steps 2 -W 32 -H 32 -q --interp slerp -p "$TMP/p.json" -o "$TMP/t.mp4"
check "travel: exit 0" test $? -eq 0
check "travel: the preset file's 9 frames" test "$(frames_of "$TMP/t.mp4")" = 9
check "travel: tag prompt lists keyframes" test "$(tag "$TMP/t.mp4" prompt)" = "0:a red circle moves left | 7:a blue square moves right"
"$REEL" generate --prompt-at "0:a red circle moves left" --prompt-at "7:a blue square moves right" \
    --model "$MODEL" --steps 2 -W 32 -H 32 -q --interp slerp -p "$TMP/p.json" -o "$TMP/t2.mp4"
check "generate --prompt-at equals travel SCHEDULE" cmp -s "$TMP/t.mp4" "$TMP/t2.mp4"

printf '[{"frame": 0, "prompt": "a"}, {"frame": 11, "prompt": "b"}]' >"$TMP/s2.json"
"$REEL" travel "$TMP/s2.json" --model "$MODEL" --steps 2 -W 32 -H 32 -q -p "$TMP/p.json" -o "$TMP/t3.gif"
check "travel list form: frames extend to the last keyframe (12)" test "$?/$(frames_of "$TMP/t3.gif")" = "0/12"

echo "[Ctrl-C]"
"$REEL" generate "$PROMPT" --model "$MODEL" --steps 1000 --frames 8 -W 32 -H 32 -q \
    -o "$TMP/int.mp4" 2>"$TMP/int.err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
check "SIGINT: exit 130 (got $rc)" test $rc -eq 130
check "SIGINT: nothing under the requested name" test ! -e "$TMP/int.mp4" -a ! -e "$TMP/int.mp4.partial"
check "SIGINT: one line saying so" grep -q "interrupted" "$TMP/int.err"

echo "[fidelity: decoded frames against the generated ones]"
# the shipped model (smooth shapes on a plain background, as users see them) at the default
# x8 upscale: PNG frames are lossless, so they are the generated frames; each lossy file is
# decoded by FFmpeg and compared in RGB
SHIP=(generate "a red circle moving right on a black background" --steps 3 --seed 1 -q --threads 1)
"$REEL" "${SHIP[@]}" -o "$TMP/ship/" && "$REEL" "${SHIP[@]}" -o "$TMP/ship.mp4" &&
    "$REEL" "${SHIP[@]}" -o "$TMP/ship.webm" && "$REEL" "${SHIP[@]}" -o "$TMP/ship.gif"
check "shipped model: four outputs written" test $? -eq 0
psnr() {  # psnr FILE: mean PSNR (dB) of its frames against the PNG frames
    ffmpeg -nostdin -i "$1" -framerate 8 -i "$TMP/ship/%04d.png" \
        -lavfi "[0:v]format=rgb24[a];[1:v]format=rgb24[b];[a][b]psnr" -f null - 2>&1 |
        grep -o "average:[0-9.]*" | cut -d: -f2
}
# measured on the shipped model: mp4 44.1 dB, webm 43.7 dB, gif 51.2 dB (256-colour palette)
for f in mp4:40 webm:40 gif:33; do
    p=$(psnr "$TMP/ship.${f%%:*}")
    check "${f%%:*}: PSNR ${p:-?} dB >= ${f##*:}" \
        "$PY" -c "import sys; sys.exit(0 if float('${p:-0}') >= ${f##*:} else 1)"
done

echo "[terminal progress]"
# under a pseudo-terminal the phases show, each ending done; without one, nothing (above: -q
# aside, every run here writes no progress because stderr is a file)
LOUD=()   # BASE without -q
for a in "${BASE[@]}"; do [ "$a" = -q ] || LOUD+=("$a"); done
script -qec "\"$REEL\" generate \"$PROMPT\" ${LOUD[*]} -o \"$TMP/tty.mp4\"" /dev/null >"$TMP/tty.txt" 2>&1
for ph in "text" "denoise         3/3" "decode+encode   5/5" "reel: wrote"; do
    check "terminal shows '$ph'" grep -q "$ph" "$TMP/tty.txt"
done
"$REEL" generate "$PROMPT" "${LOUD[@]}" -o "$TMP/notty.mp4" 2>"$TMP/notty.err"
check "stderr not a terminal, no -q: exit 0, nothing on stderr" test $? -eq 0 -a ! -s "$TMP/notty.err"

echo "cli_generate: $pass passed, $fail failed"
test $fail -eq 0
