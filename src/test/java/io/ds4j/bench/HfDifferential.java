package io.ds4j.bench;

import io.ds4j.chat.Json;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Differential check against HF tokenizers (the Rust library through its npm binding), not a unit
 * test: it needs node and {@code npm install tokenizers@0.23.2} in some directory. Random strings
 * drawn from many scripts, digits, whitespace (NEL, BOM, NBSP, CR/LF runs), punctuation, symbols,
 * combining marks, emoji and added-token strings are encoded by both; mismatches are printed.
 * <pre>
 * (mkdir -p /tmp/hftok &amp;&amp; cd /tmp/hftok &amp;&amp; npm install tokenizers@0.23.2)
 * java -cp target/test-classes:target/classes io.ds4j.bench.HfDifferential /tmp/hftok/node_modules [cases] [seed]
 * </pre>
 * Only V3 added tokens are generated (the V3 tokenizer.json is the reference file).
 */
public final class HfDifferential {
    static final String[] POOL = {
        "a", "Z", "hello", " the", "I", "'s", "'ll", "don't", ".", ",", "!", "?", "...", "—", "–", "\"", "'", "(", ")", "[", "]", "{", "}",
        "<", ">", "/", "\\", "#", "@", "$", "%", "^", "&", "*", "_", "=", "+", "-", "~", "`", "|", ";", ":",
        " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\u0085", "\uFEFF", "\u00A0", "\u2028", "\u3000", "\u200B", "\u000B", "\f",
        "0", "7", "12", "123", "4567", "٣", "١٢٣٤", "０", "１２", "²", "½", "Ⅻ", "߁", "৩",
        "é", "ü", "ñ", "ß", "Ω", "д", "Привет", "ا", "مرحبا", "ש", "नमस्ते", "ก", "สวัสดี", "ក", "한국", "안",
        "世界", "你好", "龥", "龦", "𠀀", "ひらがな", "カタカナ", "・", "ー", "゛", "ｶ", "Ａ",
        "\u0301", "e\u0301", "\u0308", "\u200D", "😀", "👨‍👩‍👧", "🇮🇹", "❤️", "✅", "∑", "≤", "π", "€", "©", "®", "™", "𝔸", "𝟘",
        "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<｜fim▁hole｜>", "<|EOT|>", "｜", "▁",
        "<think>", "</think>", "｜DSML｜", "\u0000", "\u0001", "\u007F", "\u00AD", "\uFFFD",
    };

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: HfDifferential NODE_MODULES_DIR [cases] [seed]");
            System.exit(2);
        }
        int cases = args.length > 1 ? Integer.parseInt(args[1]) : 20000;
        long seed = args.length > 2 ? Long.parseLong(args[2]) : 1;
        Random r = new Random(seed);
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < cases; i++) {
            StringBuilder sb = new StringBuilder();
            int n = 1 + r.nextInt(r.nextInt(10) == 0 ? 80 : 12);
            for (int k = 0; k < n; k++) sb.append(POOL[r.nextInt(POOL.length)]);
            texts.add(sb.toString());
        }
        Path in = Files.createTempFile("hfdiff", ".jsonl"), out = Files.createTempFile("hfdiff", ".out");
        StringBuilder sb = new StringBuilder();
        for (String t : texts) sb.append(Json.quote(t)).append('\n');
        Files.writeString(in, sb, StandardCharsets.UTF_8);
        String js = "const {Tokenizer}=require('tokenizers');const fs=require('fs');"
                + "const t=Tokenizer.fromFile(process.argv[1]);"
                + "const lines=fs.readFileSync(process.argv[2],'utf8').split('\\n').filter(l=>l.length);"
                + "(async()=>{const o=[];for(const l of lines){const e=await t.encode(JSON.parse(l),null,{addSpecialTokens:false});"
                + "o.push(JSON.stringify(Array.from(e.getIds())));}fs.writeFileSync(process.argv[3],o.join('\\n')+'\\n');})();";
        ProcessBuilder pb = new ProcessBuilder("node", "-e", js, TestTokenizers.tokenizerJson().toAbsolutePath().toString(),
                in.toString(), out.toString()).inheritIO();
        pb.environment().put("NODE_PATH", args[0]);
        if (pb.start().waitFor() != 0) throw new IllegalStateException("node failed");
        List<String> ref = Files.readAllLines(out, StandardCharsets.UTF_8);
        // the V3 file: V4-only added tokens are plain text there, so compare with a V3 view of them
        Tokenizer tok = TestTokenizers.real();
        Map<String, String> v4Only = Map.of("<think>", "", "</think>", "", "｜DSML｜", "");
        int bad = 0, compared = 0;
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i);
            boolean hasV4Only = v4Only.keySet().stream().anyMatch(t::contains);
            int[] mine = hasV4Only ? tok.encode(t, false) : tok.encode(t, true);
            if (hasV4Only && (t.contains("<｜") || t.contains("<|EOT|>"))) continue; // would need a mixed view
            compared++;
            String got = Json.dumpsCompact(java.util.Arrays.stream(mine).mapToObj(x -> new Json.Num(Integer.toString(x))).toList());
            if (!got.equals(ref.get(i))) {
                if (bad++ < 20) System.out.println("MISMATCH " + Json.quote(t) + "\n  rust " + ref.get(i) + "\n  java " + got);
            }
        }
        System.out.printf("%d cases, %d compared, %d mismatches (seed %d)%n", texts.size(), compared, bad, seed);
        Files.deleteIfExists(in);
        Files.deleteIfExists(out);
    }
}
