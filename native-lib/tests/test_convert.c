/*
 * test_convert.c — HF checkpoint -> GGUF conversion of both fixtures, read
 * back with the GGUF reader and compared tensor by tensor (dequantized) and
 * key by key with the safetensors / config.json sources; the name mapping
 * used here is written out independently of convert.c from the spec table
 * (deepseek-v4-model.md section 9). Also: JSON parser edge cases, bad
 * checkpoints (clear errors, no crash) and the tokenizer keys (when
 * DS4J_TOKENIZER_JSON points at the real tokenizer.json).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "gguf.h"
#include "json.h"
#include "quants.h"
#include "safetensors.h"
#include "synth.h"

static int g_fail, g_checks;
#define CHECK(c, ...)                                                       \
    do {                                                                    \
        g_checks++;                                                         \
        if (!(c)) {                                                         \
            g_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* ---------------------------------------------------------------- JSON */

static void test_json(void) {
    json_doc *d;
    char err[256];
    const char *ok = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": 9007199254740993}}";
    CHECK(json_parse(&d, ok, strlen(ok), err, sizeof err) == 0, "valid JSON rejected: %s", err);
    if (d) {
        const json_value *a = json_get(json_root(d), "a");
        CHECK(a && a->type == JSON_ARRAY && a->u.arr.n == 5, "array");
        double x;
        CHECK(json_as_num(&a->u.arr.items[1], &x) && x == -2500.0, "number");
        CHECK(!strcmp(json_as_str(&a->u.arr.items[4]), "x\xc3\xa9\xf0\x9f\x98\x80"), "escapes");
        int64_t big;
        CHECK(json_get_int(json_get(json_root(d), "b"), "c", &big) && big == 9007199254740993LL, "int64 exact");
        json_free(d);
    }
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "\"\\ud800\"", "[1] x", "\"a\nb\"",
                         "nul", "{\"a\":1,}", "\"\xff\"", "-", "[1e]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = NULL;
        CHECK(json_parse(&d, bad[i], strlen(bad[i]), err, sizeof err) != 0, "bad JSON #%zu accepted", i);
        json_free(d);
    }
    /* nesting bound */
    char deep[400];
    memset(deep, '[', 300);
    d = NULL;
    CHECK(json_parse(&d, deep, 300, err, sizeof err) != 0, "deep nesting accepted");
    json_free(d);
}

/* --------------------------------------------------------- name mapping */

/* GGUF per-layer suffix -> fixture (transformers) suffix after model.layers.N. */
static const char *const LAYER_MAP[][2] = {
    {"hc_attn_fn.weight", "hc_attn_fn"}, {"hc_attn_base.weight", "hc_attn_base"},
    {"hc_attn_scale.weight", "hc_attn_scale"}, {"hc_ffn_fn.weight", "hc_ffn_fn"},
    {"hc_ffn_base.weight", "hc_ffn_base"}, {"hc_ffn_scale.weight", "hc_ffn_scale"},
    {"attn_norm.weight", "attn_norm.weight"}, {"ffn_norm.weight", "ffn_norm.weight"},
    {"attn_q_a.weight", "attn.wq_a.weight"}, {"attn_q_a_norm.weight", "attn.q_norm.weight"},
    {"attn_q_b.weight", "attn.wq_b.weight"}, {"attn_kv.weight", "attn.wkv.weight"},
    {"attn_kv_a_norm.weight", "attn.norm.weight"}, {"attn_sinks.weight", "attn.attn_sink"},
    {"attn_output_a.weight", "attn.wo_a.weight"}, {"attn_output_b.weight", "attn.wo_b.weight"},
    {"attn_compressor_ape.weight", "attn.compressor.ape"}, {"attn_compressor_kv.weight", "attn.compressor.wkv.weight"},
    {"attn_compressor_gate.weight", "attn.compressor.wgate.weight"},
    {"attn_compressor_norm.weight", "attn.compressor.norm.weight"},
    {"indexer.attn_q_b.weight", "attn.indexer.wq_b.weight"}, {"indexer.proj.weight", "attn.indexer.weights_proj.weight"},
    {"indexer_compressor_ape.weight", "attn.indexer.compressor.ape"},
    {"indexer_compressor_kv.weight", "attn.indexer.compressor.wkv.weight"},
    {"indexer_compressor_gate.weight", "attn.indexer.compressor.wgate.weight"},
    {"indexer_compressor_norm.weight", "attn.indexer.compressor.norm.weight"},
    {"ffn_gate_inp.weight", "ffn.gate.weight"}, {"exp_probs_b.bias", "ffn.gate.bias"},
    {"ffn_gate_tid2eid.weight", "ffn.gate.tid2eid"}, {"ffn_gate_shexp.weight", "ffn.shared_experts.w1.weight"},
    {"ffn_up_shexp.weight", "ffn.shared_experts.w3.weight"}, {"ffn_down_shexp.weight", "ffn.shared_experts.w2.weight"},
    {"ffn_gate_exps.weight", "w1"}, {"ffn_up_exps.weight", "w3"}, {"ffn_down_exps.weight", "w2"},
};
static const char *const GLOBAL_MAP[][2] = {
    {"token_embd.weight", "model.embed_tokens.weight"}, {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "head.weight"}, {"output_hc_fn.weight", "model.hc_head.hc_fn"},
    {"output_hc_base.weight", "model.hc_head.hc_base"}, {"output_hc_scale.weight", "model.hc_head.hc_scale"},
};

/* Source name for a GGUF tensor; *is_stack for the expert tensors (then the
 * result is a printf pattern with the expert index). */
static int source_of(const char *gname, char *out, size_t cap, int *is_stack) {
    *is_stack = 0;
    for (size_t i = 0; i < sizeof GLOBAL_MAP / sizeof GLOBAL_MAP[0]; i++)
        if (!strcmp(gname, GLOBAL_MAP[i][0])) { snprintf(out, cap, "%s", GLOBAL_MAP[i][1]); return 0; }
    int layer, n = 0;
    if (sscanf(gname, "blk.%d.%n", &layer, &n) != 1 || !n) return -1;
    const char *suf = gname + n;
    for (size_t i = 0; i < sizeof LAYER_MAP / sizeof LAYER_MAP[0]; i++) {
        if (strcmp(suf, LAYER_MAP[i][0])) continue;
        if (strstr(suf, "_exps")) {
            *is_stack = 1;
            snprintf(out, cap, "model.layers.%d.ffn.experts.%%d.%s.weight", layer, LAYER_MAP[i][1]);
        } else {
            snprintf(out, cap, "model.layers.%d.%s", layer, LAYER_MAP[i][1]);
        }
        return 0;
    }
    return -1;
}

static bool is_smallmat(const char *g) {
    return strstr(g, "hc_attn_fn") || strstr(g, "hc_ffn_fn") || strstr(g, "output_hc_fn") ||
           strstr(g, "compressor_kv") || strstr(g, "compressor_gate") || strstr(g, "indexer.") ||
           strstr(g, "ffn_gate_inp") || strstr(g, "_ape") || strstr(g, "token_embd");
}

/* Expected GGUF type under the policy in the brief. */
static int32_t expected_type(const char *g, int n_dims, int64_t ne0, int32_t dense) {
    if (strstr(g, "tid2eid")) return DS4J_TYPE_I32;
    if (n_dims == 1) return DS4J_TYPE_F32;
    int32_t t = dense;
    if (is_smallmat(g)) t = dense == DS4J_TYPE_F32 ? DS4J_TYPE_F32 : dense == DS4J_TYPE_BF16 ? DS4J_TYPE_BF16 : DS4J_TYPE_F16;
    if (t == DS4J_TYPE_Q8_0 && ne0 % 32) t = DS4J_TYPE_F16;
    return t;
}

/* Allowed |gguf - source| for one block/row given the source values. */
static int compare_vals(int32_t type, const float *got, const float *want, int64_t n, double *worst) {
    int bad = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 32) {
        int64_t m = n - i0 < 32 ? n - i0 : 32;
        float amax = 0;
        for (int64_t i = 0; i < m; i++) amax = fmaxf(amax, fabsf(want[i0 + i]));
        for (int64_t i = 0; i < m; i++) {
            float g = got[i0 + i], w = want[i0 + i];
            double tol;
            switch (type) {
            case DS4J_TYPE_F32: tol = 0; break;
            case DS4J_TYPE_F16: tol = fmax(fabs(w) * 0x1p-11, 0x1p-24); break;
            case DS4J_TYPE_BF16: tol = fabs(w) * 0x1p-8 + 1e-37; break;
            case DS4J_TYPE_Q8_0: tol = amax * (0.5 / 127 + 0x1p-10) + 1e-12; break;
            default: tol = INFINITY;
            }
            double d = fabs((double)g - (double)w);
            if (!(d <= tol) || (type == DS4J_TYPE_F32 && memcmp(&g, &w, 4))) bad++;
            if (d > *worst) *worst = d;
        }
    }
    return bad;
}

/* ------------------------------------------------------------- checks */

static uint32_t u32_or(const json_value *o, const char *k, uint32_t d) {
    int64_t v;
    return json_get_int(o, k, &v) ? (uint32_t)v : d;
}
static float f32_of(const json_value *o, const char *k) {
    double v = NAN;
    json_get_num(o, k, &v);
    return (float)v;
}

static void check_u32(const gguf_file *g, const char *key, uint32_t want) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    CHECK(kv != NULL, "missing key %s", key);
    if (!kv) return;
    int64_t v = -1;
    CHECK(gguf_kv_type(kv) == GGUF_T_UINT32, "%s: type %d, want UINT32", key, gguf_kv_type(kv));
    CHECK(gguf_kv_get_int(kv, &v) && v == (int64_t)want, "%s = %lld, want %u", key, (long long)v, want);
}
static void check_f32(const gguf_file *g, const char *key, float want) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    CHECK(kv != NULL, "missing key %s", key);
    if (!kv) return;
    double v = NAN;
    CHECK(gguf_kv_type(kv) == GGUF_T_FLOAT32, "%s: type %d, want FLOAT32", key, gguf_kv_type(kv));
    CHECK(gguf_kv_get_float(kv, &v) && (float)v == want, "%s = %g, want %g", key, v, (double)want);
}
static void check_str(const gguf_file *g, const char *key, const char *want) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    gguf_string s = {0};
    CHECK(kv && gguf_kv_get_str(kv, &s) && s.len == strlen(want) && !memcmp(s.ptr, want, s.len), "%s != \"%s\"", key, want);
}

static void check_metadata(const gguf_file *g, const json_value *c, int32_t dense) {
    const uint32_t L = u32_or(c, "num_hidden_layers", 0);
    check_str(g, "general.architecture", "deepseek4");
    check_u32(g, "general.alignment", 32);
    CHECK(gguf_find_kv(g, "general.name") != NULL, "general.name missing");
    const gguf_kv *ft = gguf_find_kv(g, "general.file_type");
    CHECK(ft && gguf_kv_type(ft) == GGUF_T_UINT32, "general.file_type missing or not UINT32");
    CHECK((gguf_find_kv(g, "general.quantization_version") != NULL) == (dense == DS4J_TYPE_Q8_0),
          "general.quantization_version presence");
    check_u32(g, "deepseek4.embedding_length", u32_or(c, "hidden_size", 0));
    check_u32(g, "deepseek4.block_count", L);
    check_u32(g, "deepseek4.vocab_size", u32_or(c, "vocab_size", 0));
    check_u32(g, "deepseek4.context_length", u32_or(c, "max_position_embeddings", 0));
    check_u32(g, "deepseek4.attention.head_count", u32_or(c, "num_attention_heads", 0));
    check_u32(g, "deepseek4.attention.head_count_kv", u32_or(c, "num_key_value_heads", 0));
    check_u32(g, "deepseek4.attention.key_length", u32_or(c, "head_dim", 0));
    check_u32(g, "deepseek4.attention.value_length", u32_or(c, "head_dim", 0));
    check_u32(g, "deepseek4.rope.dimension_count", u32_or(c, "qk_rope_head_dim", 0));
    check_u32(g, "deepseek4.attention.q_lora_rank", u32_or(c, "q_lora_rank", 0));
    check_u32(g, "deepseek4.attention.output_group_count", u32_or(c, "o_groups", 0));
    check_u32(g, "deepseek4.attention.output_lora_rank", u32_or(c, "o_lora_rank", 0));
    check_u32(g, "deepseek4.expert_count", u32_or(c, "n_routed_experts", 0));
    check_u32(g, "deepseek4.expert_used_count", u32_or(c, "num_experts_per_tok", 0));
    check_u32(g, "deepseek4.expert_feed_forward_length", u32_or(c, "moe_intermediate_size", 0));
    check_u32(g, "deepseek4.expert_shared_count", u32_or(c, "n_shared_experts", 0));
    check_u32(g, "deepseek4.attention.sliding_window", u32_or(c, "sliding_window", 0));
    check_u32(g, "deepseek4.attention.indexer.head_count", u32_or(c, "index_n_heads", 0));
    check_u32(g, "deepseek4.attention.indexer.key_length", u32_or(c, "index_head_dim", 0));
    check_u32(g, "deepseek4.attention.indexer.top_k", u32_or(c, "index_topk", 0));
    check_u32(g, "deepseek4.hyper_connection.count", u32_or(c, "hc_mult", 0));
    check_u32(g, "deepseek4.hyper_connection.sinkhorn_iterations", u32_or(c, "hc_sinkhorn_iters", 0));
    check_u32(g, "deepseek4.expert_gating_func", 4);
    check_f32(g, "deepseek4.hyper_connection.epsilon", f32_of(c, "hc_eps"));
    check_f32(g, "deepseek4.attention.layer_norm_rms_epsilon", f32_of(c, "rms_norm_eps"));
    check_f32(g, "deepseek4.expert_weights_scale", f32_of(c, "routed_scaling_factor"));
    const json_value *rp = json_get(c, "rope_parameters");
    const json_value *cp = json_get(rp, "compress");
    check_f32(g, "deepseek4.rope.freq_base", f32_of(json_get(rp, "main"), "rope_theta"));
    check_f32(g, "deepseek4.attention.compress_rope_freq_base", f32_of(cp, "rope_theta"));
    check_f32(g, "deepseek4.rope.scaling.factor", f32_of(cp, "factor"));
    check_f32(g, "deepseek4.rope.scaling.yarn_beta_fast", f32_of(cp, "beta_fast"));
    check_f32(g, "deepseek4.rope.scaling.yarn_beta_slow", f32_of(cp, "beta_slow"));
    check_u32(g, "deepseek4.rope.scaling.original_context_length", u32_or(cp, "original_max_position_embeddings", 0));
    check_str(g, "deepseek4.rope.scaling.type", "yarn");
    const gguf_kv *kv = gguf_find_kv(g, "deepseek4.expert_weights_norm");
    int64_t b = 0;
    CHECK(kv && gguf_kv_type(kv) == GGUF_T_BOOL && gguf_kv_get_int(kv, &b) && b == 1, "expert_weights_norm");
    /* per-layer arrays */
    kv = gguf_find_kv(g, "deepseek4.swiglu_clamp_exp");
    CHECK(kv && gguf_kv_arr_type(kv) == GGUF_T_FLOAT32 && gguf_kv_arr_len(kv) == L, "swiglu_clamp_exp: FLOAT32[L]");
    for (uint32_t i = 0; kv && i < gguf_kv_arr_len(kv); i++) {
        double v = 0;
        CHECK(gguf_kv_arr_float(kv, i, &v) && (float)v == f32_of(c, "swiglu_limit"), "swiglu_clamp_exp[%u]", i);
    }
    kv = gguf_find_kv(g, "deepseek4.attention.compress_ratios");
    CHECK(kv && (gguf_kv_arr_type(kv) == GGUF_T_UINT32 || gguf_kv_arr_type(kv) == GGUF_T_INT32) && gguf_kv_arr_len(kv) >= L,
          "compress_ratios: int array >= L");
    const json_value *lt = json_get(c, "layer_types"), *rates = json_get(c, "compress_rates");
    for (uint32_t i = 0; kv && lt && i < L && i < gguf_kv_arr_len(kv); i++) {
        const char *s = json_as_str(&lt->u.arr.items[i]);
        uint32_t want = !strcmp(s, "sliding_attention") ? 0 : u32_or(rates, s, 999);
        int64_t v = -1;
        CHECK(gguf_kv_arr_int(kv, i, &v) && v == want, "compress_ratios[%u] = %lld, want %u", i, (long long)v, want);
    }
    const json_value *mt = json_get(c, "mlp_layer_types");
    uint32_t nhash = 0;
    for (size_t i = 0; mt && i < mt->u.arr.n; i++) nhash += !strcmp(json_as_str(&mt->u.arr.items[i]), "hash_moe");
    check_u32(g, "deepseek4.hash_layer_count", nhash);
    CHECK(nhash > 0, "fixture has hash layers");
    /* presence rules */
    for (uint32_t l = 0; l < L; l++) {
        char n1[96], n2[96], n3[96];
        snprintf(n1, sizeof n1, "blk.%u.ffn_gate_tid2eid.weight", l);
        snprintf(n2, sizeof n2, "blk.%u.exp_probs_b.bias", l);
        snprintf(n3, sizeof n3, "blk.%u.indexer.attn_q_b.weight", l);
        bool hash = l < nhash;
        CHECK((gguf_find_tensor(g, n1) != NULL) == hash, "layer %u: tid2eid presence", l);
        CHECK((gguf_find_tensor(g, n2) != NULL) == !hash, "layer %u: exp_probs_b presence", l);
        bool csa = lt && !strcmp(json_as_str(&lt->u.arr.items[l]), "compressed_sparse_attention");
        CHECK((gguf_find_tensor(g, n3) != NULL) == csa, "layer %u: indexer presence", l);
    }
}

static void src_floats(const st_tensor *t, float *out) {
    for (int64_t i = 0; i < t->numel; i++) memcpy(&out[i], t->data + 4 * i, 4);
}

static void check_tensors(const gguf_file *g, const st_model *st, const json_value *c, int32_t dense, const char *label) {
    int64_t nst = st_count(st);
    int *used = calloc((size_t)nst, sizeof *used);
    const int E = (int)u32_or(c, "n_routed_experts", 0);
    double worst = 0;
    int64_t n_checked = 0;
    for (int64_t ti = 0; ti < gguf_tensor_count(g); ti++) {
        const gguf_tensor *gt = gguf_tensor_at(g, ti);
        char src[200];
        int stack;
        if (source_of(gt->name, src, sizeof src, &stack)) {
            CHECK(0, "%s: GGUF tensor %s has no source in the spec mapping", label, gt->name);
            continue;
        }
        int32_t want_t = expected_type(gt->name, (int)gt->n_dims, gt->ne[0], dense);
        CHECK(gt->type == want_t, "%s: %s type %d, want %d", label, gt->name, gt->type, want_t);
        int nsrc = stack ? E : 1;
        CHECK(!stack || (gt->n_dims == 3 && gt->ne[2] == E), "%s: %s is not an [.., .., E] stack", label, gt->name);
        int64_t per = 0;
        for (int x = 0; x < nsrc; x++) {
            char nm[200];
            if (stack) snprintf(nm, sizeof nm, src, x);
            else snprintf(nm, sizeof nm, "%s", src);
            const st_tensor *s = st_find(st, nm);
            CHECK(s != NULL, "%s: source %s of %s missing", label, nm, gt->name);
            if (!s) continue;
            used[s - st_at(st, 0)]++;
            /* dims reversed */
            bool dims_ok = s->n_dims == 1 ? (gt->ne[0] == s->shape[0] && gt->ne[1] == 1)
                                          : (gt->ne[0] == s->shape[1] && gt->ne[1] == s->shape[0]);
            CHECK(dims_ok, "%s: %s ne [%lld, %lld] vs source %s", label, gt->name, (long long)gt->ne[0],
                  (long long)gt->ne[1], nm);
            if (!dims_ok) continue;
            per = s->numel;
            if (gt->type == DS4J_TYPE_I32) {
                CHECK(s->dtype == ST_I64, "tid2eid source dtype");
                int64_t bad = 0;
                for (int64_t i = 0; i < s->numel; i++) {
                    int64_t v;
                    int32_t w;
                    memcpy(&v, s->data + 8 * i, 8);
                    memcpy(&w, (const uint8_t *)gt->data + 4 * i, 4);
                    bad += (v != w) || w < 0 || w >= E;
                }
                CHECK(bad == 0, "%s: %s: %lld ids differ", label, gt->name, (long long)bad);
                n_checked += s->numel;
                continue;
            }
            const ds4j_type_traits *tr = ds4j_type_get(gt->type);
            CHECK(tr && tr->to_float, "no dequantizer for type %d", gt->type);
            if (!tr || !tr->to_float) continue;
            int64_t ne0 = gt->ne[0], rows = s->numel / ne0;
            int64_t rs = ds4j_row_size(gt->type, ne0);
            float *want = malloc((size_t)s->numel * 4), *got = malloc((size_t)s->numel * 4);
            src_floats(s, want);
            const uint8_t *base = (const uint8_t *)gt->data + (uint64_t)x * rows * rs;
            for (int64_t r = 0; r < rows; r++) tr->to_float(base + r * rs, got + r * ne0, ne0);
            int bad = 0;
            for (int64_t r = 0; r < rows; r++) bad += compare_vals(gt->type, got + r * ne0, want + r * ne0, ne0, &worst);
            CHECK(bad == 0, "%s: %s (%s): %d values outside the %s bound", label, gt->name, nm, bad, tr->name);
            n_checked += s->numel;
            free(want);
            free(got);
        }
        CHECK((uint64_t)ds4j_row_size(gt->type, gt->ne[0]) * (uint64_t)(per / gt->ne[0]) * (uint64_t)nsrc == gt->nbytes,
              "%s: %s byte size", label, gt->name);
    }
    for (int64_t i = 0; i < nst; i++)
        CHECK(used[i] == 1, "%s: source %s used %d times", label, st_at(st, i)->name, used[i]);
    printf("  %s: %lld tensors, %lld values checked, worst |diff| %.3g\n", label, (long long)gguf_tensor_count(g),
           (long long)n_checked, worst);
    free(used);
}

static void test_fixture(const char *fx, int32_t dense) {
    char dir[512], out[512], label[128], err[1024] = "";
    snprintf(dir, sizeof dir, "%s/fixtures/%s", DS4J_SHARED_DIR, fx);
    snprintf(out, sizeof out, "%s/test_convert_%s_%d.gguf", DS4J_BUILD_DIR, fx, dense);
    const ds4j_type_traits *tr = ds4j_type_get(dense);
    snprintf(label, sizeof label, "%s --type %s", fx, tr ? tr->name : "?");
    ds4j_convert_opts o = {.hf_dir = dir, .out_path = out, .dense_type = dense, .expert_type = -1};
    int rc = ds4j_convert_hf(&o, err, sizeof err);
    CHECK(rc == 0, "%s: convert failed: %s", label, err);
    if (rc) return;
    gguf_file *g = NULL;
    rc = gguf_open(&g, out, err, sizeof err);
    CHECK(rc == 0, "%s: reading back failed: %s", label, err);
    st_model *st = NULL;
    CHECK(st_open(&st, dir, err, sizeof err) == 0, "st_open: %s", err);
    json_doc *cfg = NULL;
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/config.json");
    CHECK(json_parse_file(&cfg, dir, err, sizeof err) == 0, "config: %s", err);
    if (g && st && cfg) {
        check_metadata(g, json_root(cfg), dense);
        check_tensors(g, st, json_root(cfg), dense, label);
    }
    json_free(cfg);
    st_close(st);
    gguf_close(g);
    unlink(out);
}

/* ------------------------------------------------------- bad inputs */

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}
static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static void expect_fail(const char *dir, const char *what, const char *needle) {
    char out[512], err[1024] = "";
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    ds4j_convert_opts o = {.hf_dir = dir, .out_path = out, .dense_type = DS4J_TYPE_F32, .expert_type = -1};
    int rc = ds4j_convert_hf(&o, err, sizeof err);
    CHECK(rc != 0, "%s: conversion should fail", what);
    CHECK(strstr(err, needle) != NULL, "%s: error '%s' does not mention '%s'", what, err, needle);
    struct stat stt;
    CHECK(stat(out, &stt) != 0, "%s: an output file was left behind", what);
    printf("  bad input (%s): %s\n", what, err);
}

static void test_bad_inputs(void) {
    char src[512], dir[512], p[600];
    snprintf(src, sizeof src, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    size_t ncfg, nst;
    snprintf(p, sizeof p, "%s/config.json", src);
    char *cfg = read_all(p, &ncfg);
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    char *st = read_all(p, &nst);
    CHECK(cfg && st, "fixture readable");
    if (!cfg || !st) return;
    snprintf(dir, sizeof dir, "%s/test_convert_bad", DS4J_BUILD_DIR);
    mkdir(dir, 0755);
    char cpath[600], spath[600];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    snprintf(spath, sizeof spath, "%s/model.safetensors", dir);

    /* 1. missing config.json */
    unlink(cpath);
    write_file(spath, st, nst);
    expect_fail(dir, "missing config.json", "config.json");

    /* 2. truncated safetensors */
    write_file(cpath, cfg, ncfg);
    write_file(spath, st, nst - 1000);
    expect_fail(dir, "truncated safetensors", "truncated");
    write_file(spath, st, 20);
    expect_fail(dir, "safetensors cut inside its header", "truncated");

    /* 3. shape mismatch: config with a different expert width */
    {
        char *c2 = malloc(ncfg + 16);
        const char *k = "\"moe_intermediate_size\": 32";
        char *at = strstr(cfg, k);
        CHECK(at != NULL, "config has moe_intermediate_size 32");
        if (at) {
            size_t pre = (size_t)(at - cfg);
            int n = sprintf(c2, "%.*s\"moe_intermediate_size\": 16%s", (int)pre, cfg, at + strlen(k));
            write_file(cpath, c2, (size_t)n);
            write_file(spath, st, nst);
            expect_fail(dir, "shape mismatch", "expected");
        }
        free(c2);
    }

    /* 4. unknown tensor: add an entry to the header */
    {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)(unsigned char)st[i] << (8 * i);
        uint64_t data_len = nst - 8 - hl;
        char extra[200];
        int ne = snprintf(extra, sizeof extra,
                          "\"model.layers.0.attn.bogus.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%llu,%llu]},",
                          (unsigned long long)data_len, (unsigned long long)data_len + 4);
        uint64_t nhl = hl + (uint64_t)ne;
        char *b = malloc(nst + ne + 4);
        for (int i = 0; i < 8; i++) b[i] = (char)(nhl >> (8 * i));
        b[8] = '{';
        memcpy(b + 9, extra, (size_t)ne);
        memcpy(b + 9 + ne, st + 9, nst - 9);
        memset(b + 8 + nhl + data_len, 0, 4);
        write_file(cpath, cfg, ncfg);
        write_file(spath, b, nst + ne + 4);
        expect_fail(dir, "unknown tensor", "unknown tensor");
        free(b);
    }

    /* 5. tid2eid with an expert id >= E (= 8) */
    {
        char *b = malloc(nst), err[256];
        memcpy(b, st, nst);
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)(unsigned char)st[i] << (8 * i);
        json_doc *hd = NULL;
        int64_t o0 = -1;
        if (json_parse(&hd, st + 8, hl, err, sizeof err) == 0) {
            const json_value *o = json_get(json_get(json_root(hd), "model.layers.0.ffn.gate.tid2eid"), "data_offsets");
            if (!o || !json_as_int(&o->u.arr.items[0], &o0)) o0 = -1;
            json_free(hd);
        }
        CHECK(o0 >= 0, "tid2eid offset found");
        if (o0 >= 0) {
            int64_t v = 8;
            memcpy(b + 8 + hl + o0, &v, 8);
            write_file(spath, b, nst);
            expect_fail(dir, "tid2eid out of range", "outside");
        }
        free(b);
    }

    unlink(cpath);
    unlink(spath);
    rmdir(dir);
    free(cfg);
    free(st);
}

/* ------------------------------------------- official names, FP8/FP4 */

typedef struct wt { char name[128]; const char *dtype; int nd; int64_t shape[2]; uint8_t *data; size_t n; } wt;

static int write_safetensors(const char *path, const wt *t, int n) {
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)sprintf(h + len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(h + len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].nd; d++) len += (size_t)sprintf(h + len, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
        len += (size_t)sprintf(h + len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].n);
        off += t[i].n;
    }
    h[len++] = '}';
    while (len % 8) h[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { free(h); return -1; }
    uint8_t hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (uint8_t)((uint64_t)len >> (8 * i));
    fwrite(hl, 1, 8, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < n; i++) fwrite(t[i].data, 1, t[i].n, f);
    fclose(f);
    free(h);
    return 0;
}

static float dec_e4m3(uint8_t b) {
    int e = (b >> 3) & 15, m = b & 7;
    float v = e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf(m / 8.0f, -6);
    return (b & 0x80) ? -v : v;
}
static float dec_e2m1(int nib) {
    static const float mag[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    return (nib & 8) ? -mag[nib & 7] : mag[nib & 7];
}

static void test_official_fp8(void) {
    char src[512], dir[512], p[700], err[1024] = "", out_ref[600], out_off[600];
    snprintf(src, sizeof src, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    snprintf(dir, sizeof dir, "%s/test_convert_official", DS4J_BUILD_DIR);
    mkdir(dir, 0755);
    st_model *m = NULL;
    if (st_open(&m, src, err, sizeof err)) { CHECK(0, "st_open: %s", err); return; }
    int n = (int)st_count(m);
    wt *t = calloc((size_t)n + 16, sizeof *t); /* + FP8/FP4 scales + mtp */
    int k = 0;
    float *want_qa = NULL, *want_exp = NULL, *want_head = NULL;
    for (int i = 0; i < n; i++) {
        const st_tensor *s = st_at(m, i);
        wt *w = &t[k++];
        /* official naming */
        const char *nm = s->name;
        if (!strcmp(nm, "model.embed_tokens.weight")) snprintf(w->name, sizeof w->name, "embed.weight");
        else if (!strcmp(nm, "model.norm.weight")) snprintf(w->name, sizeof w->name, "norm.weight");
        else if (!strncmp(nm, "model.hc_head.hc_", 17)) snprintf(w->name, sizeof w->name, "hc_head_%s", nm + 17);
        else if (!strncmp(nm, "model.layers.", 13)) {
            snprintf(w->name, sizeof w->name, "%s", nm + 6);
            char *a = strstr(w->name, "attn.norm.weight");
            if (a) snprintf(a, sizeof w->name - (size_t)(a - w->name), "attn.kv_norm.weight");
        } else snprintf(w->name, sizeof w->name, "%s", nm);
        w->dtype = s->dtype == ST_I64 ? "I64" : "F32";
        w->nd = s->n_dims;
        w->shape[0] = s->shape[0];
        w->shape[1] = s->n_dims > 1 ? s->shape[1] : 0;
        w->n = s->nbytes;
        w->data = malloc(s->nbytes);
        memcpy(w->data, s->data, s->nbytes);
        if (!strcmp(w->name, "layers.0.attn.wq_a.weight")) {
            /* FP8 E4M3 [32, 64] with a [1, 1] F32 block scale */
            int64_t ne = 32 * 64;
            want_qa = malloc((size_t)ne * 4);
            w->dtype = "F8_E4M3";
            w->n = (size_t)ne;
            for (int64_t j = 0; j < ne; j++) {
                uint8_t b = (uint8_t)((j * 37 + 11) & 0xFF);
                if ((b & 0x7F) == 0x7F) b ^= 1; /* not NaN */
                w->data[j] = b;
                want_qa[j] = dec_e4m3(b) * 0.0625f;
            }
            wt *sc = &t[k++];
            snprintf(sc->name, sizeof sc->name, "layers.0.attn.wq_a.scale");
            sc->dtype = "F32";
            sc->nd = 2;
            sc->shape[0] = sc->shape[1] = 1;
            sc->n = 4;
            sc->data = malloc(4);
            float v = 0.0625f;
            memcpy(sc->data, &v, 4);
        } else if (!strncmp(w->name, "layers.2.ffn.experts.", 21) && strstr(w->name, ".w1.weight")) {
            /* FP4 E2M1 packed [32, 32] + E8M0 scales [32, 2] */
            int e = atoi(w->name + 21);
            if (!want_exp) want_exp = calloc(8 * 32 * 64, 4);
            w->dtype = "I8";
            w->shape[1] = 32;
            w->n = 32 * 32;
            wt *sc = &t[k++];
            snprintf(sc->name, sizeof sc->name, "layers.2.ffn.experts.%d.w1.scale", e);
            sc->dtype = "F8_E8M0";
            sc->nd = 2;
            sc->shape[0] = 32;
            sc->shape[1] = 2;
            sc->n = 64;
            sc->data = malloc(64);
            for (int r = 0; r < 32; r++) {
                for (int b = 0; b < 2; b++) sc->data[r * 2 + b] = (uint8_t)(120 + (r + b + e) % 9);
                for (int c = 0; c < 32; c++) {
                    uint8_t byte = (uint8_t)((r * 31 + c * 7 + e * 13) & 0xFF);
                    w->data[r * 32 + c] = byte;
                    float s0 = ldexpf(1.0f, (int)sc->data[r * 2 + (2 * c) / 32] - 127);
                    want_exp[(e * 32 + r) * 64 + 2 * c] = dec_e2m1(byte & 15) * s0;
                    want_exp[(e * 32 + r) * 64 + 2 * c + 1] = dec_e2m1(byte >> 4) * s0;
                }
            }
        } else if (!strcmp(w->name, "head.weight")) {
            /* BF16: keep the upper halves */
            int64_t ne = s->numel;
            want_head = malloc((size_t)ne * 4);
            w->dtype = "BF16";
            w->n = (size_t)ne * 2;
            for (int64_t j = 0; j < ne; j++) {
                uint32_t u;
                memcpy(&u, s->data + 4 * j, 4);
                uint16_t h = (uint16_t)(u >> 16);
                memcpy(w->data + 2 * j, &h, 2);
                u = (uint32_t)h << 16;
                memcpy(&want_head[j], &u, 4);
            }
        }
    }
    /* an MTP tensor is skipped */
    wt *mt = &t[k++];
    snprintf(mt->name, sizeof mt->name, "mtp.0.norm.weight");
    mt->dtype = "F32"; mt->nd = 1; mt->shape[0] = 4; mt->n = 16; mt->data = calloc(1, 16);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(write_safetensors(p, t, k) == 0, "write safetensors");
    const char *cfg =
        "{\"hidden_size\":64,\"num_hidden_layers\":5,\"vocab_size\":512,\"num_attention_heads\":4,"
        "\"num_key_value_heads\":1,\"head_dim\":32,\"qk_rope_head_dim\":16,\"q_lora_rank\":32,\"o_groups\":2,"
        "\"o_lora_rank\":16,\"n_routed_experts\":8,\"num_experts_per_tok\":3,\"moe_intermediate_size\":32,"
        "\"n_shared_experts\":1,\"num_hash_layers\":2,\"sliding_window\":8,\"index_n_heads\":16,\"index_head_dim\":16,"
        "\"index_topk\":4,\"hc_mult\":4,\"hc_sinkhorn_iters\":20,\"hc_eps\":1e-06,\"rms_norm_eps\":1e-06,"
        "\"compress_ratios\":[0,0,4,16,4,0],\"rope_theta\":10000.0,\"compress_rope_theta\":160000.0,"
        "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":16,\"original_max_position_embeddings\":64,"
        "\"beta_fast\":32,\"beta_slow\":1},\"routed_scaling_factor\":1.5,\"swiglu_limit\":10.0,"
        "\"max_position_embeddings\":1048576,\"bos_token_id\":0,\"eos_token_id\":1}";
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, cfg, strlen(cfg));

    snprintf(out_ref, sizeof out_ref, "%s/ref.gguf", dir);
    snprintf(out_off, sizeof out_off, "%s/off.gguf", dir);
    ds4j_convert_opts o1 = {.hf_dir = src, .out_path = out_ref, .dense_type = DS4J_TYPE_F32, .expert_type = -1};
    ds4j_convert_opts o2 = {.hf_dir = dir, .out_path = out_off, .dense_type = DS4J_TYPE_F32, .expert_type = -1};
    CHECK(ds4j_convert_hf(&o1, err, sizeof err) == 0, "ref convert: %s", err);
    int rc = ds4j_convert_hf(&o2, err, sizeof err);
    CHECK(rc == 0, "official-form convert: %s", err);
    gguf_file *gr = NULL, *go = NULL;
    if (!rc && !gguf_open(&gr, out_ref, err, sizeof err) && !gguf_open(&go, out_off, err, sizeof err)) {
        CHECK(gguf_tensor_count(gr) == gguf_tensor_count(go), "tensor counts differ");
        int same = 0;
        for (int64_t i = 0; i < gguf_tensor_count(gr); i++) {
            const gguf_tensor *a = gguf_tensor_at(gr, i), *b = gguf_find_tensor(go, a->name);
            CHECK(b && a->nbytes == b->nbytes && a->type == b->type, "%s: missing or different layout", a->name);
            if (!b || a->nbytes != b->nbytes) continue;
            const float *want = NULL;
            int64_t nw = 0;
            if (!strcmp(a->name, "blk.0.attn_q_a.weight")) { want = want_qa; nw = 32 * 64; }
            else if (!strcmp(a->name, "blk.2.ffn_gate_exps.weight")) { want = want_exp; nw = 8 * 32 * 64; }
            else if (!strcmp(a->name, "output.weight")) { want = want_head; nw = 512 * 64; }
            if (want) {
                CHECK(b->nbytes == (uint64_t)nw * 4 && !memcmp(b->data, want, (size_t)nw * 4), "%s: dequantized source differs", a->name);
            } else {
                same += !memcmp(a->data, b->data, a->nbytes);
                CHECK(!memcmp(a->data, b->data, a->nbytes), "%s differs between official and transformers naming", a->name);
            }
        }
        for (int64_t i = 0; i < gguf_kv_count(gr); i++) {
            const gguf_kv *ka = gguf_kv_at(gr, i);
            const char *key = gguf_kv_key(ka);
            if (strncmp(key, "deepseek4.", 10)) continue;
            const gguf_kv *kb = gguf_find_kv(go, key);
            const void *pa, *pb;
            uint64_t la, lb;
            CHECK(kb != NULL, "official form lacks %s", key);
            if (!kb) continue;
            gguf_kv_raw(ka, &pa, &la);
            gguf_kv_raw(kb, &pb, &lb);
            CHECK(la == lb && !memcmp(pa, pb, la), "%s differs between config forms", key);
        }
        printf("  official names + FP8/FP4/BF16 sources: %d tensors identical, 3 dequantized exactly\n", same);
    } else if (!rc) {
        CHECK(0, "open: %s", err);
    }
    gguf_close(gr);
    gguf_close(go);
    for (int i = 0; i < k; i++) free(t[i].data);
    free(t);
    free(want_qa);
    free(want_exp);
    free(want_head);
    st_close(m);
    if (!getenv("DS4J_KEEP_TEST_FILES")) {
        unlink(out_ref);
        unlink(out_off);
        unlink(p);
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        unlink(p);
        rmdir(dir);
    }
}

/* ------------------------------------------------------------ synth */

static bool files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    bool eq = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return eq;
}

static void test_synth(void) {
    char a[512], b[512], c[512], conv[512], err[1024] = "", dir[512];
    snprintf(a, sizeof a, "%s/test_synth_a.gguf", DS4J_BUILD_DIR);
    snprintf(b, sizeof b, "%s/test_synth_b.gguf", DS4J_BUILD_DIR);
    snprintf(c, sizeof c, "%s/test_synth_c.gguf", DS4J_BUILD_DIR);
    snprintf(conv, sizeof conv, "%s/test_synth_conv.gguf", DS4J_BUILD_DIR);
    ds4j_synth_opts o = {.preset = "tiny", .out_path = a, .seed = 7, .dense_type = -1, .expert_type = -1};
    CHECK(ds4j_synth(&o, err, sizeof err) == 0, "synth tiny: %s", err);
    o.out_path = b;
    CHECK(ds4j_synth(&o, err, sizeof err) == 0, "synth tiny again: %s", err);
    o.out_path = c;
    o.seed = 8;
    CHECK(ds4j_synth(&o, err, sizeof err) == 0, "synth tiny seed 8: %s", err);
    CHECK(files_equal(a, b), "synth is not deterministic for a seed");
    CHECK(!files_equal(a, c), "synth ignores the seed");
    o.preset = "nonsense";
    CHECK(ds4j_synth(&o, err, sizeof err) != 0 && strstr(err, "preset"), "unknown preset accepted");
    o.preset = "demo";
    CHECK(ds4j_synth(&o, err, sizeof err) != 0 && strstr(err, "tokenizer"), "demo without tokenizer accepted");

    /* The tiny preset has tiny-a's layout: same tensors, types, shapes and model keys. */
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    ds4j_convert_opts co = {.hf_dir = dir, .out_path = conv, .dense_type = DS4J_TYPE_F32, .expert_type = -1};
    CHECK(ds4j_convert_hf(&co, err, sizeof err) == 0, "convert: %s", err);
    gguf_file *gs = NULL, *gc = NULL;
    if (gguf_open(&gs, a, err, sizeof err) || gguf_open(&gc, conv, err, sizeof err)) {
        CHECK(0, "open: %s", err);
    } else {
        CHECK(gguf_tensor_count(gs) == gguf_tensor_count(gc), "tensor count %lld vs %lld",
              (long long)gguf_tensor_count(gs), (long long)gguf_tensor_count(gc));
        for (int64_t i = 0; i < gguf_tensor_count(gc); i++) {
            const gguf_tensor *tc = gguf_tensor_at(gc, i), *ts = gguf_find_tensor(gs, tc->name);
            CHECK(ts && ts->type == tc->type && !memcmp(ts->ne, tc->ne, sizeof ts->ne), "synth tensor %s differs in layout", tc->name);
            if (ts && ts->type == DS4J_TYPE_F32) {
                int bad = 0;
                for (int64_t k = 0; k < (int64_t)(ts->nbytes / 4); k++) {
                    float v;
                    memcpy(&v, (const uint8_t *)ts->data + 4 * k, 4);
                    bad += !isfinite(v) || fabsf(v) > 20;
                }
                CHECK(bad == 0, "synth %s: %d wild values", ts->name, bad);
            }
            if (ts && strstr(ts->name, "tid2eid")) {
                int bad = 0;
                for (int64_t t = 0; t < ts->ne[1]; t++)
                    for (int64_t k = 0; k < ts->ne[0]; k++) {
                        int32_t v, u;
                        memcpy(&v, (const uint8_t *)ts->data + 4 * (t * ts->ne[0] + k), 4);
                        bad += v < 0 || v >= 8;
                        for (int64_t j = 0; j < k; j++) {
                            memcpy(&u, (const uint8_t *)ts->data + 4 * (t * ts->ne[0] + j), 4);
                            bad += u == v;
                        }
                    }
                CHECK(bad == 0, "synth tid2eid: %d bad/duplicate ids", bad);
            }
        }
        for (int64_t i = 0; i < gguf_kv_count(gc); i++) {
            const gguf_kv *kc = gguf_kv_at(gc, i);
            const char *key = gguf_kv_key(kc);
            if (strncmp(key, "deepseek4.", 10)) continue;
            const gguf_kv *ks = gguf_find_kv(gs, key);
            const void *pc, *ps;
            uint64_t lc, ls;
            CHECK(ks != NULL, "synth lacks %s", key);
            if (!ks) continue;
            gguf_kv_raw(kc, &pc, &lc);
            gguf_kv_raw(ks, &ps, &ls);
            CHECK(gguf_kv_type(ks) == gguf_kv_type(kc) && lc == ls && !memcmp(pc, ps, lc), "synth %s differs from tiny-a", key);
        }
    }
    gguf_close(gs);
    gguf_close(gc);

    /* Random quantized expert blocks dequantize to finite values of a sane size. */
    ds4j_hparams hp;
    int32_t d0, e0;
    ds4j_synth_preset("tiny", &hp, &d0, &e0);
    hp.n_embd = 256;
    hp.n_ff_exp = 256;
    hp.n_layer = 2;
    hp.n_vocab = 64;
    hp.n_expert = 4;
    const int32_t qt[] = {DS4J_TYPE_IQ2_XXS, DS4J_TYPE_Q4_K, DS4J_TYPE_Q2_K, DS4J_TYPE_Q8_0};
    for (size_t q = 0; q < sizeof qt / sizeof qt[0]; q++) {
        ds4j_synth_opts so = {.hp = &hp, .out_path = a, .seed = 3, .dense_type = DS4J_TYPE_Q8_0, .expert_type = qt[q]};
        CHECK(ds4j_synth(&so, err, sizeof err) == 0, "synth custom: %s", err);
        gguf_file *g = NULL;
        if (gguf_open(&g, a, err, sizeof err)) { CHECK(0, "open: %s", err); continue; }
        const gguf_tensor *t = gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
        const ds4j_type_traits *tr = t ? ds4j_type_get(t->type) : NULL;
        CHECK(t && t->type == qt[q] && tr && tr->to_float, "expert type %d", qt[q]);
        if (t && tr && tr->to_float) {
            int64_t n = t->ne[0] * t->ne[1] * t->ne[2];
            float *v = malloc((size_t)n * 4);
            int64_t rs = ds4j_row_size(t->type, t->ne[0]);
            for (int64_t r = 0; r < n / t->ne[0]; r++) tr->to_float((const uint8_t *)t->data + r * rs, v + r * t->ne[0], t->ne[0]);
            double ss = 0;
            int bad = 0;
            for (int64_t i = 0; i < n; i++) { bad += !isfinite(v[i]); ss += (double)v[i] * v[i]; }
            double rms = sqrt(ss / n), want = 1.0 / sqrt((double)t->ne[0]);
            CHECK(bad == 0 && rms > want / 4 && rms < want * 4, "%s experts: rms %.4g (want ~%.4g), %d non-finite", tr->name, rms, want, bad);
            printf("  synth %s experts: rms %.4g (target %.4g)\n", tr->name, rms, want);
            free(v);
        }
        gguf_close(g);
    }
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(conv);
}

/* -------------------------------------------------------- tokenizer */

static int fill_one(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    memset(dst, 0, nbytes);
    return 0;
}

static void test_tokenizer(void) {
    const char *tj = getenv("DS4J_TOKENIZER_JSON");
    struct stat stt;
    static const char fallback[] = DS4J_BUILD_DIR "/../tokenizer/tokenizer.json"; /* scripts/fetch-tokenizer */
    if ((!tj || !tj[0]) && !stat(fallback, &stt)) tj = fallback;
    if (!tj || stat(tj, &stt)) {
        printf("  SKIP tokenizer: set DS4J_TOKENIZER_JSON to the tokenizer.json from scripts/fetch-tokenizer\n");
        return;
    }
    char out[512], err[1024] = "";
    snprintf(out, sizeof out, "%s/test_convert_tok.gguf", DS4J_BUILD_DIR);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "deepseek4");
    ds4j_tokenizer_data *keep = NULL;
    uint32_t ntok = 0;
    int rc = ds4j_tokenizer_add(w, tj, 129280, 0, 1, &keep, &ntok, err, sizeof err);
    CHECK(rc == 0, "tokenizer_add: %s", err);
    CHECK(ntok == 129280, "token count %u", ntok);
    int64_t ne[1] = {32};
    gguf_writer_add_tensor(w, "dummy", DS4J_TYPE_F32, 1, ne, fill_one, NULL);
    rc = rc ? rc : gguf_writer_write(w, out, err, sizeof err);
    CHECK(rc == 0, "write: %s", err);
    gguf_writer_free(w);
    ds4j_tokenizer_free(keep);
    gguf_file *g = NULL;
    if (rc || gguf_open(&g, out, err, sizeof err)) { CHECK(0, "read back: %s", err); return; }
    check_str(g, "tokenizer.ggml.model", "gpt2");
    check_str(g, "tokenizer.ggml.pre", "joyai-llm");
    check_u32(g, "tokenizer.ggml.bos_token_id", 0);
    check_u32(g, "tokenizer.ggml.eos_token_id", 1);
    const gguf_kv *add_bos = gguf_find_kv(g, "tokenizer.ggml.add_bos_token");
    int64_t ab = 1;
    CHECK(add_bos && gguf_kv_type(add_bos) == GGUF_T_BOOL && gguf_kv_get_int(add_bos, &ab) && ab == 0, "add_bos_token false");
    const gguf_kv *toks = gguf_find_kv(g, "tokenizer.ggml.tokens");
    const gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
    const gguf_kv *merges = gguf_find_kv(g, "tokenizer.ggml.merges");
    CHECK(toks && gguf_kv_arr_type(toks) == GGUF_T_STRING && gguf_kv_arr_len(toks) == 129280, "tokens: 129280 strings");
    CHECK(types && gguf_kv_arr_type(types) == GGUF_T_INT32 && gguf_kv_arr_len(types) == 129280, "token_type: INT32[129280]");
    CHECK(merges && gguf_kv_arr_type(merges) == GGUF_T_STRING && gguf_kv_arr_len(merges) == 127741, "merges: 127741");
    static const struct { uint32_t id; const char *s; int type; } T[] = {
        {0, "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 3},
        {1, "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 3},
        {3, "!", 1}, {201, "\xc4\x8a", 1}, {223, "\xc4\xa0", 1},
        /* V3's tokenizer.json marks User/Assistant "special": false -> user-defined (4) */
        {128803, "<\xef\xbd\x9c" "User\xef\xbd\x9c>", 4}, {128804, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", 4},
        {128000, "<\xef\xbd\x9c" "place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81" "0\xef\xbd\x9c>", 3},
        {128821, "<think>", 3}, {128822, "</think>", 3}, {128825, "\xef\xbd\x9c" "DSML\xef\xbd\x9c", 3},
        {128828, "<\xef\xbd\x9c" "latest_reminder\xef\xbd\x9c>", 3}, {128829, "<\xef\xbd\x9c" "action\xef\xbd\x9c>", 3},
        {128830, "<\xef\xbd\x9c" "query\xef\xbd\x9c>", 3}, {129000, "[PAD129000]", 5}, {128815, "[PAD128815]", 5},
    };
    for (size_t i = 0; toks && types && i < sizeof T / sizeof T[0]; i++) {
        gguf_string s = {0};
        int64_t ty = -1;
        CHECK(gguf_kv_arr_str(toks, T[i].id, &s) && s.len == strlen(T[i].s) && !memcmp(s.ptr, T[i].s, s.len),
              "token %u is '%.*s', want '%s'", T[i].id, (int)s.len, s.ptr ? s.ptr : "", T[i].s);
        CHECK(gguf_kv_arr_int(types, T[i].id, &ty) && ty == T[i].type, "token %u type %lld, want %d", T[i].id, (long long)ty, T[i].type);
    }
    /* merges in rank order, "a b" form, same as the source file */
    json_doc *d = NULL;
    if (json_parse_file(&d, tj, err, sizeof err) == 0 && merges) {
        const json_value *m = json_get(json_get(json_root(d), "model"), "merges");
        size_t idx[] = {0, 1, 1000, 127740};
        for (size_t i = 0; m && i < 4; i++) {
            const json_value *v = &m->u.arr.items[idx[i]];
            char want[256];
            if (v->type == JSON_STRING) snprintf(want, sizeof want, "%s", v->u.str.s);
            else snprintf(want, sizeof want, "%s %s", v->u.arr.items[0].u.str.s, v->u.arr.items[1].u.str.s);
            gguf_string s = {0};
            CHECK(gguf_kv_arr_str(merges, idx[i], &s) && s.len == strlen(want) && !memcmp(s.ptr, want, s.len),
                  "merge %zu is '%.*s', want '%s'", idx[i], (int)s.len, s.ptr ? s.ptr : "", want);
        }
        gguf_string s0 = {0};
        gguf_kv_arr_str(merges, 0, &s0);
        printf("  tokenizer: 129280 tokens, first merge '%.*s'\n", (int)s0.len, s0.ptr);
    }
    json_free(d);
    gguf_close(g);
    unlink(out);

    /* A model whose vocab_size is smaller than the tokenizer is refused. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    snprintf(out, sizeof out, "%s/test_convert_tokmismatch.gguf", DS4J_BUILD_DIR);
    ds4j_convert_opts o = {.hf_dir = dir, .out_path = out, .dense_type = DS4J_TYPE_F32, .expert_type = -1, .tokenizer = tj};
    CHECK(ds4j_convert_hf(&o, err, sizeof err) != 0 && strstr(err, "vocab"), "vocab mismatch not reported: %s", err);
}

int main(void) {
    ds4j_quants_init();
    test_json();
    const int32_t types[] = {DS4J_TYPE_F32, DS4J_TYPE_F16, DS4J_TYPE_BF16, DS4J_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const ds4j_type_traits *tr = ds4j_type_get(types[i]);
        if (types[i] != DS4J_TYPE_F32 && (!tr || !tr->from_float)) {
            printf("SKIP --type %s: no quantizer in this build\n", tr ? tr->name : "?");
            continue;
        }
        test_fixture("dsv4-tiny-a", types[i]);
        test_fixture("dsv4-tiny-b", types[i]);
    }
    test_bad_inputs();
    test_official_fp8();
    test_synth();
    test_tokenizer();
    printf("test_convert: %d checks, %d failures\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
