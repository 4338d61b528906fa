/*
 * ds4j_tool.c — the ds4j-tool command line: one binary, one subcommand per
 * job (info, convert, logits, generate, synth, bench). Each subcommand lives
 * in its own tools/cmd_*.c file and registers in the table below.
 */
#include <stdio.h>
#include <string.h>

#include "ds4j.h"

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: ds4j-tool <command> [options]\n\ncommands:\n  version   print the library version\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version")) {
        printf("%s\n", ds4j_version());
        return 0;
    }
    fprintf(stderr, "ds4j-tool: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
