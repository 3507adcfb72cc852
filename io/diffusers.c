/* io/diffusers.c - diffusers model folders, see diffusers.h. */
#include "io/diffusers.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"

#define PATH_CAP 4096

// ---- paths --------------------------------------------------------------------------

/* buf = dir/a[/b]; RL_E_PARAM when it does not fit. */
static rl_status join(char *buf, const char *dir, const char *a, const char *b, rl_err *err)
{
    int n = b ? snprintf(buf, PATH_CAP, "%s/%s/%s", dir, a, b)
              : snprintf(buf, PATH_CAP, "%s/%s", dir, a);
    if (n < 0 || n >= PATH_CAP)
        return rl_errf(err, RL_E_PARAM, "%s: path too long", dir);
    return RL_OK;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// ---- weights ------------------------------------------------------------------------

/* Messages about a table name the file it came from. */
static rl_status set_label(rl_weights *ws, const char *path, rl_err *err)
{
    char *l = strdup(path);
    if (!l) return rl_errf(err, RL_E_NOMEM, "out of memory");
    free(ws->label);
    ws->label = l;
    return RL_OK;
}

/* A sharded checkpoint: every distinct file of the index's weight_map, once. */
static rl_status load_sharded(rl_weights *ws, const char *dir, const char *sub,
                              const char *index, rl_err *err)
{
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, index, err);
    if (rc) return rc;
    const cJSON *map = rl_json_obj(&j, NULL, "weight_map");
    if (!map) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: key 'weight_map': expected an object", index);
        goto done;
    }
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            e->valuestring[0] == '.') {
            rc = rl_errf(err, RL_E_FORMAT, "%s: key 'weight_map.%s': expected a file name in "
                         "the same folder", index, e->string ? e->string : "?");
            goto done;
        }
        int seen = 0;      // files repeat for every tensor they hold; load each once
        for (const cJSON *p = map->child; p != e; p = p->next)
            if (cJSON_IsString(p) && strcmp(p->valuestring, e->valuestring) == 0) { seen = 1; break; }
        if (seen) continue;
        char path[PATH_CAP];
        if ((rc = join(path, dir, sub, e->valuestring, err))) goto done;
        if ((rc = rl_weights_load_st(ws, path, NULL, err))) goto done;
    }
done:
    rl_json_free(&j);
    return rc;
}

/* 1 when name ends with suffix. */
static int ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* The first file in dir/sub that is a pickle checkpoint (torch.save / .ckpt / .bin, their
 * shard indexes), its path copied to out for a message (cut short when longer than cap); 0
 * when there is none. Nothing is opened but the folder. */
static int find_pickle(const char *dir, const char *sub, char *out, size_t cap)
{
    char path[PATH_CAP];
    if (join(path, dir, sub, NULL, NULL)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    static const char *const ext[] = { ".bin", ".ckpt", ".pt", ".pth", ".pkl", ".bin.index.json" };
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        for (size_t i = 0; i < sizeof ext / sizeof ext[0] && !found; i++)
            if (ends_with(e->d_name, ext[i])) {
                int n = snprintf(out, cap, "%s/%s", path, e->d_name);
                if (n < 0) out[0] = '\0';   // a path cut short still names the file's folder
                found = 1;
            }
    closedir(d);
    return found;
}

rl_status rl_diffusers_load_weights(rl_weights *ws, const char *dir, const char *sub,
                                    const char *base, rl_err *err)
{
    rl_status rc;
    char path[PATH_CAP], name[256];
    // what save_pretrained writes, full precision first: a single file, a sharded index
    // (its shards named in weight_map), then the fp16 variant of each
    // ("<base>.fp16.safetensors", "<base>.safetensors.index.fp16.json")
    static const struct { const char *fmt; int sharded; } variants[] = {
        { "%s.safetensors", 0 },
        { "%s.safetensors.index.json", 1 },
        { "%s.fp16.safetensors", 0 },
        { "%s.safetensors.index.fp16.json", 1 },
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        snprintf(name, sizeof name, variants[i].fmt, base);
        if ((rc = join(path, dir, sub, name, err))) return rc;
        if (!is_file(path)) continue;
        if ((rc = set_label(ws, path, err))) return rc;
        return variants[i].sharded ? load_sharded(ws, dir, sub, path, err)
                                   : rl_weights_load_st(ws, path, NULL, err);
    }

    // name what is there instead, if it is a format reel refuses to execute
    char bin[PATH_CAP];
    if (find_pickle(dir, sub, bin, sizeof bin))
        return rl_errf(err, RL_E_FORMAT, "%s: pickle weights are not loaded (they can run code); "
                       "convert them to %s.safetensors (e.g. save_pretrained(..., "
                       "safe_serialization=True))", bin, base);
    snprintf(name, sizeof name, "%s.safetensors", base);
    join(path, dir, sub, name, NULL);
    return rl_errf(err, RL_E_MISSING, "%s: missing weights file", path);
}

// ---- components -------------------------------------------------------------------

// dir/sub/config.json, named in the error when it is not there
static rl_status config_path(char *path, const char *dir, const char *sub, rl_err *err)
{
    rl_status rc = join(path, dir, sub, "config.json", err);
    if (!rc && !is_file(path)) rc = rl_errf(err, RL_E_MISSING, "%s: missing", path);
    return rc;
}

rl_status rl_diffusers_load_text(rl_clip_cfg *cfg, rl_weights *ws, const char *dir, rl_err *err)
{
    char path[PATH_CAP];
    rl_status rc = config_path(path, dir, "text_encoder", err);
    if (!rc) rc = rl_clip_cfg_load(cfg, path, err);
    if (!rc) rc = rl_diffusers_load_weights(ws, dir, "text_encoder", "model", err);
    if (rc) return rc;
    // transformers' position_ids buffer (saved by versions before 4.31) holds arange(L); reel
    // computes the positions itself. I64 copies are skipped on load; a float copy (a converted
    // checkpoint) is checked for shape and marked used, so binding leaves nothing over.
    const float *pos_ids;
    return rl_weights_get_opt(ws, "text_model.embeddings.position_ids", 2,
                              (int64_t[]){ 1, cfg->max_position_embeddings }, &pos_ids, err);
}

rl_status rl_diffusers_load_vae(rl_vae_cfg *cfg, rl_weights *ws, const char *dir, rl_err *err)
{
    char path[PATH_CAP];
    rl_status rc = config_path(path, dir, "vae", err);
    if (!rc) rc = rl_vae_cfg_load(cfg, path, err);
    if (!rc) rc = rl_diffusers_load_weights(ws, dir, "vae", "diffusion_pytorch_model", err);
    return rc;
}

// ---- model_index.json ---------------------------------------------------------------

/* The class of component key: ["library", "Class"]; *cls NULL when absent or [null, null]. */
static rl_status component(const rl_json *j, const char *key, const char **cls, rl_err *err)
{
    *cls = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) return RL_OK;
    const cJSON *c = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 ? cJSON_GetArrayItem(v, 1) : NULL;
    if (c && cJSON_IsNull(c)) return RL_OK;
    if (!c || !cJSON_IsString(c))
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected [\"library\", \"ClassName\"]",
                       j->label, key);
    *cls = c->valuestring;
    return RL_OK;
}

/* cls must be one of the NULL-terminated list ok. */
static rl_status expect_class(const rl_json *j, const char *key, const char *cls,
                              const char *const *ok, rl_err *err)
{
    if (!cls)
        return rl_errf(err, RL_E_MISSING, "%s: no '%s' component (expected %s)", j->label, key,
                       ok[0]);
    for (int i = 0; ok[i]; i++)
        if (strcmp(cls, ok[i]) == 0) return RL_OK;
    char list[256] = "";
    for (int i = 0; ok[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " or " : "", ok[i]);
    return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported class '%s' (expected %s)",
                   j->label, key, cls, list);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

// ---- open ---------------------------------------------------------------------------

rl_status rl_diffusers_open(rl_diffusers *m, const char *dir, rl_err *err)
{
    rl_status rc;
    char path[PATH_CAP];
    rl_json idx = { 0 };
    *m = (rl_diffusers){ 0 };
    rl_weights_init(&m->text_w, "text_encoder");
    rl_weights_init(&m->unet_w, "unet");
    rl_weights_init(&m->motion_w, "motion_adapter");
    rl_weights_init(&m->vae_w, "vae");

    if (!is_dir(dir)) {
        rc = rl_errf(err, errno == ENOENT ? RL_E_MISSING : RL_E_IO, "%s: not a model folder "
                     "(no such directory)", dir);
        goto fail;
    }
    if (!(m->dir = strdup(dir))) { rc = rl_errf(err, RL_E_NOMEM, "out of memory"); goto fail; }

    // model_index.json: which classes fill the pipeline
    if ((rc = join(path, dir, "model_index.json", NULL, err))) goto fail;
    if (!is_file(path)) {
        rc = rl_errf(err, RL_E_MISSING, "%s: missing model_index.json (not a diffusers model "
                     "folder)", dir);
        goto fail;
    }
    if ((rc = rl_json_load(&idx, path, err))) goto fail;
    const char *c_text, *c_tok, *c_unet, *c_adapter, *c_vae, *c_sched;
    if ((rc = component(&idx, "text_encoder", &c_text, err)) ||
        (rc = component(&idx, "tokenizer", &c_tok, err)) ||
        (rc = component(&idx, "unet", &c_unet, err)) ||
        (rc = component(&idx, "motion_adapter", &c_adapter, err)) ||
        (rc = component(&idx, "vae", &c_vae, err)) ||
        (rc = component(&idx, "scheduler", &c_sched, err))) goto fail;
    if ((rc = expect_class(&idx, "text_encoder", c_text,
                           (const char *[]){ "CLIPTextModel", "CLIPTextModelWithProjection", NULL },
                           err)) ||
        (rc = expect_class(&idx, "tokenizer", c_tok,
                           (const char *[]){ "CLIPTokenizer", "CLIPTokenizerFast", NULL }, err)) ||
        (rc = expect_class(&idx, "unet", c_unet,
                           (const char *[]){ "UNetMotionModel", "UNet2DConditionModel", NULL },
                           err)) ||
        (rc = expect_class(&idx, "vae", c_vae, (const char *[]){ "AutoencoderKL", NULL }, err)))
        goto fail;
    if (c_adapter && (rc = expect_class(&idx, "motion_adapter", c_adapter,
                                        (const char *[]){ "MotionAdapter", NULL }, err)))
        goto fail;
    if (!c_sched) {
        rc = rl_errf(err, RL_E_MISSING, "%s: no 'scheduler' component", idx.label);
        goto fail;
    }
    copy_str(m->sched_class, sizeof m->sched_class, c_sched);
    copy_str(m->unet_class, sizeof m->unet_class, c_unet);

    // tokenizer
    if ((rc = join(path, dir, "tokenizer", NULL, err))) goto fail;
    if (!is_dir(path)) {
        rc = rl_errf(err, RL_E_MISSING, "%s: missing tokenizer folder", path);
        goto fail;
    }
    if ((rc = rl_tokfiles_read(&m->tok, path, err))) goto fail;

    if ((rc = rl_diffusers_load_text(&m->text_cfg, &m->text_w, dir, err))) goto fail;

    // unet, and the motion adapter when the unet is a plain UNet2DConditionModel (a
    // UNetMotionModel already holds the motion modules; save_pretrained of an
    // AnimateDiffPipeline writes both, and then the adapter folder is redundant)
    if ((rc = join(path, dir, "unet", "config.json", err))) goto fail;
    if (!is_file(path)) { rc = rl_errf(err, RL_E_MISSING, "%s: missing", path); goto fail; }
    if ((rc = rl_unet_cfg_load(&m->unet_cfg, path, err))) goto fail;
    if ((rc = rl_diffusers_load_weights(&m->unet_w, dir, "unet", "diffusion_pytorch_model", err)))
        goto fail;
    // a motion_adapter/ folder that model_index.json does not list (copied in by hand) is
    // used too, as long as the unet needs one
    if ((rc = join(path, dir, "motion_adapter", "config.json", err))) goto fail;
    if (strcmp(c_unet, "UNet2DConditionModel") == 0 && (c_adapter || is_file(path))) {
        if (!is_file(path)) { rc = rl_errf(err, RL_E_MISSING, "%s: missing", path); goto fail; }
        if ((rc = join(path, dir, "motion_adapter", NULL, err)) ||
            (rc = rl_diffusers_add_adapter(m, path, err))) goto fail;
    }

    if ((rc = rl_diffusers_load_vae(&m->vae_cfg, &m->vae_w, dir, err))) goto fail;

    // scheduler: parsed by the scheduler itself (rl_ctx_open)
    if ((rc = join(path, dir, "scheduler", "scheduler_config.json", err))) goto fail;
    if (!is_file(path)) { rc = rl_errf(err, RL_E_MISSING, "%s: missing", path); goto fail; }
    if (!(m->sched_config = strdup(path))) { rc = rl_errf(err, RL_E_NOMEM, "out of memory"); goto fail; }

    rl_json_free(&idx);
    return RL_OK;

fail:
    rl_json_free(&idx);
    rl_diffusers_close(m);
    return rc;
}

rl_status rl_diffusers_add_adapter(rl_diffusers *m, const char *adapter_dir, rl_err *err)
{
    rl_status rc;
    char path[PATH_CAP];
    if (m->has_adapter)
        return rl_errf(err, RL_E_PARAM, "%s: the model already has a motion adapter", adapter_dir);
    if (m->unet_cfg.motion_model)
        return rl_errf(err, RL_E_PARAM, "%s: the unet is a UNetMotionModel (its motion modules "
                       "are inside); a separate motion adapter cannot be added", adapter_dir);
    if ((rc = join(path, adapter_dir, "config.json", NULL, err))) return rc;
    if (!is_file(path))
        return rl_errf(err, RL_E_MISSING, "%s: missing (not a MotionAdapter folder)", path);
    rl_json j = { 0 };
    if ((rc = rl_json_load(&j, path, err))) return rc;
    const char *cls = NULL;
    rl_unet_cfg cfg = m->unet_cfg;    // merged into a copy: m is unchanged on failure
    if (!(rc = rl_json_str(&j, NULL, "_class_name", "MotionAdapter", &cls, err)) &&
        strcmp(cls, "MotionAdapter") != 0)
        rc = rl_errf(err, RL_E_FORMAT, "%s: key '_class_name': '%s', expected MotionAdapter",
                     path, cls);
    if (!rc) rc = rl_unet_cfg_add_adapter_json(&cfg, &j, err);
    rl_json_free(&j);
    if (rc) return rc;
    rl_weights w;
    rl_weights_init(&w, "motion_adapter");
    if ((rc = rl_diffusers_load_weights(&w, adapter_dir, ".", "diffusion_pytorch_model", err))) {
        rl_weights_free(&w);
        return rc;
    }
    rl_weights_free(&m->motion_w);
    m->motion_w = w;
    m->unet_cfg = cfg;
    m->has_adapter = 1;
    return RL_OK;
}

void rl_diffusers_close(rl_diffusers *m)
{
    free(m->dir);
    free(m->sched_config);
    rl_bpe_spec_free(&m->tok);
    rl_weights_free(&m->text_w);
    rl_weights_free(&m->unet_w);
    rl_weights_free(&m->motion_w);
    rl_weights_free(&m->vae_w);
    *m = (rl_diffusers){ 0 };
}
