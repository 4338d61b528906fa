/*
 * tool.h — subcommands of ds4j-tool. Each takes argv with argv[0] = the
 * subcommand name and returns the process exit code (0 ok, 1 failure,
 * 2 usage error).
 */
#ifndef DS4J_TOOL_H
#define DS4J_TOOL_H

int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_quants(int argc, char **argv);
int cmd_follow(int argc, char **argv);
int cmd_slice(int argc, char **argv);

struct ds4j_engine;
/* Rank > 0: run the follower loop (cmd_follow.c); die_after >= 0 is the
 * crash test hook (SIGKILL after that many forward passes). Exit code. */
int tool_follow_engine(struct ds4j_engine *e, const char *who, int die_after);

#endif
