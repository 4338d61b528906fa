package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.chat.OutputParser;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * The DSML tool-call grammar over DeepSeek's real vocabulary: random walks through the allowed sets (a
 * stand-in for a model that may pick any allowed token) always end in a closed block that the real
 * {@link OutputParser} turns into calls of allowed tools whose arguments parse and satisfy the independent
 * tree validator, with every required parameter present.
 */
class ToolCallConstraintTest {
    static final Tokenizer TOK = TestTokenizers.real();
    static final JsonVocabulary VOCAB = new JsonVocabulary(TOK, TOK.vocabSize(), ChatRenderer.END_THINK,
            Set.of(ChatRenderer.DSML));
    static final Map<String, JsonNode> SCHEMAS = ToolCallFixtures.TOOLS.stream().collect(Collectors.toMap(
            ToolCallRecognizer.Tool::name, t -> JsonSyntaxTest.JSON.readTree(
                    t.parametersJson() == null ? "{\"type\":\"object\",\"additionalProperties\":false}" : t.parametersJson())));

    record Walk(String text, List<ToolCall> calls, String finish) {}

    static Walk walk(List<ToolCallRecognizer.Tool> tools, int maxInvokes, long seed, int maxSteps) {
        Random rnd = new Random(seed);
        JsonConstraint c = new JsonConstraint(VOCAB, ToolCallRecognizer.of(tools, maxInvokes), false);
        OutputParser parser = new OutputParser(TOK, ThinkingMode.OFF, List.of(), true);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int step = 0; step < maxSteps; step++) {
            byte[] bits = c.allowedNext();
            List<Integer> ids = new ArrayList<>();
            for (int id = 0; id < TOK.vocabSize(); id++) if ((bits[id >> 3] >> (id & 7) & 1) != 0) ids.add(id);
            assertThat(ids).as("dead end after %s", text).isNotEmpty();
            if (c.complete()) {
                assertThat(ids).containsExactly(TOK.eosId());
                assertThat(parser.done()).as("the parser saw the block close").isTrue();
                return new Walk(text.toString(StandardCharsets.UTF_8), parser.toolCalls(), parser.finishReason());
            }
            assertThat(parser.done()).isFalse();
            int pick = pick(ids, rnd);
            c.accept(pick);
            parser.push(pick);
            text.writeBytes(TOK.tokenBytes(pick));
        }
        return null;
    }

    /** A random allowed token, preferring short ones that close things (70 %), so that walks end. */
    static int pick(List<Integer> ids, Random rnd) {
        int pick = ids.get(rnd.nextInt(ids.size()));
        if (rnd.nextDouble() < 0.7) {
            List<Integer> closers = ids.stream().filter(id -> {
                byte[] b = TOK.tokenBytes(id);
                return b.length == 1 && (b[0] == '}' || b[0] == ']' || b[0] == '"' || b[0] == '<' || b[0] == '1'
                        || b[0] == 't' || b[0] == 'n');
            }).toList();
            if (!closers.isEmpty()) pick = closers.get(rnd.nextInt(closers.size()));
        }
        return pick;
    }

    static void assertValid(List<ToolCall> calls, String text) {
        assertThat(calls).as(text).isNotEmpty();
        for (ToolCall call : calls) {
            JsonNode schema = SCHEMAS.get(call.name());
            assertThat(schema).as("an allowed tool: %s", call.name()).isNotNull();
            JsonNode args = JsonSyntaxTest.JSON.readTree(call.argumentsJson());
            assertThat(JsonSchemaTest.Validator.valid(schema, args, schema)).as("%s in %s", call.argumentsJson(), text).isTrue();
        }
    }

    @Test
    void randomWalksAlwaysCloseTheBlockWithSchemaValidArguments() {
        int finished = 0, calls = 0;
        for (long seed = 1; seed <= 40; seed++) {
            Walk w = walk(ToolCallFixtures.TOOLS, 4, seed, 600);
            if (w == null) continue;
            finished++;
            calls += w.calls().size();
            assertThat(w.finish()).isEqualTo("tool_calls");
            assertValid(w.calls(), w.text());
        }
        assertThat(finished).as("walks that closed their block").isGreaterThanOrEqualTo(36);
        System.out.printf("tool-call grammar: %d of 40 walks closed, %d calls, all valid%n", finished, calls);
    }

    @Test
    void oneInvokeWhenParallelCallsAreOff() {
        for (long seed = 1; seed <= 10; seed++) {
            Walk w = walk(ToolCallFixtures.TOOLS, 1, seed, 600);
            if (w == null) continue;
            assertThat(w.calls()).hasSize(1);
            assertValid(w.calls(), w.text());
        }
    }

    @Test
    void aNamedToolIsTheOnlyOneCalled() {
        var search = ToolCallFixtures.TOOLS.stream().filter(t -> t.name().equals("search")).toList();
        for (long seed = 1; seed <= 10; seed++) {
            Walk w = walk(search, 4, seed, 600);
            if (w == null) continue;
            assertThat(w.calls()).extracting(ToolCall::name).containsOnly("search");
            assertValid(w.calls(), w.text());
        }
    }

    @Test
    void theGrammarAcceptsWhatTheRendererWritesAndRejectsMissingRequiredParameters() {
        String ok = ChatRenderer.dsmlText(List.of(new ToolCall("c1", "set_flag", "{\"on\":true,\"level\":2.5}")))
                .replace("string=\"true\"", "string=\"false\"");
        ByteRecognizer r = ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4);
        assertThat(r.feed(ok.getBytes(StandardCharsets.UTF_8))).as(ok).isTrue();
        assertThat(r.complete()).isTrue();
        String missing = ChatRenderer.dsmlText(List.of(new ToolCall("c1", "set_flag", "{\"on\":true}")));
        ByteRecognizer r2 = ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4);
        assertThat(r2.feed(missing.getBytes(StandardCharsets.UTF_8))).isFalse();
        // a value may not smuggle in the parameter's closing tag
        ByteRecognizer r3 = ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4);
        String smuggle = "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
                + "<｜DSML｜parameter name=\"city\" string=\"false\">\"a</｜DSML｜";
        assertThat(r3.feed(smuggle.getBytes(StandardCharsets.UTF_8))).isFalse();
        // an unsupported schema is refused (the server then forces only the opening)
        assertThatThrownBy(() -> ToolCallRecognizer.of(List.of(new ToolCallRecognizer.Tool("f",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"http://x\"}}}")), 1))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void costOfTheAllowedSet() {
        String head = "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n";
        String inString = head + "<｜DSML｜parameter name=\"city\" string=\"false\">\"Par";
        String choice = head;
        String afterNumber = head + "<｜DSML｜parameter name=\"city\" string=\"false\">\"P\"</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"days\" string=\"false\">1";
        double[] ms = new double[3];
        int[] allowed = new int[3];
        String[] texts = {inString, choice, afterNumber};
        for (int k = 0; k < 3; k++) {
            ByteRecognizer r = ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4);
            assertThat(r.feed(texts[k].getBytes(StandardCharsets.UTF_8))).as(texts[k]).isTrue();
            JsonConstraint c = new JsonConstraint(VOCAB, r, false);
            for (int i = 0; i < 20; i++) c.allowedNext();
            long t0 = System.nanoTime();
            byte[] bits = null;
            for (int i = 0; i < 50; i++) bits = c.allowedNext();
            ms[k] = (System.nanoTime() - t0) / 50e6;
            for (int id = 0; id < TOK.vocabSize(); id++) if ((bits[id >> 3] >> (id & 7) & 1) != 0) allowed[k]++;
        }
        assertThat(allowed[0]).isGreaterThan(1000);
        System.out.printf("tool-call grammar: allowed set over %d tokens: %.2f ms inside a string value (%d allowed), "
                + "%.2f ms at a tag choice (%d allowed), %.2f ms after a number (%d allowed)%n", TOK.vocabSize(),
                ms[0], allowed[0], ms[1], allowed[1], ms[2], allowed[2]);
    }

    @Test
    void malformedRequiredListsAreRefusedAsUnsupportedSchemasNotCrashes() {
        for (String required : List.of("[[1]]", "[1]", "\"a\"", "{}")) {
            var tool = new ToolCallRecognizer.Tool("f", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
                    + "\"required\":" + required + "}");
            assertThatThrownBy(() -> ToolCallRecognizer.of(List.of(tool), 1)).as(required)
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }
}
