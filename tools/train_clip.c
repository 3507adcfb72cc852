/* tools/train_clip.c - `reel train tokenizer` and `reel train clip`.
 *
 * tokenizer: BPE merges learned (core/bpe.h rl_bpe_learn) from every training caption of the
 *   shapes world (each valid attribute combination free of held-out pairs, with and without
 *   the background), written as a CLIPTokenizer folder.
 * clip: see the block above rl_train_clip. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/bpe.h"
#include "io/tokfiles.h"
#include "tools/shapes/world.h"
#include "tools/train.h"
#include "tools/train_stages.h"

// ---- tokenizer ------------------------------------------------------------------------------

/* Every training caption: (RL_N_BG + 1) x colours x shapes x motions, filtered. */
static int world_captions(char (*caps)[96], int cap)
{
    int n = 0;
    for (int bg = -1; bg < RL_N_BG; bg++)
        for (int c = 0; c < RL_N_COLOR; c++)
            for (int s = 0; s < RL_N_SHAPE; s++)
                for (int m = 0; m < RL_N_MOTION; m++) {
                    rl_shapes_attr a = { bg, c, s, m };
                    if (!rl_shapes_attr_valid(&a) || rl_shapes_attr_heldout(&a)) continue;
                    if (n < cap && rl_shapes_caption(caps[n], 96, &a) > 0) n++;
                }
    return n;
}

rl_status rl_train_tokenizer(const rl_train_opts *o, rl_err *err)
{
    enum { MAX_CAPS = (RL_N_BG + 1) * RL_N_COLOR * RL_N_SHAPE * RL_N_MOTION };
    char (*caps)[96] = malloc(sizeof(char[96]) * MAX_CAPS);
    const char **texts = malloc(sizeof *texts * MAX_CAPS);
    rl_bpe_spec spec = { 0 };
    rl_bpe bpe = { 0 };
    char dir[4096];
    rl_status rc = RL_OK;
    if (!caps || !texts) {
        rc = rl_errf(err, RL_E_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    const int n = world_captions(caps, MAX_CAPS);
    for (int i = 0; i < n; i++) texts[i] = caps[i];
    rc = rl_bpe_learn(&spec, texts, n, o->merges, o->max_length, err);
    if (rc) goto done;
    // every caption must fit: [bos] + tokens + [eos] <= max_length
    rc = rl_bpe_init(&bpe, &spec, err);
    int longest = 0, words_split = 0;
    for (int i = 0; i < n && !rc; i++) {
        int k = 0, nw = 1;
        rc = rl_bpe_tokenize(&bpe, texts[i], NULL, 0, &k, err);
        for (const char *p = texts[i]; *p; p++) nw += *p == ' ';
        if (k > longest) longest = k;
        if (k > nw) words_split = 1;
    }
    if (rc) goto done;
    if (longest + 2 > o->max_length) {
        rc = rl_errf(err, RL_E_PARAM, "tokenizer: the longest caption takes %d tokens with start "
                     "and end, more than --max-length %d (learn more --merges)", longest + 2,
                     o->max_length);
        goto done;
    }
    rc = rl_train_mkdir(o->out, err);
    if (!rc) rc = rl_tokfiles_write(rl_train_join(dir, sizeof dir, o->out, "tokenizer"), &spec, err);
    if (!rc && o->note) {
        char msg[4500];
        snprintf(msg, sizeof msg, "tokenizer: %d captions, %d merges, vocab %d, longest caption "
                 "%d tokens%s; wrote %s", n, spec.n_merges, spec.n_vocab, longest + 2,
                 words_split ? " (some words split: more --merges would make one token a word)" : "",
                 dir);
        o->note(o->note_ctx, msg);
    }
done:
    rl_bpe_free(&bpe);
    rl_bpe_spec_free(&spec);
    free(texts);
    free(caps);
    return rc;
}

rl_status rl_train_clip(const rl_train_opts *o, rl_err *err)
{
    (void)o;
    return rl_errf(err, RL_E_INTERNAL, "train clip: not implemented yet");
}
