#!/usr/bin/env bash
# tests/cli_errors.sh REEL - bad input to `reel generate` / `reel travel`: each case must print
# exactly one line on stderr ("reel: ..." naming the problem), exit with the status README.md
# documents (2 bad option, 3 file error, 4 bad model, 5 encoder, 130 interrupted), and leave
# nothing at the output path (nor a .partial). Run from the repository root (meson's workdir).
set -u
REEL=${1:?usage: cli_errors.sh PATH/TO/reel}
MODEL=tests/fixtures/models/tiny_a
TMP=$(mktemp -d)
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0
fail=0

# expect STATUS PATTERN OUT -- ARGS...: runs reel ARGS, checks status, one stderr line matching
# PATTERN (grep -E), and that OUT (and OUT.partial) do not exist afterwards
expect() {
    local want=$1 pattern=$2 out=$3
    shift 4
    "$REEL" "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    local rc=$? lines
    lines=$(wc -l <"$TMP/stderr")
    local what="reel ${*:1:6}"
    if [ $rc -ne "$want" ]; then
        echo "  FAIL $what: exit $rc, expected $want; stderr: $(head -c 300 "$TMP/stderr")"
        fail=$((fail + 1))
    elif [ "$lines" -ne 1 ]; then
        echo "  FAIL $what: $lines lines on stderr, expected 1:"
        sed 's/^/       | /' "$TMP/stderr" | head -5
        fail=$((fail + 1))
    elif ! grep -Eq -- "$pattern" "$TMP/stderr"; then
        echo "  FAIL $what: message does not match /$pattern/: $(cat "$TMP/stderr")"
        fail=$((fail + 1))
    elif [ -e "$out" ] || [ -e "$out.partial" ]; then
        echo "  FAIL $what: left $out behind"
        fail=$((fail + 1))
    else
        echo "  ok   [$rc] $(cat "$TMP/stderr")"
        pass=$((pass + 1))
    fi
    rm -rf "$out" "$out.partial"   # one failure must not cascade into the next case
}

O=$TMP/out.mp4
G=(generate "a red circle" --model "$MODEL" --steps 2 --frames 3 -W 32 -H 32 --scale 1 -q)

echo "[bad options: 2]"
expect 2 "crf 55.*0..51"        "$O" -- "${G[@]}" --crf 55 --model "$TMP/no_model" -o "$O"
expect 2 "frames.*0"            "$O" -- "${G[@]}" --frames 0 -o "$O"
expect 2 "width.*multiples? of 8" "$O" -- "${G[@]}" -W 12 -o "$O"
expect 2 "steps.*0"             "$O" -- "${G[@]}" --steps 0 -o "$O"
expect 2 "guidance.*-1"         "$O" -- "${G[@]}" --guidance -1 -o "$O"
expect 2 "guidance-rescale.*1.5" "$O" -- "${G[@]}" --guidance-rescale 1.5 -o "$O"
expect 2 "unknown output type"  "$TMP/out.avi" -- "${G[@]}" -o "$TMP/out.avi"
expect 2 "unknown option '--bogus'" "$O" -- "${G[@]}" --bogus -o "$O"
expect 2 "no prompt given"      "$O" -- generate --model "$MODEL" -o "$O"
expect 2 "needs a value"        "$O" -- "${G[@]}" -o "$O" --seed
expect 2 "seed"                 "$O" -- "${G[@]}" --seed -5 -o "$O"
expect 2 "scheduler must be one of" "$O" -- "${G[@]}" --scheduler pndm -o "$O"
expect 2 "unexpected argument"  "$O" -- "${G[@]}" "second prompt" -o "$O"
expect 2 "overlap"              "$O" -- "${G[@]}" --frames 8 --context 4 --overlap 4 -o "$O"
expect 2 "either one PROMPT or --prompt-at" "$O" -- "${G[@]}" --prompt-at "0:x" -o "$O"
expect 2 "FRAME:PROMPT"         "$O" -- generate --prompt-at "red" --model "$MODEL" -o "$O"
expect 2 "keyframe at frame 9 is past" "$O" -- generate --prompt-at "9:x" --frames 4 --model "$MODEL" -o "$O"
expect 2 "two keyframes at frame 2" "$O" -- generate --prompt-at "2:x" --prompt-at "2:y" --model "$MODEL" -o "$O"
printf '{"zero": "a"}' >"$TMP/bad.json"
expect 2 "FRAME.*PROMPT"        "$O" -- travel "$TMP/bad.json" --model "$MODEL" -o "$O"
printf '[{"frame": 0, "prompt": "a red circle", "strength": 1}]' >"$TMP/extra.json"
expect 2 "entry 0: unknown key 'strength'" "$O" -- travel "$TMP/extra.json" --model "$MODEL" -o "$O"
printf '{"0": ' >"$TMP/broken.json"
expect 2 "broken.json"          "$O" -- travel "$TMP/broken.json" --model "$MODEL" -o "$O"
expect 2 "no schedule given"    "$O" -- travel --model "$MODEL" -o "$O"
printf '{"steps": "many"}' >"$TMP/preset.json"
expect 2 "preset.json.*steps"   "$O" -- "${G[@]}" -p "$TMP/preset.json" -o "$O"

echo "[files: 3]"
expect 3 "does not exist|No such file" "$TMP/nodir/out.mp4" -- "${G[@]}" -o "$TMP/nodir/out.mp4"
touch "$TMP/plain"
expect 3 "not a folder"         "$TMP/plain/out.mp4" -- "${G[@]}" -o "$TMP/plain/out.mp4"
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$TMP/ro" && chmod a-w "$TMP/ro"
    expect 3 "not writable"     "$TMP/ro/out.mp4" -- "${G[@]}" -o "$TMP/ro/out.mp4"
else  # root writes anywhere a folder allows; /proc refuses new files even to root
    expect 3 "/proc/out.mp4"    "/proc/out.mp4" -- "${G[@]}" -o /proc/out.mp4
fi
expect 3 "model folder .*not found" "$O" -- "${G[@]}" --model "$TMP/no_model" -o "$O"
expect 3 "no-such-schedule"     "$O" -- travel "$TMP/no-such-schedule.json" --model "$MODEL" -o "$O"
expect 3 "preset 'nosuch'"      "$O" -- "${G[@]}" -p nosuch -o "$O"

echo "[bad models: 4]"
cp -r "$MODEL" "$TMP/trunc"
f=$TMP/trunc/unet/diffusion_pytorch_model.safetensors
head -c $(($(stat -c %s "$f") / 2)) "$f" >"$f.cut" && mv "$f.cut" "$f"
expect 4 "diffusion_pytorch_model.safetensors.*(truncated|past)" "$O" -- "${G[@]}" --model "$TMP/trunc" -o "$O"
cp -r "$MODEL" "$TMP/nohdr"
printf 'garbage' >"$TMP/nohdr/vae/diffusion_pytorch_model.safetensors"
expect 4 "vae/diffusion_pytorch_model.safetensors" "$O" -- "${G[@]}" --model "$TMP/nohdr" -o "$O"
cp -r "$MODEL" "$TMP/noconf"
rm "$TMP/noconf/text_encoder/config.json"
expect 4 "text_encoder/config.json" "$O" -- "${G[@]}" --model "$TMP/noconf" -o "$O"
mkdir "$TMP/empty_model"
expect 4 "model_index.json"     "$O" -- "${G[@]}" --model "$TMP/empty_model" -o "$O"

echo "[reel train: 2 bad option]"
expect 2 "unknown kind 'colour'" "$TMP/neg" -- train clip --out "$TMP/neg" --hard-negatives=motion,colour
expect 2 "at least one kind"     "$TMP/neg" -- train clip --out "$TMP/neg" --hard-negatives=
expect 2 "centre-paths.*0 to 1"  "$TMP/neg" -- train unet --out "$TMP/neg" --centre-paths 1.5
expect 2 "export does not apply" "$TMP/tk" -- train tokenizer --out "$TMP/tk" --export

echo "[reel train --plot: 2 bad option, 3 bad log or unwritable image]"
P=$TMP/loss.png
expect 2 "at least one loss log" "$P" -- train --plot -o "$P"
expect 2 "width.*200"           "$P" -- train --plot x.csv --width 10 -o "$P"
expect 3 "nope.csv"             "$P" -- train --plot "$TMP/nope.csv" -o "$P"
printf 'a,b\n1,2\n' >"$TMP/nolog.csv"
expect 3 "nolog.csv:1:.*step.*loss" "$P" -- train --plot "$TMP/nolog.csv" -o "$P"
printf 'step,loss\n1,0.5\n2,zero\n' >"$TMP/bad.csv"
expect 3 "bad.csv:3:.*not a number" "$P" -- train --plot "$TMP/bad.csv" -o "$P"
printf 'step,loss\n1,0.5\n2,0.25\n' >"$TMP/ok.csv"
expect 3 "no_dir"               "$TMP/no_dir/x.png" -- train --plot "$TMP/ok.csv" -o "$TMP/no_dir/x.png"
if "$REEL" train --plot "$TMP/ok.csv" >/dev/null 2>&1 && [ -s "$TMP/ok.png" ]; then
    echo "  ok   train --plot ok.csv wrote ok.png"; pass=$((pass + 1))
else
    echo "  FAIL train --plot ok.csv wrote no ok.png"; fail=$((fail + 1))
fi

# verdict WHAT RC WANT LINES: an ended run exited RC (WANT expected), left nothing at $O, and wrote
# LINES lines on stderr ("any": at least one)
verdict() {
    local what=$1 rc=$2 want=$3 lines=$4 n
    n=$(wc -l <"$TMP/stderr")
    if [ "$rc" -eq "$want" ] && [ ! -e "$O" ] && [ ! -e "$O.partial" ] &&
        { [ "$lines" = any ] && [ "$n" -ge 1 ] || [ "$n" = "$lines" ]; }; then
        echo "  ok   [$rc] $what: $(tr '\n' ' ' <"$TMP/stderr")"
        pass=$((pass + 1))
    else
        echo "  FAIL $what: exit $rc (want $want), left: $(ls "$O"* 2>/dev/null), stderr: $(cat "$TMP/stderr")"
        fail=$((fail + 1))
    fi
    rm -rf "$O" "$O.partial"
}

echo "[interrupted: 130]"
"$REEL" "${G[@]}" --steps 1000 --frames 8 -o "$O" 2>"$TMP/stderr" &
pid=$!
sleep 1.5
kill -TERM $pid
wait $pid
verdict "SIGTERM" $? 130 1

# a second Ctrl-C stops at once, mid-step (a 256x256 step of tiny_a takes seconds), and takes
# the partial file with it
"$REEL" "${G[@]}" --steps 1000 --frames 16 -W 256 -H 256 --threads 1 -o "$O" 2>"$TMP/stderr" &
pid=$!
for _ in $(seq 100); do [ -e "$O.partial" ] && break; sleep 0.1; done
sleep 0.3
kill -INT $pid
sleep 0.3
kill -INT $pid 2>/dev/null
wait $pid
verdict "two Ctrl-C" $? 130 any

echo "[disk full: 3]"
# the file-size limit stands in for a full disk: FFmpeg's write fails with EFBIG (SIGXFSZ ignored)
(trap '' XFSZ; ulimit -f 2; "$REEL" "${G[@]}" --frames 8 --scale 8 -o "$O") >/dev/null 2>"$TMP/stderr"
verdict "file-size limit" $? 3 1

echo "cli_errors: $pass passed, $fail failed"
test $fail -eq 0
