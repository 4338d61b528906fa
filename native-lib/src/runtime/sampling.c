/*
 * sampling.c — token sampling from a session's logits (ds4j.h): penalties
 * over the recent history, greedy / temperature sampling with top-k,
 * top-p and min-p filters, a seedable xoshiro256** generator (same seed and
 * same logits give the same tokens), and log-probabilities of the raw
 * distribution for the API's top-n logprobs, a per-token logit bias and an
 * allowed-token set for constrained decoding.
 * Work buffers are allocated once per vocabulary size, not per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "session.h"

typedef struct cand { float logit; int32_t id; } cand;

struct ds4j_sampler {
    double temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
    int64_t top_k, penalty_last_n;
    uint64_t seed;
    uint64_t rng[4];
    int32_t *hist;        /* ring of the last penalty_last_n accepted tokens */
    int64_t hist_n, hist_head;
    int64_t vocab_cap;
    float *work;          /* [V] penalised logits */
    int32_t *counts;      /* [V] occurrences in the history */
    cand *cands;          /* [V] */
    uint64_t *keys;       /* [2V] radix-sort keys and their scratch */
    int32_t *bias_id;     /* logit bias: ids and amounts (n_bias entries) */
    float *bias_val;
    int32_t n_bias;
    uint8_t *allow;       /* allowed-token bitset over allow_n ids, NULL = all */
    int32_t allow_n, allow_cap;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static double rng_uniform(ds4j_sampler *sp) { return (double)(xoshiro_next(sp->rng) >> 11) * (1.0 / 9007199254740992.0); }

static void rng_seed(ds4j_sampler *sp) {
    uint64_t x = sp->seed;
    for (int i = 0; i < 4; i++) sp->rng[i] = splitmix64(&x);
}

static int sampler_opt_cb(void *user, const char *k, const char *v) {
    ds4j_sampler *sp = user;
    double d;
    int64_t i;
#define FLT(name, field, cond, what) \
    if (!strcmp(k, name)) { \
        if (ds4j_parse_f64(v, &d) || !(cond)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, name "=%s: expected " what, v); \
        sp->field = d; return 0; }
    FLT("temperature", temperature, d >= 0, "a number >= 0")
    FLT("top_p", top_p, d > 0 && d <= 1, "a number in (0, 1]")
    FLT("min_p", min_p, d >= 0 && d <= 1, "a number in [0, 1]")
    FLT("repeat_penalty", repeat_penalty, d > 0, "a number > 0")
    FLT("presence_penalty", presence_penalty, d >= -100 && d <= 100, "a number in [-100, 100]")
    FLT("frequency_penalty", frequency_penalty, d >= -100 && d <= 100, "a number in [-100, 100]")
#undef FLT
    if (!strcmp(k, "top_k")) {
        if (ds4j_parse_i64(v, &i) || i < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "top_k=%s: expected an integer >= 0", v);
        sp->top_k = i;
        return 0;
    }
    if (!strcmp(k, "penalty_last_n")) {
        if (ds4j_parse_i64(v, &i) || i < 0 || i > (1 << 24))
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "penalty_last_n=%s: expected an integer in [0, 16777216]", v);
        sp->penalty_last_n = i;
        return 0;
    }
    if (!strcmp(k, "seed")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-') return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "seed=%s: expected an unsigned integer", v);
        sp->seed = s;
        return 0;
    }
    return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "unknown sampler option '%s'", k);
}

DS4J_API ds4j_sampler *ds4j_sampler_new(const char *options) {
    ds4j_clear_error();
    ds4j_sampler *sp = calloc(1, sizeof *sp);
    if (!sp) { ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); return NULL; }
    sp->temperature = 1.0;
    sp->top_p = 1.0;
    sp->repeat_penalty = 1.0;
    sp->penalty_last_n = 64;
    sp->seed = 0;
    if (ds4j_opts_parse(options, sampler_opt_cb, sp)) { free(sp); return NULL; }
    if (sp->penalty_last_n > 0) {
        sp->hist = calloc((size_t)sp->penalty_last_n, sizeof(int32_t));
        if (!sp->hist) { free(sp); ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); return NULL; }
    }
    rng_seed(sp);
    return sp;
}

DS4J_API void ds4j_sampler_free(ds4j_sampler *sp) {
    if (!sp) return;
    free(sp->hist);
    free(sp->work);
    free(sp->counts);
    free(sp->cands);
    free(sp->keys);
    free(sp->bias_id);
    free(sp->bias_val);
    free(sp->allow);
    free(sp);
}

DS4J_API void ds4j_sampler_accept(ds4j_sampler *sp, int32_t token) {
    if (!sp || sp->penalty_last_n <= 0 || token < 0) return;
    sp->hist[sp->hist_head] = token;
    sp->hist_head = (sp->hist_head + 1) % sp->penalty_last_n;
    if (sp->hist_n < sp->penalty_last_n) sp->hist_n++;
}

DS4J_API void ds4j_sampler_reset(ds4j_sampler *sp) {
    if (!sp) return;
    sp->hist_n = sp->hist_head = 0;
    rng_seed(sp);
}

DS4J_API int32_t ds4j_sampler_set_logit_bias(ds4j_sampler *sp, const int32_t *ids, const float *bias, int32_t n) {
    ds4j_clear_error();
    if (!sp) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sampler is NULL");
    if (n < 0 || n > 65536) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "logit bias: %d entries (expected 0..65536)", n);
    if (n > 0 && (!ids || !bias)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "logit bias: ids or bias is NULL");
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "logit bias: token id %d is negative", ids[i]);
        if (!isfinite(bias[i]))
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "logit bias of token %d is not a finite number", ids[i]);
    }
    int32_t *ni = NULL;
    float *nv = NULL;
    if (n > 0) {
        ni = malloc((size_t)n * sizeof *ni);
        nv = malloc((size_t)n * sizeof *nv);
        if (!ni || !nv) { free(ni); free(nv); return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); }
        memcpy(ni, ids, (size_t)n * sizeof *ni);
        memcpy(nv, bias, (size_t)n * sizeof *nv);
    }
    free(sp->bias_id);
    free(sp->bias_val);
    sp->bias_id = ni;
    sp->bias_val = nv;
    sp->n_bias = n;
    return 0;
}

DS4J_API int32_t ds4j_sampler_set_allowed(ds4j_sampler *sp, const uint8_t *bits, int32_t n_tokens) {
    ds4j_clear_error();
    if (!sp) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sampler is NULL");
    if (n_tokens < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "allowed tokens: n_tokens %d < 0", n_tokens);
    if (!bits || n_tokens == 0) {
        sp->allow_n = 0;
        if (sp->allow) { free(sp->allow); sp->allow = NULL; sp->allow_cap = 0; }
        return 0;
    }
    int32_t nb = (int32_t)(((int64_t)n_tokens + 7) / 8);
    if (nb > sp->allow_cap) { /* grows once per vocabulary, then reused every step */
        uint8_t *a = realloc(sp->allow, (size_t)nb);
        if (!a) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
        sp->allow = a;
        sp->allow_cap = nb;
    }
    memcpy(sp->allow, bits, (size_t)nb);
    sp->allow_n = n_tokens;
    return 0;
}

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Moves the k best candidates (cand_desc order, a total order) to cd[0..k),
 * sorted; everything after them is worse. Quickselect + sort of the head. */
static void select_top(cand *cd, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        cand pivot = cd[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (cand_desc(&cd[i], &pivot) < 0) i++;
            while (cand_desc(&cd[j], &pivot) > 0) j--;
            if (i <= j) {
                cand t = cd[i];
                cd[i] = cd[j];
                cd[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    qsort(cd, (size_t)k, sizeof(cand), cand_desc);
}

/* cand_desc as one unsigned key: ascending keys = descending values, ties
 * by ascending id (the value's bits mapped to an order-preserving unsigned,
 * -0 taken as +0 since they compare equal; no NaN reaches here). */
static uint64_t desc_key(cand c) {
    float f = c.logit == 0.0f ? 0.0f : c.logit;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with the value */
    return ((uint64_t)~u << 32) | (uint32_t)c.id;
}

static cand key_cand(uint64_t k) {
    uint32_t u = ~(uint32_t)(k >> 32);
    u = (u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u;
    cand c;
    memcpy(&c.logit, &u, 4);
    c.id = (int32_t)(uint32_t)k;
    return c;
}

/* Sorts cd[0..n) in cand_desc order: the same total order qsort gives,
 * by an LSD radix sort of the keys (8 bits a pass; passes whose digit is
 * the same for every key are skipped), since the top-p tail can be most of
 * the vocabulary (qsort of 128k candidates took ~14 ms a token). */
static void sort_desc(cand *cd, int64_t n, uint64_t *key, uint64_t *tmp) {
    if (n < 512) {
        qsort(cd, (size_t)n, sizeof(cand), cand_desc);
        return;
    }
    for (int64_t i = 0; i < n; i++) key[i] = desc_key(cd[i]);
    for (int shift = 0; shift < 64; shift += 8) {
        int64_t cnt[256] = {0};
        for (int64_t i = 0; i < n; i++) cnt[(key[i] >> shift) & 0xFF]++;
        if (cnt[(key[0] >> shift) & 0xFF] == n) continue;
        int64_t pos = 0;
        for (int b = 0; b < 256; b++) {
            int64_t c = cnt[b];
            cnt[b] = pos;
            pos += c;
        }
        for (int64_t i = 0; i < n; i++) tmp[cnt[(key[i] >> shift) & 0xFF]++] = key[i];
        uint64_t *t = key;
        key = tmp;
        tmp = t;
    }
    for (int64_t i = 0; i < n; i++) cd[i] = key_cand(key[i]);
}

int ds4j_sampler_sort_desc(float *val, int32_t *id, int64_t n) {
    if (n <= 0) return 0;
    cand *cd = malloc((size_t)n * sizeof(cand));
    uint64_t *k = malloc((size_t)n * 2 * sizeof(uint64_t));
    if (!cd || !k) {
        free(cd);
        free(k);
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) cd[i] = (cand){val[i], id[i]};
    sort_desc(cd, n, k, k + n);
    for (int64_t i = 0; i < n; i++) {
        val[i] = cd[i].logit;
        id[i] = cd[i].id;
    }
    free(cd);
    free(k);
    return 0;
}

static int ensure_vocab(ds4j_sampler *sp, int64_t V) {
    if (V <= sp->vocab_cap) return 0;
    float *w = realloc(sp->work, (size_t)V * sizeof(float));
    if (w) sp->work = w;
    int32_t *c = realloc(sp->counts, (size_t)V * sizeof(int32_t));
    if (c) sp->counts = c;
    cand *cd = realloc(sp->cands, (size_t)V * sizeof(cand));
    if (cd) sp->cands = cd;
    uint64_t *k = realloc(sp->keys, (size_t)V * 2 * sizeof(uint64_t));
    if (k) sp->keys = k;
    if (!w || !c || !cd || !k) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    memset(sp->counts, 0, (size_t)V * sizeof(int32_t));
    sp->vocab_cap = V;
    return 0;
}

DS4J_API int32_t ds4j_sampler_sample(ds4j_sampler *sp, const ds4j_session *s, int32_t n_top, int32_t *top_ids,
                                     float *top_logprobs, float *logprob) {
    ds4j_clear_error();
    if (!sp || !s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sampler or session is NULL");
    const float *logits = ds4j_session_logits(s);
    if (!logits) return ds4j_fail(DS4J_ERR_STATE, "the session has no logits (evaluate a token first)");
    int64_t V = s->eng->n_vocab;
    if (n_top < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "n_top must be >= 0");
    if (ensure_vocab(sp, V)) return DS4J_ERR_NO_MEMORY;
    float *w = sp->work;
    memcpy(w, logits, (size_t)V * sizeof(float));
    /* A well-formed file can still hold NaN/Inf weights; every step below
     * assumes finite logits (softmax, thresholds), so refuse clearly. */
    for (int64_t i = 0; i < V; i++)
        if (!isfinite(w[i]))
            return ds4j_fail(DS4J_ERR_STATE, "the model produced a non-finite logit (%g at token %lld): "
                             "the weights are probably corrupt", (double)w[i], (long long)i);

    /* logit bias; applied in order, so a repeated id ends with its last bias */
    for (int32_t i = 0; i < sp->n_bias; i++)
        if (sp->bias_id[i] >= V)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "logit bias: token id %d is outside the vocabulary (%lld tokens)",
                             sp->bias_id[i], (long long)V);
    for (int32_t i = 0; i < sp->n_bias; i++) {
        int32_t t = sp->bias_id[i];
        w[t] = sp->bias_val[i] <= -100.0f ? -INFINITY : logits[t] + sp->bias_val[i];
    }

    /* allowed-token set: everything else is banned */
    if (sp->allow) {
        for (int64_t i = 0; i < V; i++)
            if (i >= sp->allow_n || !(sp->allow[i >> 3] >> (i & 7) & 1)) w[i] = -INFINITY;
    }

    /* penalties over the distinct tokens of the history */
    if (sp->hist_n > 0 && (sp->repeat_penalty != 1.0 || sp->presence_penalty != 0 || sp->frequency_penalty != 0)) {
        for (int64_t i = 0; i < sp->hist_n; i++) {
            int32_t t = sp->hist[i];
            if (t < V) sp->counts[t]++;
        }
        for (int64_t i = 0; i < sp->hist_n; i++) {
            int32_t t = sp->hist[i];
            if (t >= V || sp->counts[t] == 0) continue;
            int32_t c = sp->counts[t];
            sp->counts[t] = 0; /* apply once per distinct token */
            float x = w[t];
            if (sp->repeat_penalty != 1.0) x = x > 0 ? (float)(x / sp->repeat_penalty) : (float)(x * sp->repeat_penalty);
            x -= (float)(c * sp->frequency_penalty + sp->presence_penalty);
            w[t] = x;
        }
    }

    int32_t tok = 0;
    if (sp->temperature <= 0) {
        for (int64_t i = 1; i < V; i++) if (w[i] > w[tok]) tok = (int32_t)i;
        if (w[tok] == -INFINITY)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sampling: no candidate token left (the logit bias or the "
                             "allowed set excludes all of them)");
    } else {
        int64_t n = V;
        cand *cd = sp->cands;
        for (int64_t i = 0; i < V; i++) { cd[i].logit = w[i]; cd[i].id = (int32_t)i; }
        /* Only the head of the distribution needs ordering: select the best
         * candidates in O(V) instead of sorting all V per token. */
        int64_t sorted_n = 0;
        if (sp->top_k > 0 && sp->top_k < V) {
            select_top(cd, V, sp->top_k);
            n = sorted_n = sp->top_k;
        } else if (sp->top_p < 1.0) {
            sorted_n = V < 1024 ? V : 1024;
            select_top(cd, V, sorted_n);
        }
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) if (cd[i].logit > mx) mx = cd[i].logit;
        /* probabilities (unnormalised) stored in logit slot; the order is unchanged */
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double p = exp(((double)cd[i].logit - mx) / sp->temperature);
            cd[i].logit = (float)p;
            sum += p;
        }
        if (sorted_n > 0 && sp->top_p < 1.0) {
            double cum = 0;
            int64_t keep = n;
            for (int64_t i = 0; i < n; i++) {
                /* everything past the selected head is worse than it: order it
                 * only if the nucleus is wider than the head */
                if (i == sorted_n && sorted_n < n) sort_desc(cd + sorted_n, n - sorted_n, sp->keys, sp->keys + V);
                cum += cd[i].logit / sum;
                if (cum >= sp->top_p) { keep = i + 1; break; }
            }
            n = keep;
        }
        if (sp->min_p > 0) {
            double pmax = 0;
            for (int64_t i = 0; i < n; i++) if (cd[i].logit > pmax) pmax = cd[i].logit;
            double thr = sp->min_p * pmax;
            int64_t k = 0;
            for (int64_t i = 0; i < n; i++) if (cd[i].logit >= thr) cd[k++] = cd[i];
            n = k;
        }
        sum = 0;
        for (int64_t i = 0; i < n; i++) sum += cd[i].logit;
        if (n <= 0 || !(sum > 0) || !isfinite(sum))
            return ds4j_fail(sp->n_bias || sp->allow ? DS4J_ERR_INVALID_ARGUMENT : DS4J_ERR_STATE,
                             "sampling: no candidate token left (%s)",
                             sp->n_bias || sp->allow ? "the logit bias or the allowed set excludes all of them"
                                                     : "filters removed all of them");
        double r = rng_uniform(sp) * sum, acc = 0;
        tok = cd[n - 1].id;
        for (int64_t i = 0; i < n; i++) {
            acc += cd[i].logit;
            if (r < acc) { tok = cd[i].id; break; }
        }
    }

    if (n_top > 0 || logprob) {
        float mx = logits[0];
        for (int64_t i = 1; i < V; i++) if (logits[i] > mx) mx = logits[i];
        double sum = 0;
        for (int64_t i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
        double lse = mx + log(sum);
        if (logprob) *logprob = (float)(logits[tok] - lse);
        if (n_top > V) n_top = (int32_t)V;
        if (n_top > 256) n_top = 256; /* callers ask for <= 20 (OpenAI top_logprobs) */
        /* one pass keeping the n_top best in descending order (ties: lower id
         * first, as a stable scan gives) */
        int32_t best[256];
        int32_t nb = 0;
        for (int64_t i = 0; i < V && n_top > 0; i++) {
            float x = logits[i];
            if (nb == n_top && !(x > logits[best[nb - 1]])) continue;
            int32_t j = nb < n_top ? nb++ : nb - 1;
            while (j > 0 && x > logits[best[j - 1]]) { best[j] = best[j - 1]; j--; }
            best[j] = (int32_t)i;
        }
        for (int32_t k = 0; k < n_top; k++) {
            if (top_ids) top_ids[k] = best[k];
            if (top_logprobs) top_logprobs[k] = (float)(logits[best[k]] - lse);
        }
    }
    return tok;
}
