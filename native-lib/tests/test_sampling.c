/*
 * test_sampling.c — the C sampler on real logits of the tiny fixture:
 * greedy = argmax, top_k=1 = argmax at any temperature, same seed = same
 * tokens, penalties steer away from history, logprobs are a normalised
 * log-softmax (top-n equal to a brute-force ranking), logit bias forces,
 * shifts and bans tokens, bad options are rejected with a message; the
 * top-p tail sort orders exactly as qsort does.
 */
#include <math.h>

#include "ds4j.h"
#include "model_fixture.h"
#include "session.h"

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* Generate n tokens from the prompt with the given sampler options. */
static void generate(ds4j_engine *e, const int32_t *prompt, int np, const char *opts, int n, int32_t *out) {
    ds4j_session *s = ds4j_session_new(e, np + n + 1);
    ds4j_sampler *sp = ds4j_sampler_new(opts);
    CHECK(s && sp);
    if (!s || !sp) return;
    CHECK(ds4j_session_sync(s, prompt, np, NULL, NULL) == 0);
    for (int i = 0; i < np; i++) ds4j_sampler_accept(sp, prompt[i]);
    for (int i = 0; i < n; i++) {
        out[i] = ds4j_sampler_sample(sp, s, 0, NULL, NULL, NULL);
        CHECK(out[i] >= 0);
        ds4j_sampler_accept(sp, out[i]);
        CHECK(ds4j_session_eval(s, out[i]) == DS4J_OK);
    }
    ds4j_sampler_free(sp);
    ds4j_session_free(s);
}

/* the reference order of a top-p tail: values descending, ties by id */
typedef struct { float v; int32_t id; } pair;
static int pair_desc(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The sampler's tail sort (a radix sort since qsort of a 128k-token tail
 * took ~14 ms a token) gives exactly qsort's order: many ties, +0 and -0,
 * negative values, sizes on both sides of its small-input qsort. */
static void check_tail_sort(void) {
    const int64_t sizes[] = {7, 511, 512, 4096, 129280};
    uint64_t x = 88172645463325252ull;
    for (int si = 0; si < 5; si++) {
        int64_t n = sizes[si];
        float *v = malloc((size_t)n * sizeof(float));
        int32_t *id = malloc((size_t)n * sizeof(int32_t));
        pair *ref = malloc((size_t)n * sizeof(pair));
        for (int64_t i = 0; i < n; i++) id[i] = (int32_t)i;
        for (int64_t i = n - 1; i > 0; i--) { /* ids in random order, as selection leaves them */
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int64_t j = (int64_t)(x % (uint64_t)(i + 1));
            int32_t t = id[i]; id[i] = id[j]; id[j] = t;
        }
        for (int64_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int r = (int)(x % 100);
            v[i] = r < 10 ? 0.0f : r < 15 ? -0.0f : r < 40 ? (float)(x % 7) * 0.25f - 0.5f
                                                         : (float)((x >> 20) % 100000) * 1e-6f;
            ref[i] = (pair){v[i], id[i]};
        }
        qsort(ref, (size_t)n, sizeof(pair), pair_desc);
        CHECK(ds4j_sampler_sort_desc(v, id, n) == 0);
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (!(v[i] == ref[i].v) || id[i] != ref[i].id) bad = i;
        if (bad >= 0) fprintf(stderr, "tail sort of %lld differs from qsort at %lld\n", (long long)n, (long long)bad);
        CHECK(bad < 0);
        free(v);
        free(id);
        free(ref);
    }
}

int main(void) {
    check_tail_sort();
    /* option parsing */
    ds4j_sampler *parsed = ds4j_sampler_new("temperature=0.7; top_k=40\ntop_p=0.9;min_p=0.05;seed=7");
    CHECK(parsed != NULL);
    ds4j_sampler_free(parsed);
    CHECK(ds4j_sampler_new("temprature=1") == NULL && strstr(ds4j_last_error(), "temprature"));
    CHECK(ds4j_sampler_new("top_p=2") == NULL && strstr(ds4j_last_error(), "top_p"));
    CHECK(ds4j_sampler_new("seed=-1") == NULL);
    CHECK(ds4j_sampler_new("top_k") == NULL);

    char dir[1024], gguf[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref) || fx_convert("dsv4-tiny-a", "f32", gguf, sizeof gguf)) return 1;
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=2");
    if (!e) { fprintf(stderr, "%s\n", ds4j_last_error()); return 1; }
    int V = ds4j_n_vocab(e);
    const int32_t *prompt = ref.tok[2];
    int np = ref.n_tok[2];

    ds4j_session *s = ds4j_session_new(e, 64);
    ds4j_sampler *g = ds4j_sampler_new("temperature=0");
    CHECK(ds4j_sampler_sample(g, s, 0, NULL, NULL, NULL) == DS4J_ERR_STATE); /* no logits yet */
    CHECK(ds4j_session_sync(s, prompt, np, NULL, NULL) == 0);
    const float *lg = ds4j_session_logits(s);
    int am = argmax(lg, V);
    CHECK(ds4j_sampler_sample(g, s, 0, NULL, NULL, NULL) == am);
    ds4j_sampler *k1 = ds4j_sampler_new("temperature=5;top_k=1;seed=3");
    for (int i = 0; i < 5; i++) CHECK(ds4j_sampler_sample(k1, s, 0, NULL, NULL, NULL) == am);

    /* logprobs: sorted, normalised, sampled token's value consistent */
    int32_t ids[5];
    float lps[5], lp = 1;
    int32_t t = ds4j_sampler_sample(g, s, 5, ids, lps, &lp);
    CHECK(t == am && ids[0] == am && fabsf(lp - lps[0]) < 1e-6f);
    for (int i = 1; i < 5; i++) CHECK(lps[i] <= lps[i - 1] && ids[i] != ids[i - 1]);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(lg[i] - lg[am] + lps[0]);
    CHECK(fabs(z - 1.0) < 1e-4);

    /* penalties: a huge presence penalty on the argmax forbids it */
    ds4j_sampler *pen = ds4j_sampler_new("temperature=0;presence_penalty=100;penalty_last_n=4");
    ds4j_sampler_accept(pen, am);
    int alt = ds4j_sampler_sample(pen, s, 0, NULL, NULL, NULL);
    CHECK(alt != am && alt >= 0);
    /* ... until it falls out of the last-n window */
    for (int i = 0; i < 4; i++) ds4j_sampler_accept(pen, (am + 1 + i) % V == am ? 0 : (am + 1 + i) % V);
    CHECK(ds4j_sampler_sample(pen, s, 0, NULL, NULL, NULL) == am);
    ds4j_sampler_free(pen);

    /* same seed => same tokens; the sampled tokens are not all greedy */
    int32_t a[16], b[16], gr[16];
    generate(e, prompt, np, "temperature=1.5;top_p=0.95;seed=1234", 16, a);
    generate(e, prompt, np, "temperature=1.5;top_p=0.95;seed=1234", 16, b);
    generate(e, prompt, np, "temperature=0", 16, gr);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, gr, sizeof a) != 0);
    for (int i = 0; i < 16; i++) CHECK(gr[i] == ref.greedy[i]);
    printf("seeded sample: ");
    for (int i = 0; i < 16; i++) printf("%s%d", i ? "," : "", a[i]);
    printf("\n");

    /* top-k keeps exactly the k best tokens (the sampler selects them without
     * sorting the whole vocabulary): 200 seeded draws stay inside the true top 5
     * and reach more than one of them */
    {
        const float *lg = ds4j_session_logits(s);
        int order[5];
        for (int k = 0; k < 5; k++) {
            int best = -1;
            for (int i = 0; i < V; i++) {
                int used = 0;
                for (int j = 0; j < k; j++) used |= order[j] == i;
                if (!used && (best < 0 || lg[i] > lg[best])) best = i;
            }
            order[k] = best;
        }
        int distinct = 0, seen[5] = {0};
        for (int seed = 1; seed <= 200; seed++) {
            char opt[96];
            snprintf(opt, sizeof opt, "temperature=3;top_k=5;seed=%d", seed);
            ds4j_sampler *tk = ds4j_sampler_new(opt);
            int t = ds4j_sampler_sample(tk, s, 0, NULL, NULL, NULL);
            int in = 0;
            for (int k = 0; k < 5; k++) if (t == order[k]) { in = 1; if (!seen[k]++) distinct++; }
            CHECK(in);
            ds4j_sampler_free(tk);
        }
        CHECK(distinct > 1);
    }

    /* corrupt (non-finite) logits are refused, never sampled from: with
     * min_p the filters used to leave no candidate and read before the array */
    {
        ds4j_sampler *mp = ds4j_sampler_new("temperature=1;min_p=0.1;seed=3");
        CHECK(mp != NULL);
        float saved = s->logits[5];
        s->logits[5] = NAN;
        CHECK(ds4j_sampler_sample(mp, s, 0, NULL, NULL, NULL) == DS4J_ERR_STATE);
        CHECK(strstr(ds4j_last_error(), "non-finite") != NULL);
        s->logits[5] = INFINITY;
        CHECK(ds4j_sampler_sample(g, s, 0, NULL, NULL, NULL) == DS4J_ERR_STATE);
        s->logits[5] = saved;
        CHECK(ds4j_sampler_sample(mp, s, 0, NULL, NULL, NULL) >= 0);
        ds4j_sampler_free(mp);
    }

    /* top-n logprobs are the n best tokens in order (lower id first on ties),
     * checked against a brute-force ranking for n = 1..20 */
    {
        const float *lg = ds4j_session_logits(s);
        int32_t want[20], got[20];
        float glp[20];
        for (int k = 0; k < 20; k++) {
            int best = -1;
            for (int i = 0; i < V; i++) {
                int used = 0;
                for (int j = 0; j < k; j++) used |= want[j] == i;
                if (!used && (best < 0 || lg[i] > lg[best])) best = i;
            }
            want[k] = best;
        }
        for (int n = 1; n <= 20; n++) {
            CHECK(ds4j_sampler_sample(g, s, n, got, glp, NULL) == am);
            CHECK(memcmp(got, want, (size_t)n * sizeof got[0]) == 0);
        }
    }

    /* logit bias: a ban moves greedy to the runner-up, +100 forces any token
     * (also when sampling at temperature), clearing restores, bad ids fail */
    {
        ds4j_sampler *lb = ds4j_sampler_new("temperature=0");
        int32_t id = am;
        float ban = -100.0f;
        CHECK(ds4j_sampler_set_logit_bias(lb, &id, &ban, 1) == 0);
        int second = -1;
        for (int i = 0; i < V; i++) if (i != am && (second < 0 || lg[i] > lg[second])) second = i;
        float lpb = 0, lpr = 0;
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, &lpb) == second);
        CHECK(ds4j_sampler_sample(g, s, 0, NULL, NULL, &lpr) == am);
        int low = 0; /* the least likely token */
        for (int i = 1; i < V; i++) if (lg[i] < lg[low]) low = i;
        int32_t two[2] = {am, low};
        float up[2] = {0.0f, 100.0f};
        CHECK(ds4j_sampler_set_logit_bias(lb, two, up, 2) == 0);
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == low);
        ds4j_sampler *hot = ds4j_sampler_new("temperature=1.5;top_p=0.9;seed=11");
        CHECK(ds4j_sampler_set_logit_bias(hot, two, up, 2) == 0);
        for (int i = 0; i < 20; i++) CHECK(ds4j_sampler_sample(hot, s, 0, NULL, NULL, NULL) == low);
        /* a small bias shifts rather than forces: +gap+0.01 on the runner-up wins greedy */
        int32_t r = second;
        float nudge = lg[am] - lg[second] + 0.01f;
        CHECK(ds4j_sampler_set_logit_bias(lb, &r, &nudge, 1) == 0);
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == second);
        nudge = lg[am] - lg[second] - 0.01f;
        CHECK(ds4j_sampler_set_logit_bias(lb, &r, &nudge, 1) == 0);
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == am);
        CHECK(ds4j_sampler_set_logit_bias(lb, NULL, NULL, 0) == 0);
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == am);
        /* errors */
        int32_t bad = V;
        CHECK(ds4j_sampler_set_logit_bias(lb, &bad, &ban, 1) == 0); /* the vocabulary is known only when sampling */
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
        CHECK(strstr(ds4j_last_error(), "outside the vocabulary") != NULL);
        bad = -1;
        CHECK(ds4j_sampler_set_logit_bias(lb, &bad, &ban, 1) == DS4J_ERR_INVALID_ARGUMENT);
        float nan = NAN;
        CHECK(ds4j_sampler_set_logit_bias(lb, &id, &nan, 1) == DS4J_ERR_INVALID_ARGUMENT);
        CHECK(ds4j_sampler_set_logit_bias(lb, &id, &ban, -1) == DS4J_ERR_INVALID_ARGUMENT);
        /* banning everything is an error, not a banned token */
        int32_t *all = malloc((size_t)V * sizeof *all);
        float *bans = malloc((size_t)V * sizeof *bans);
        for (int i = 0; i < V; i++) { all[i] = i; bans[i] = -100.0f; }
        CHECK(ds4j_sampler_set_logit_bias(lb, all, bans, V) == 0);
        CHECK(ds4j_sampler_sample(lb, s, 0, NULL, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
        CHECK(strstr(ds4j_last_error(), "no candidate token left") != NULL);
        CHECK(ds4j_sampler_set_logit_bias(hot, all, bans, V) == 0);
        CHECK(ds4j_sampler_sample(hot, s, 0, NULL, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
        free(all);
        free(bans);
        ds4j_sampler_free(hot);
        ds4j_sampler_free(lb);
    }

    /* allowed set: only the listed tokens can come out (greedy and sampled),
     * lifting it restores the argmax, an empty set is an error */
    {
        uint8_t *bits = calloc((size_t)(V + 7) / 8, 1);
        int pick[3] = {3, 100, V - 1};
        for (int k = 0; k < 3; k++) bits[pick[k] >> 3] |= (uint8_t)(1u << (pick[k] & 7));
        ds4j_sampler *al = ds4j_sampler_new("temperature=0");
        ds4j_sampler *hs = ds4j_sampler_new("temperature=2;seed=9");
        CHECK(ds4j_sampler_set_allowed(al, bits, V) == 0 && ds4j_sampler_set_allowed(hs, bits, V) == 0);
        int best = pick[0];
        for (int k = 1; k < 3; k++) if (lg[pick[k]] > lg[best]) best = pick[k];
        CHECK(ds4j_sampler_sample(al, s, 0, NULL, NULL, NULL) == best);
        int seen[3] = {0};
        for (int i = 0; i < 100; i++) {
            int t = ds4j_sampler_sample(hs, s, 0, NULL, NULL, NULL);
            CHECK(t == pick[0] || t == pick[1] || t == pick[2]);
            for (int k = 0; k < 3; k++) seen[k] += t == pick[k];
        }
        CHECK((seen[0] > 0) + (seen[1] > 0) + (seen[2] > 0) >= 2); /* sampled, not forced */
        /* ids at or beyond n_tokens are excluded: only 3 and 100 remain */
        CHECK(ds4j_sampler_set_allowed(al, bits, V - 1) == 0);
        int t2 = ds4j_sampler_sample(al, s, 0, NULL, NULL, NULL);
        CHECK(t2 == (lg[3] > lg[100] ? 3 : 100));
        /* with a logit bias on top: the ban wins inside the allowed set */
        int32_t b3 = t2;
        float ban = -100.0f;
        CHECK(ds4j_sampler_set_logit_bias(al, &b3, &ban, 1) == 0);
        CHECK(ds4j_sampler_sample(al, s, 0, NULL, NULL, NULL) == (t2 == 3 ? 100 : 3));
        CHECK(ds4j_sampler_set_logit_bias(al, NULL, NULL, 0) == 0);
        CHECK(ds4j_sampler_set_allowed(al, NULL, 0) == 0);
        CHECK(ds4j_sampler_sample(al, s, 0, NULL, NULL, NULL) == am);
        memset(bits, 0, (size_t)(V + 7) / 8);
        CHECK(ds4j_sampler_set_allowed(al, bits, V) == 0);
        CHECK(ds4j_sampler_sample(al, s, 0, NULL, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
        CHECK(ds4j_sampler_set_allowed(hs, bits, V) == 0);
        CHECK(ds4j_sampler_sample(hs, s, 0, NULL, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
        CHECK(ds4j_sampler_set_allowed(al, bits, -1) == DS4J_ERR_INVALID_ARGUMENT);
        free(bits);
        ds4j_sampler_free(al);
        ds4j_sampler_free(hs);
    }

    ds4j_sampler_free(g);
    ds4j_sampler_free(k1);
    ds4j_session_free(s);
    ds4j_engine_close(e);
    fx_free_ref(&ref);
    if (failures) { fprintf(stderr, "test_sampling: %d failures\n", failures); return 1; }
    printf("test_sampling: ok\n");
    return 0;
}
