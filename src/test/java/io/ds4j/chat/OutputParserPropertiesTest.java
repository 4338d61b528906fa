package io.ds4j.chat;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.OutputEvent.ContentDelta;
import io.ds4j.chat.OutputEvent.Finished;
import io.ds4j.chat.OutputEvent.ReasoningDelta;
import io.ds4j.chat.OutputEvent.ToolCallArgumentsDelta;
import io.ds4j.chat.OutputEvent.ToolCallStart;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Any tokenization / chunking of a generated text yields the same final message, and what was emitted
 * as content is exactly the expected content (so no partial stop string and no part of a DSML tag was
 * ever emitted as content). The expected message is computed here from how the text was built.
 */
class OutputParserPropertiesTest {
    static final String[] FRAGMENTS = {"a", "b", "Hello", " ", "  ", "\n", "\n\n", "STOP", "ST", "OP", "<", ">", "/", "think",
        "</think", "<think>", "｜", "DSML", "｜DSML｜", "<｜DSML｜", "tool_calls", "é", "世界", "😀", "\"", "\\", "{", "}", "é世", "\t"};
    static final String[] NON_STRING_VALUES = {"1", "2.5", "true", "null", "[1, 2]", "{\"a\": \"b\"}", "-7"};
    static final String[] NAMES = {"f", "get_weather", "x_1"};
    static final String[] STOPS = {"STOP", "\n\n\n", "é世"};

    record Param(String key, boolean isString, String value) {}

    record Call(String name, List<Param> params) {
        String argsJson() {
            StringBuilder sb = new StringBuilder("{");
            for (int i = 0; i < params.size(); i++) {
                Param p = params.get(i);
                if (i > 0) sb.append(", ");
                sb.append(Json.quote(p.key)).append(": ").append(p.isString ? Json.quote(p.value) : p.value);
            }
            return sb.append("}").toString();
        }
    }

    record Case(boolean thinking, String reasoning, String content, List<Call> calls, List<String> stops, boolean tools, long seed) {}

    static Tokenizer tok() {
        return TestTokenizers.real();
    }

    static String without(String s, String bad) {
        while (s.contains(bad)) s = s.replace(bad, "");
        return s;
    }

    static Arbitrary<String> text() {
        return Arbitraries.of(FRAGMENTS).list().ofMaxSize(12).map(l -> String.join("", l));
    }

    static Arbitrary<Call> call() {
        Arbitrary<Param> param = Combinators.combine(Arbitraries.of(true, false), text(), Arbitraries.of(NON_STRING_VALUES))
                .as((isStr, s, v) -> new Param("", isStr, isStr ? without(s, "</｜DSML｜parameter>") : v));
        return Combinators.combine(Arbitraries.of(NAMES), param.list().ofMaxSize(3)).as((n, ps) -> {
            List<Param> keyed = new ArrayList<>();
            for (int i = 0; i < ps.size(); i++) keyed.add(new Param("k" + i, ps.get(i).isString, ps.get(i).value));
            return new Call(n, keyed);
        });
    }

    @Provide
    Arbitrary<Case> cases() {
        return Combinators.combine(Arbitraries.of(true, false), text(), text(), call().list().ofMaxSize(2),
                Arbitraries.of(STOPS).list().ofMaxSize(2).uniqueElements(), Arbitraries.of(true, false), Arbitraries.longs())
                .as((th, r, c, calls, stops, tools, seed) -> {
                    String reasoning = without(r, "</think>");
                    if (reasoning.startsWith("<think>")) reasoning = "x" + reasoning;
                    String content = without(c, OutputParser.TC_OPEN);
                    return new Case(th, reasoning, content, calls, stops, tools, seed);
                });
    }

    record Expected(String reasoning, String content, List<String> names, List<String> args, String finish) {}

    static String dsml(Case k) {
        List<ToolCall> tcs = new ArrayList<>();
        for (Call c : k.calls) tcs.add(new ToolCall("id", c.name, c.argsJson()));
        return ChatRenderer.dsmlText(tcs);
    }

    static Expected expected(Case k) {
        String reasoning = k.thinking ? k.reasoning : null;
        if (k.tools && !k.calls.isEmpty()) {
            String upToTag = k.content + "\n\n" + OutputParser.TC_OPEN;
            int tagAt = k.content.length() + 2;
            int stop = earliest(upToTag, k.stops);
            if (stop >= 0 && stop < tagAt) return new Expected(reasoning, upToTag.substring(0, stop), List.of(), List.of(), "stop");
            int end = k.content.length();
            while (end > 0 && Character.isWhitespace(k.content.charAt(end - 1))) end--;
            return new Expected(reasoning, k.content.substring(0, end), k.calls.stream().map(Call::name).toList(),
                    k.calls.stream().map(Call::argsJson).toList(), "tool_calls");
        }
        String full = k.content + (k.calls.isEmpty() ? "" : dsml(k));
        int stop = earliest(full, k.stops);
        return new Expected(reasoning, stop >= 0 ? full.substring(0, stop) : full, List.of(), List.of(), "stop");
    }

    static int earliest(String s, List<String> stops) {
        int best = -1;
        for (String st : stops) {
            int i = s.indexOf(st);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }

    static String generated(Case k) {
        return (k.thinking ? k.reasoning + "</think>" : "") + k.content + (k.calls.isEmpty() ? "" : dsml(k));
    }

    /** Three tokenizations of the same text: whole, random chunks encoded separately, one token per byte. */
    static List<int[]> tokenizations(String gen, long seed) {
        Tokenizer t = tok();
        List<int[]> out = new ArrayList<>();
        out.add(append(t.encode(gen, true), t.eosId()));
        Random r = new Random(seed);
        List<Integer> ids = new ArrayList<>();
        int i = 0;
        while (i < gen.length()) {
            int j = Math.min(gen.length(), i + 1 + r.nextInt(6));
            if (j < gen.length() && Character.isLowSurrogate(gen.charAt(j))) j++;
            for (int id : t.encode(gen.substring(i, j), true)) ids.add(id);
            i = j;
        }
        ids.add(t.eosId());
        out.add(ids.stream().mapToInt(Integer::intValue).toArray());
        byte[] b = gen.getBytes(StandardCharsets.UTF_8);
        int[] perByte = new int[b.length + 1];
        for (int k = 0; k < b.length; k++) perByte[k] = t.byteTokenId(b[k] & 0xFF);
        perByte[b.length] = t.eosId();
        out.add(perByte);
        return out;
    }

    static int[] append(int[] a, int v) {
        int[] o = java.util.Arrays.copyOf(a, a.length + 1);
        o[a.length] = v;
        return o;
    }

    @Property(tries = 300)
    void anyTokenizationGivesTheSameMessage(@ForAll("cases") Case k) {
        Expected want = expected(k);
        String gen = generated(k);
        for (int[] ids : tokenizations(gen, k.seed)) {
            OutputParser p = new OutputParser(tok(), k.thinking ? ThinkingMode.HIGH : ThinkingMode.OFF, k.stops, k.tools);
            List<OutputEvent> ev = new ArrayList<>();
            for (int id : ids) {
                ev.addAll(p.push(id));
            }
            assertThat(p.done()).isTrue();
            ev.addAll(p.finish(false));
            StringBuilder reasoning = new StringBuilder(), content = new StringBuilder();
            List<String> names = new ArrayList<>();
            List<StringBuilder> args = new ArrayList<>();
            for (OutputEvent e : ev) {
                switch (e) {
                    case ReasoningDelta d -> reasoning.append(d.text());
                    case ContentDelta d -> {
                        assertThat(d.text()).isNotEmpty();
                        content.append(d.text());
                    }
                    case ToolCallStart s -> {
                        assertThat(s.index()).isEqualTo(names.size());
                        names.add(s.name());
                        args.add(new StringBuilder());
                    }
                    case ToolCallArgumentsDelta d -> {
                        assertThat(d.index()).isEqualTo(args.size() - 1);
                        args.get(d.index()).append(d.fragment());
                    }
                    case Finished f -> assertThat(f.finishReason()).isEqualTo(want.finish);
                }
            }
            String ctx = "generated " + Json.quote(gen);
            assertThat(ev.get(ev.size() - 1)).as(ctx).isInstanceOf(Finished.class);
            if (k.thinking) assertThat(reasoning.toString()).as(ctx).isEqualTo(want.reasoning);
            else assertThat(reasoning.toString()).as(ctx).isEmpty();
            assertThat(content.toString()).as(ctx).isEqualTo(want.content);
            assertThat(names).as(ctx).isEqualTo(want.names);
            List<String> got = args.stream().map(StringBuilder::toString).toList();
            assertThat(got).as(ctx).isEqualTo(want.args);
            for (String a : got) assertThat(Json.isValid(a)).as(a).isTrue();
            for (String s : k.stops) assertThat(content.toString()).doesNotContain(s);
            ChatMessage m = p.message();
            assertThat(m.content()).isEqualTo(want.content);
        }
    }
}
