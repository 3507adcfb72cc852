#!/usr/bin/env bash
# tests/cli_eval.sh REEL - `reel eval` end to end: the tiny_a fixture model (random weights, so
# adherence is near chance, but every row must be there) with tiny settings; --json structure;
# --seeds; the same numbers at 1 and 2 threads; the HTML report (one MP4 per clip, misses
# marked); --real --vae (the renders through a VAE); the CLIP score with a CLIP pair trained
# for a few steps by `reel train clip` (on the model and on --real) and n/a without one; bad
# options and folders. Run from the repository root (meson's workdir).
set -u
REEL=${1:?usage: cli_eval.sh PATH/TO/reel}
MODEL=tests/fixtures/models/tiny_a
PY=/usr/bin/python3
# OpenMP threads that spin while waiting starve each other on a busy 2-core machine (a 0.5 s
# run took 43 s at 2 threads beside a training job): wait passively, as the unit tests do
export OMP_WAIT_POLICY=passive
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
has() { grep -qF -- "$2" "$1"; }
jq_py() {  # jq_py FILE EXPR: evaluates a Python expression on the parsed JSON as j
    "$PY" -c "import json,math,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"
}

# tiny: 2 prompts per set, 2 steps, 8 frames of 32x32 (8x8 latents of tiny_a)
SMALL=(-n 2 --steps 2 --frames 8 --size 32 -q)

echo "[table on tiny_a]"
"$REEL" eval --model "$MODEL" "${SMALL[@]}" --threads 1 >"$TMP/t.txt" 2>"$TMP/t.err"
check "exit 0" test $? -eq 0
check "nothing on stderr with -q" test ! -s "$TMP/t.err"
for row in "adherence" "background (when stated)" "colour" "shape" "motion" "all attributes" \
           "persistence (one object)" "background flicker" "guidance effect" \
           "negative-prompt effect" "prompt travel colour A -> B" "seconds per clip"; do
    check "row '$row'" has "$TMP/t.txt" "$row"
done
check "header: 4 clips, 8 frames of 32x32, guidance 3 (the default preset's)" \
    has "$TMP/t.txt" \
    "clips: 4 (2 in-distribution, 2 with a held-out pair), 8 frames of 32x32, guidance 3"
check "adherence cells are counts of 2" test "$(grep -c '(./2)' "$TMP/t.txt")" -ge 6
check "guidance row compares 1 with 3" has "$TMP/t.txt" "at guidance 1 vs 3"
check "travel row has 8 per-frame values" \
    test "$(grep 'prompt travel' "$TMP/t.txt" | sed 's/.*t per frame://' | wc -w)" -eq 8
check "CLIP score n/a without clip_video/" has "$TMP/t.txt" "has no clip_video/"
check "text separation rows for the four attributes" \
    test "$(grep -c -E '^  (background|colour|shape|motion) +closest .* median pair' "$TMP/t.txt")" -eq 4
check "model rows not n/a" test "$(grep -E '^(guidance effect|negative-prompt effect|prompt travel)' "$TMP/t.txt" | grep -c 'n/a')" -eq 0

echo "[json]"
"$REEL" eval --model "$MODEL" "${SMALL[@]}" --threads 1 --json >"$TMP/a.json"
check "exit 0" test $? -eq 0
check "parses, 4 clips" test "$(jq_py "$TMP/a.json" "len(j['clips'])")" = 4
check "adherence rates in [0, 1] for both sets" test "$(jq_py "$TMP/a.json" \
    "all(0 <= j['adherence'][s][k]['rate'] <= 1 for s in ('in_distribution', 'held_out') for k in ('colour', 'shape', 'motion', 'all'))")" = True
check "guidance/negative/travel objects" test "$(jq_py "$TMP/a.json" \
    "j['guidance']['n'] == 2 and j['negative']['n'] == 2 and len(j['travel']['t']) == 8")" = True
check "clip_score null with a reason" test "$(jq_py "$TMP/a.json" \
    "j['clip_score'] is None and 'clip_video' in j['clip_score_na']")" = True
check "text_separation: a closest pair of values, 0 <= min <= median, per attribute" test "$(jq_py "$TMP/a.json" \
    "all(len(j['text_separation'][k]['closest']) == 2 and 0 <= j['text_separation'][k]['min'] <= j['text_separation'][k]['median'] for k in ('background', 'colour', 'shape', 'motion'))")" = True
check "per clip: want, got, seed" test "$(jq_py "$TMP/a.json" \
    "all('want' in c and 'got' in c and c['seed'] >= 1000 for c in j['clips'])")" = True

echo "[threads]"
"$REEL" eval --model "$MODEL" "${SMALL[@]}" --threads 2 --json >"$TMP/b.json"
strip() { sed -E 's/"seconds(_per_clip)?": [0-9.]+//' "$1"; }
check "1 and 2 threads: the same verdicts and numbers" cmp -s <(strip "$TMP/a.json") <(strip "$TMP/b.json")

echo "[seeds]"
"$REEL" eval --model "$MODEL" -n 1 --seeds 2 --steps 2 --frames 8 --size 32 -q --json >"$TMP/s.json"
check "exit 0" test $? -eq 0
check "1 prompt x 2 seeds x 2 sets = 4 clips, seeds 1000, 101000, 2000, 102000" \
    test "$(jq_py "$TMP/s.json" "[c['seed'] for c in j['clips']]")" = "[1000, 101000, 2000, 102000]"

echo "[report]"
"$REEL" eval --model "$MODEL" "${SMALL[@]}" --report "$TMP/rep" >/dev/null
check "exit 0" test $? -eq 0
check "index.html" test -s "$TMP/rep/index.html"
check "4 MP4 clips" test "$(ls "$TMP/rep/clips"/*.mp4 | wc -l)" -eq 4
check "4 videos on the page" test "$(grep -o '<video' "$TMP/rep/index.html" | wc -l)" -eq 4
check "table on top" test "$(grep -n 'all attributes' "$TMP/rep/index.html" | head -1 | cut -d: -f1)" \
    -lt "$(grep -n '<video' "$TMP/rep/index.html" | head -1 | cut -d: -f1)"
check "misses highlighted (random weights miss)" has "$TMP/rep/index.html" 'class="clip miss"'
check "a miss says what was wanted" has "$TMP/rep/index.html" ", wanted "
if command -v ffprobe >/dev/null; then
    check "clip 000 is H.264" test "$(ffprobe -v error -select_streams v:0 -show_entries \
        stream=codec_name -of default=nw=1:nk=1 "$TMP/rep/clips/000.mp4")" = h264
fi

echo "[CLIP score]"
# a CLIP pair trained for 3 steps, its text encoder 32 wide like tiny_a's cross-attention,
# beside tiny_a's UNet, VAE and scheduler
M="$TMP/m"
"$REEL" train tokenizer --out "$M" >/dev/null 2>&1 &&
"$REEL" train clip --out "$M" --steps 3 --batch 2 --size 32 --warmup 0 --threads 1 --config \
    '{"vocab_size": 1, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 24, "projection_dim": 16}' \
    >/dev/null 2>&1
check "reel train clip made clip_video/" test -s "$M/clip_video/model.safetensors"
for c in unet vae scheduler model_index.json; do ln -s "$PWD/$MODEL/$c" "$M/$c"; done
"$REEL" eval --model "$M" "${SMALL[@]}" >"$TMP/c.txt"
check "exit 0" test $? -eq 0
check "CLIP row with numbers" grep -qE 'CLIP score \(prompt vs clip\) +-?[01]\.[0-9]{3} +-?[01]\.[0-9]{3}' "$TMP/c.txt"
check "ground-truth row" grep -qE 'same on ground-truth clips +-?[01]\.[0-9]{3}' "$TMP/c.txt"
check "chance row" grep -qE 'mismatched prompts \(chance\) +-?[01]\.[0-9]{3}' "$TMP/c.txt"
"$REEL" eval --model "$M" "${SMALL[@]}" --json >"$TMP/c.json"
check "json: cosines in [-1, 1] per set and per clip" test "$(jq_py "$TMP/c.json" \
    "all(-1 <= j['clip_score'][k][s] <= 1 for k in ('clips', 'ground_truth', 'mismatched') for s in ('in_distribution', 'held_out')) and all(-1 <= c['clip_score'] <= 1 and -1 <= c['clip_score_truth'] <= 1 for c in j['clips'])")" = True
check "json: set means are the clips' means" test "$(jq_py "$TMP/c.json" \
    "abs(sum(c['clip_score'] for c in j['clips'] if c['set'] == 'held_out') / 2 - j['clip_score']['clips']['held_out']) < 1e-5")" = True
"$REEL" eval --real --model "$M" -n 3 -q --json >"$TMP/r.json"
check "--real: exit 0" test $? -eq 0
check "--real: the clips are the ground truth" test "$(jq_py "$TMP/r.json" \
    "j['clip_score']['clips'] == j['clip_score']['ground_truth'] and all(c['clip_score_truth'] is None for c in j['clips'])")" = True
"$REEL" eval --model "$M" "${SMALL[@]}" --report "$TMP/rep2" >/dev/null
check "report shows CLIP scores" has "$TMP/rep2/index.html" "CLIP score "

echo "[--real --vae]"
# the renders through a VAE: the shipped model's trained VAE keeps every attribute (the
# ceiling it leaves a UNet), tiny_a's random one does not
"$REEL" eval --real --vae --model presets/models/shapes -n 4 -q --json >"$TMP/v.json"
check "shipped VAE: exit 0" test $? -eq 0
check "  the source names the VAE" test "$(jq_py "$TMP/v.json" "'through the VAE of presets/models/shapes' in j['source']")" = True
check "  every attribute and persistence 100% in both sets" test "$(jq_py "$TMP/v.json" \
    "all(j['adherence'][s][k]['rate'] == 1.0 for s in ('in_distribution', 'held_out') for k in ('colour', 'shape', 'motion', 'all', 'persistence'))")" = True
"$REEL" eval --real --vae --model "$MODEL" -n 2 --frames 8 --size 32 -q --json >"$TMP/v2.json"
check "tiny_a's random VAE: exit 0, attributes lost" test "$(jq_py "$TMP/v2.json" \
    "j['adherence']['in_distribution']['all']['rate'] < 1.0")" = True
"$REEL" eval --vae -q >/dev/null 2>"$TMP/e.txt"
check "--vae without --real: exit 2" test $? -eq 2
"$REEL" eval --real --vae --model "$TMP/nonexistent" -q >/dev/null 2>"$TMP/e.txt"
check "--real --vae, missing model folder: exit 3" test $? -eq 3

echo "[clips from files]"
# ground-truth clips written as H.264 (upscaled x4 to 256x256, chroma subsampled) and GIF, read
# back through libavformat, scaled to 64x64: the analyzer must still get every attribute
"$REEL" shapes --n 6 --seed 3 --split any --format mp4 --scale 4 -o "$TMP/sh" >/dev/null 2>&1
check "reel shapes wrote 6 MP4 clips" test "$(ls "$TMP"/sh/*.mp4 2>/dev/null | wc -l)" -eq 6
"$REEL" shapes --n 1 --seed 4 --format gif -o "$TMP/shg" >/dev/null 2>&1
allok=1
while IFS=$'\t' read -r id cap; do
    f=$(ls "$TMP"/sh/"$id"*.mp4 2>/dev/null | head -1)
    "$REEL" eval "$f" --prompt "$cap" --json >"$TMP/f.json" 2>>"$TMP/f.err" || allok=0
    [ "$(jq_py "$TMP/f.json" "j['adherence']['all'] == 1.0 and j['clips'][0]['persistent']")" = True ] || {
        allok=0; echo "    $id '$cap':"; cat "$TMP/f.json"; }
done <"$TMP/sh/captions.txt"
check "6 of 6 MP4 ground-truth clips: every attribute and persistence right" test $allok -eq 1
cap=$(cut -f2 "$TMP/shg/captions.txt" | head -1)
"$REEL" eval "$(ls "$TMP"/shg/*.gif | head -1)" --prompt "$cap" >"$TMP/g.txt"
check "a GIF too: adherence 100% over 1 clip" has "$TMP/g.txt" "all attributes 100.0%"
# a generated clip carries its prompt in its metadata: scored against it without --prompt
"$REEL" generate "a red square moving left on a white background" --model "$MODEL" --steps 2 \
    --frames 8 --width 32 --height 32 -q -o "$TMP/gen.mp4" >/dev/null 2>&1
"$REEL" eval "$TMP/gen.mp4" "$TMP/gen.mp4" --json >"$TMP/gen.json"
check "metadata prompt used: 2 clips scored" test "$(jq_py "$TMP/gen.json" \
    "[c['prompt'] for c in j['clips']] == ['a red square moving left on a white background'] * 2 and j['adherence']['shape'] is not None")" = True
"$REEL" eval "$TMP/nonexistent.mp4" >/dev/null 2>"$TMP/e.txt"
check "missing clip file: exit 3" test $? -eq 3
printf 'not a video' >"$TMP/junk.mp4"
"$REEL" eval "$TMP/junk.mp4" >/dev/null 2>"$TMP/e.txt"
check "junk clip file: non-zero exit, one line" test $? -ne 0 -a "$(wc -l <"$TMP/e.txt")" -eq 1
"$REEL" eval "$TMP/gen.mp4" --model "$MODEL" >/dev/null 2>"$TMP/e.txt"
check "clip files with --model: exit 2" test $? -eq 2

echo "[errors]"
"$REEL" eval --model "$MODEL" --size 12 -q >/dev/null 2>"$TMP/e.txt"
check "--size 12: exit 2" test $? -eq 2
"$REEL" eval --model "$MODEL" --seeds 0 -q >/dev/null 2>"$TMP/e.txt"
check "--seeds 0: exit 2" test $? -eq 2
"$REEL" eval --model "$MODEL" --frames >/dev/null 2>"$TMP/e.txt"
check "--frames without a value: exit 2" test $? -eq 2
"$REEL" eval --model "$TMP/nonexistent" -q >/dev/null 2>"$TMP/e.txt"
check "missing model folder: exit 3" test $? -eq 3
"$REEL" eval --model "$MODEL" "${SMALL[@]}" --report "$TMP/no/such/dir" >/dev/null 2>"$TMP/e.txt"
check "unwritable report folder: exit 3, before any clip" test $? -eq 3
check "  one line naming the folder" test "$(wc -l <"$TMP/e.txt")" -eq 1
cp -r "$M/clip_video" "$TMP/cv_save"
printf '{"projection_dim": 16, "frames": 8}' >"$M/clip_video/config.json"
"$REEL" eval --model "$M" "${SMALL[@]}" >/dev/null 2>"$TMP/e.txt"
check "clip_video/config.json of another encoder: exit 4" test $? -eq 4
check "  says why" has "$TMP/e.txt" "another clip encoder"

echo "cli_eval: $pass passed, $fail failed"
test "$fail" -eq 0
