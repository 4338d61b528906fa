/*
 * ds4j_tool.c — the ds4j-tool command line: one binary, one subcommand per
 * job. Each subcommand lives in its own tools/cmd_<name>.c and is listed in
 * the table below (declared in tool.h).
 */
#include <stdio.h>
#include <string.h>

#include "ds4j.h"
#include "tool.h"

static int cmd_version(int argc, char **argv) {
    (void)argc; (void)argv;
    printf("%s\n", ds4j_version());
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} COMMANDS[] = {
    {"version", cmd_version, "print the library version"},
    /* subcommands: keep one line each, alphabetical */
    {"bench-quants", cmd_bench_quants, "single-thread matvec/matmul throughput per weight type"},
    {"info", cmd_info, "show a GGUF file: metadata, tensors, parameter summary"},
    {"convert", cmd_convert, "HF DeepSeek V4 checkpoint (safetensors) -> deepseek4 GGUF"},
    {"bench", cmd_bench, "prefill/decode tokens per second and implied weight bandwidth"},
    {"follow", cmd_follow, "follower rank of a comm=mpi engine: replays the leader's session calls"},
    {"generate", cmd_generate, "greedy or sampled generation from token ids"},
    {"logits", cmd_logits, "write per-position logits for a token list"},
    {"slice", cmd_slice, "copy of a GGUF with only routed experts A:B (one rank's file for expert_compact=1)"},
    {"synth", cmd_synth, "random-weight deepseek4 GGUF from a preset (tiny, demo, flash2)"},
};

int main(int argc, char **argv) {
    size_t n = sizeof COMMANDS / sizeof COMMANDS[0];
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        printf("usage: ds4j-tool <command> [options]   (ds4j-tool <command> --help for details)\n\ncommands:\n");
        for (size_t i = 0; i < n; i++) printf("  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ds4j-tool: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
