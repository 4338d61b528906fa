/*
 * cmd_synth.c — `ds4j-tool synth`: write a random-weight deepseek4 GGUF from
 * a preset (no checkpoint needed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "tool.h"

static void log_stderr(void *user, const char *msg) {
    (void)user;
    fprintf(stderr, "synth: %s\n", msg);
}

static int usage(void) {
    fprintf(stderr,
            "usage: ds4j-tool synth --preset tiny|small|demo|flash2|flash8|xcheck --out FILE.gguf [--tokenizer tokenizer.json]\n"
            "                       [--seed N] [--type f32|f16|bf16|q8_0] [--experts f32|f16|bf16|q8_0|q4_k|q2_k|iq2_xxs]\n"
            "  tiny:   fixture-like shapes (vocab 512), f32\n"
            "  demo:   H=256, 4 layers [SWA, CSA, HCA, CSA], vocab 129280 (needs --tokenizer), q8_0\n"
            "  small:  H=256, I=256 (rows fit k-/i-quant blocks), 4 layers [SWA, CSA, HCA, CSA], vocab 1024,\n"
            "          q8_0 dense, iq2_xxs experts\n"
            "  flash2: Flash widths (H=4096, 256 experts), 2 layers [CSA, HCA], q8_0 dense, iq2_xxs experts\n"
            "  flash8: Flash widths, 8 layers (3 hash-routed; CSA/HCA alternating), q8_0 dense, iq2_xxs experts\n"
            "  xcheck: H=64, 8 layers with ratios 0/4/128, indexer dim 64, vocab 129280 (needs --tokenizer), f32;\n"
            "          within llama.cpp's deepseek4 limits (scripts/xcheck-llamacpp)\n");
    return 2;
}

int cmd_synth(int argc, char **argv) {
    ds4j_synth_opts o = {0};
    o.dense_type = o.expert_type = -1;
    o.seed = 1;
    o.log = log_stderr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "synth: %s needs a value\n", a); return usage(); }
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) o.preset = v;
        else if (!strcmp(a, "--out")) o.out_path = v;
        else if (!strcmp(a, "--tokenizer")) o.tokenizer = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            o.seed = strtoull(v, &end, 0);
            if (!*v || *end) { fprintf(stderr, "synth: bad seed '%s'\n", v); return usage(); }
        } else if (!strcmp(a, "--type") || !strcmp(a, "--experts")) {
            int32_t t = ds4j_parse_type(v);
            if (t < 0) { fprintf(stderr, "synth: unknown type '%s'\n", v); return usage(); }
            if (!strcmp(a, "--type")) o.dense_type = t; else o.expert_type = t;
        } else {
            fprintf(stderr, "synth: unknown option '%s'\n", a);
            return usage();
        }
    }
    if (!o.preset || !o.out_path) return usage();
    char err[1024] = "";
    int rc = ds4j_synth(&o, err, sizeof err);
    if (rc) {
        fprintf(stderr, "synth: error: %s\n", err[0] ? err : "failed");
        return 1;
    }
    fprintf(stderr, "synth: wrote %s\n", o.out_path);
    return 0;
}
