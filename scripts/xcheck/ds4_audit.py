#!/usr/bin/env python3
"""Prints the markdown table of docs/compatibility.md "ds4 tensor-name audit".

Usage: ds4_audit.py A_F32.info A_Q8.info
The inputs are `ds4j-tool info` listings of one checkpoint converted with
--type f32 and with --type q8_0. Each tensor is set beside what ds4.c
(antirez/ds4, weights_bind + weights_validate_layout) binds and enforces; the
expected shape is ds4's formula evaluated with this file's own hyper-parameters
(ds4 itself has them fixed to Flash's values). The expectations below were
transcribed by hand from reading ds4.c.
"""
import re
import sys


def parse(path):
    meta, tensors = {}, []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s+(deepseek4\.\S+)\s+(\S+)\s+(?:=\s+(.*))?$", line)
        if m and not line.strip()[0].isdigit():
            val = m.group(3) or ""
            meta[m.group(1)] = val
            continue
        m = re.match(r"\s+\d+\s+(\S+)\s+(\S+)\s+\[([\d, ]+)\]", line)
        if m:
            tensors.append((m.group(1), m.group(2), [int(x) for x in m.group(3).split(",")]))
    return meta, tensors


def main():
    meta, ts = parse(sys.argv[1])
    _, ts8 = parse(sys.argv[2])
    t8 = {n: t for n, t, _ in ts8}
    u = lambda k: int(meta["deepseek4." + k])
    H, V, nh, D = u("embedding_length"), u("vocab_size"), u("attention.head_count"), u("attention.key_length")
    rq, G, ro = u("attention.q_lora_rank"), u("attention.output_group_count"), u("attention.output_lora_rank")
    E, I, k = u("expert_count"), u("expert_feed_forward_length"), u("expert_used_count")
    hc, nI, DI = u("hyper_connection.count"), u("attention.indexer.head_count"), u("attention.indexer.key_length")
    nhash = u("hash_layer_count")
    ratios = [int(x) for x in re.search(r"\] \[([\d, ]+)\]", meta["deepseek4.attention.compress_ratios"]).group(1).split(",")]
    mix = 2 * hc + hc * hc
    RQ = "IQ2_XXS/Q2_K/Q4_K"
    glob = {
        "token_embd.weight": ("F16", [H, V], "required"),
        "output_hc_base.weight": ("F32", [hc], "required"),
        "output_hc_fn.weight": ("F16", [H * hc, hc], "required"),
        "output_hc_scale.weight": ("F32", [1], "required"),
        "output_norm.weight": ("F32", [H], "required"),
        "output.weight": ("Q8_0", [H, V], "required"),
    }

    def layer(il, suf):
        r = ratios[il]
        coff = 2 if r == 4 else 1
        table = {
            "hc_attn_fn.weight": ("F16", [H * hc, mix], "required"),
            "hc_attn_scale.weight": ("F32", [3], "required"),
            "hc_attn_base.weight": ("F32", [mix], "required"),
            "attn_norm.weight": ("F32", [H], "required"),
            "attn_q_a.weight": ("Q8_0", [H, rq], "required"),
            "attn_q_a_norm.weight": ("F32", [rq], "required"),
            "attn_q_b.weight": ("Q8_0", [rq, nh * D], "required"),
            "attn_kv.weight": ("Q8_0", [H, D], "required"),
            "attn_kv_a_norm.weight": ("F32", [D], "required"),
            "attn_sinks.weight": ("F32", [nh], "required"),
            "attn_output_a.weight": ("Q8_0", [D * (nh // G), G * ro], "required"),
            "attn_output_b.weight": ("Q8_0", [G * ro, H], "required"),
            "attn_compressor_ape.weight": ("F16", [coff * D, r], "ratio != 0"),
            "attn_compressor_kv.weight": ("F16", [H, coff * D], "ratio != 0"),
            "attn_compressor_gate.weight": ("F16", [H, coff * D], "ratio != 0"),
            "attn_compressor_norm.weight": ("F32", [D], "ratio != 0"),
            "indexer.attn_q_b.weight": ("F16", [rq, nI * DI], "ratio == 4"),
            "indexer.proj.weight": ("F16", [H, nI], "ratio == 4"),
            "indexer_compressor_ape.weight": ("F16", [2 * DI, r], "ratio == 4"),
            "indexer_compressor_kv.weight": ("F16", [H, 2 * DI], "ratio == 4"),
            "indexer_compressor_gate.weight": ("F16", [H, 2 * DI], "ratio == 4"),
            "indexer_compressor_norm.weight": ("F32", [DI], "ratio == 4"),
            "hc_ffn_fn.weight": ("F16", [H * hc, mix], "required"),
            "hc_ffn_scale.weight": ("F32", [3], "required"),
            "hc_ffn_base.weight": ("F32", [mix], "required"),
            "ffn_norm.weight": ("F32", [H], "required"),
            "ffn_gate_inp.weight": ("F16", [H, E], "required"),
            "exp_probs_b.bias": ("F32", [E], "optional"),
            "ffn_gate_exps.weight": (RQ + ", = up", [H, I, E], "required"),
            "ffn_up_exps.weight": (RQ + ", = gate", [H, I, E], "required"),
            "ffn_down_exps.weight": (RQ, [I, H, E], "required"),
            "ffn_gate_shexp.weight": ("Q8_0", [H, I], "required"),
            "ffn_up_shexp.weight": ("Q8_0", [H, I], "required"),
            "ffn_down_shexp.weight": ("Q8_0", [I, H], "required"),
            "ffn_gate_tid2eid.weight": ("I32", [k, V], "layer < hash_layer_count"),
        }
        return table.get(suf)

    print("| # | GGUF name (ds4j) | ne (ds4j) | ds4j type `--type f32` | ds4j type `--type q8_0` | ds4.c binds | ds4.c type | ds4.c ne (its formula, this file's values) | name | layout | q8_0 type |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    bad = 0
    for i, (name, typ, ne) in enumerate(ts):
        m = re.match(r"blk\.(\d+)\.(.*)$", name)
        exp = layer(int(m.group(1)), m.group(2)) if m else glob.get(name)
        if exp is None:
            print(f"| {i} | `{name}` | {ne} | {typ} | {t8.get(name)} | **not bound** | | | ✗ | | |")
            bad += 1
            continue
        etype, ene, when = exp
        if m:
            il = int(m.group(1))
            present = {"ratio != 0": ratios[il] != 0, "ratio == 4": ratios[il] == 4,
                       "layer < hash_layer_count": il < nhash}.get(when, True)
            if not present:
                print(f"| {i} | `{name}` | {ne} | {typ} | {t8.get(name)} | **not bound here** ({when}) | {etype} | {ene} | ✗ | | |")
                bad += 1
                continue
        lay = "✓" if ne == ene else "✗"
        q8 = t8.get(name)
        q8ok = "✓" if q8 in etype.split(", ")[0].split("/") else ("tiny shape" if "IQ2" in etype else "✗")
        bad += (lay != "✓") + (q8ok == "✗")
        print(f"| {i} | `{name}` | {ne} | {typ} | {q8} | {when} | {etype} | {ene} | ✓ | {lay} | {q8ok} |")
    # anything ds4 requires that the file lacks
    names = {n for n, _, _ in ts}
    L = len(ratios)
    for il in range(L):
        for suf in ["attn_compressor_ape.weight", "indexer.attn_q_b.weight", "ffn_gate_tid2eid.weight", "hc_attn_fn.weight"]:
            exp = layer(il, suf)
            present = {"ratio != 0": ratios[il] != 0, "ratio == 4": ratios[il] == 4,
                       "layer < hash_layer_count": il < nhash}.get(exp[2], True)
            if present and f"blk.{il}.{suf}" not in names:
                print(f"| - | **missing** `blk.{il}.{suf}` | | | | {exp[2]} | {exp[0]} | {exp[1]} | ✗ | | |")
                bad += 1
    print(f"\n{len(ts)} tensors, {bad} disagreement(s) in name or layout or q8_0 type.", file=sys.stderr)


if __name__ == "__main__":
    main()
