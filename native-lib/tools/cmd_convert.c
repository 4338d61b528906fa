/*
 * cmd_convert.c — `ds4j-tool convert`: HF DeepSeek V4 checkpoint directory
 * (config.json + safetensors) to a deepseek4 GGUF.
 */
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "tool.h"

static void log_stderr(void *user, const char *msg) {
    (void)user;
    fprintf(stderr, "convert: %s\n", msg);
}

static int usage(void) {
    fprintf(stderr,
            "usage: ds4j-tool convert --hf DIR --out FILE.gguf [--type f32|f16|bf16|q8_0]\n"
            "                         [--experts f32|f16|bf16|q8_0|q4_k|q2_k] [--tokenizer tokenizer.json]\n"
            "                         [--name NAME]\n"
            "  DIR holds config.json and model.safetensors (or shards + model.safetensors.index.json).\n"
            "  --type sets attention/shared-expert/head matrices (default f32), --experts the routed\n"
            "  experts (default: --type). Embedding, hc fn, compressor (ape too), indexer and router\n"
            "  follow --type but never go below f16 (ds4's layout). Norms, biases, hc base/scale and\n"
            "  sinks stay f32.\n");
    return 2;
}

int cmd_convert(int argc, char **argv) {
    ds4j_convert_opts o = {0};
    o.dense_type = ds4j_parse_type("f32");
    o.expert_type = -1;
    o.log = log_stderr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "convert: %s needs a value\n", a); return usage(); }
        const char *v = argv[++i];
        if (!strcmp(a, "--hf")) o.hf_dir = v;
        else if (!strcmp(a, "--out")) o.out_path = v;
        else if (!strcmp(a, "--tokenizer")) o.tokenizer = v;
        else if (!strcmp(a, "--name")) o.name = v;
        else if (!strcmp(a, "--type") || !strcmp(a, "--experts")) {
            int32_t t = ds4j_parse_type(v);
            if (t < 0) { fprintf(stderr, "convert: unknown type '%s'\n", v); return usage(); }
            if (!strcmp(a, "--type")) o.dense_type = t; else o.expert_type = t;
        } else {
            fprintf(stderr, "convert: unknown option '%s'\n", a);
            return usage();
        }
    }
    if (!o.hf_dir || !o.out_path) return usage();
    char err[1024] = "";
    int rc = ds4j_convert_hf(&o, err, sizeof err);
    if (rc) {
        fprintf(stderr, "convert: error: %s\n", err[0] ? err : "failed");
        return 1;
    }
    fprintf(stderr, "convert: wrote %s\n", o.out_path);
    return 0;
}
