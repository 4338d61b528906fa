package io.ds4j.chat;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.OutputEvent.ContentDelta;
import io.ds4j.chat.OutputEvent.Finished;
import io.ds4j.chat.OutputEvent.ReasoningDelta;
import io.ds4j.chat.OutputEvent.ToolCallArgumentsDelta;
import io.ds4j.chat.OutputEvent.ToolCallStart;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class OutputParserTest {
    static Tokenizer tok;
    static Map<String, String> examples;

    @BeforeAll
    static void load() throws IOException {
        tok = TestTokenizers.real();
        examples = ChatRendererTest.readExamples();
    }

    /** Result of feeding all ids, one at a time. */
    record Run(List<OutputEvent> events, OutputParser parser) {
        String reasoning() {
            StringBuilder sb = new StringBuilder();
            for (OutputEvent e : events) if (e instanceof ReasoningDelta r) sb.append(r.text());
            return sb.toString();
        }

        String content() {
            StringBuilder sb = new StringBuilder();
            for (OutputEvent e : events) if (e instanceof ContentDelta c) sb.append(c.text());
            return sb.toString();
        }

        List<String> names() {
            List<String> out = new ArrayList<>();
            for (OutputEvent e : events) if (e instanceof ToolCallStart s) out.add(s.name());
            return out;
        }

        List<String> args() {
            List<StringBuilder> sbs = new ArrayList<>();
            for (OutputEvent e : events) {
                if (e instanceof ToolCallStart s) {
                    assertThat(s.index()).isEqualTo(sbs.size());
                    sbs.add(new StringBuilder());
                }
                if (e instanceof ToolCallArgumentsDelta d) {
                    assertThat(d.index()).isEqualTo(sbs.size() - 1); // arguments follow their start
                    sbs.get(d.index()).append(d.fragment());
                }
            }
            return sbs.stream().map(StringBuilder::toString).toList();
        }

        String finish() {
            OutputEvent last = events.get(events.size() - 1);
            assertThat(last).isInstanceOf(Finished.class);
            assertThat(events.stream().filter(e -> e instanceof Finished).count()).isEqualTo(1);
            return ((Finished) last).finishReason();
        }
    }

    static Run run(int[] ids, ThinkingMode mode, List<String> stops, boolean tools, ToolCallMemory mem, boolean length) {
        OutputParser p = new OutputParser(tok, mode, stops, tools, mem);
        List<OutputEvent> ev = new ArrayList<>();
        for (int id : ids) ev.addAll(p.push(id));
        ev.addAll(p.finish(length));
        assertThat(p.finish(length)).isEmpty();
        return new Run(ev, p);
    }

    /** The assistant's generated part of a rendered example: after the last "<｜Assistant｜>" + think tag, through EOS. */
    static String assistantPart(String rendered, String after) {
        int at = rendered.indexOf(after) + after.length();
        int eos = rendered.indexOf("<｜end▁of▁sentence｜>", at);
        return rendered.substring(at, eos + "<｜end▁of▁sentence｜>".length());
    }

    @Test
    void e4AssistantPartParsesBack() {
        String gen = assistantPart(examples.get("E4"), "<｜Assistant｜></think>");
        assertThat(gen).isEqualTo("first answer<｜end▁of▁sentence｜>");
        Run r = run(tok.encode(gen, true), ThinkingMode.OFF, List.of(), false, null, false);
        assertThat(r.content()).isEqualTo("first answer");
        assertThat(r.parser.done()).isTrue();
        assertThat(r.finish()).isEqualTo("stop");
        assertThat(r.parser.message().reasoningContent()).isNull();
    }

    @Test
    void e6AssistantPartParsesBackToTheOpenAiCall() {
        String gen = assistantPart(examples.get("E6"), "<｜Assistant｜><think>");
        assertThat(gen).startsWith("Need the tool.</think>\n\n<｜DSML｜tool_calls>");
        ToolCallMemory mem = new ToolCallMemory();
        Run r = run(tok.encode(gen, true), ThinkingMode.HIGH, List.of(), true, mem, false);
        assertThat(r.reasoning()).isEqualTo("Need the tool.");
        assertThat(r.content()).isEmpty();
        assertThat(r.names()).containsExactly("get_weather");
        assertThat(r.args()).containsExactly("{\"city\": \"Roma\", \"days\": 2}"); // chat-format.md 3.3
        assertThat(r.finish()).isEqualTo("tool_calls");
        assertThat(mem.size()).isEqualTo(1);
    }

    @Test
    void e7CallsParseBack() {
        var calls = List.of(new ToolCall("a", "get_weather", "{\"city\": \"A\"}"), new ToolCall("b", "get_weather", "{\"city\": \"B\"}"));
        String gen = ChatRenderer.dsmlText(calls) + "<｜end▁of▁sentence｜>";
        Run r = run(tok.encode(gen, true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r.names()).containsExactly("get_weather", "get_weather");
        assertThat(r.args()).containsExactly("{\"city\": \"A\"}", "{\"city\": \"B\"}");
        assertThat(r.content()).isEmpty();
        assertThat(r.finish()).isEqualTo("tool_calls");
        assertThat(r.parser.done()).isTrue();
    }

    @Test
    void doneRightAfterClosingTagWithoutEos() {
        String gen = "Sure." + ChatRenderer.dsmlText(List.of(new ToolCall("a", "f", "{\"x\": [1, 2]}")));
        OutputParser p = new OutputParser(tok, ThinkingMode.OFF, List.of(), true);
        for (int id : tok.encode(gen, true)) p.push(id);
        assertThat(p.done()).isTrue();
        assertThat(p.finishReason()).isEqualTo("tool_calls");
        assertThat(p.push(tok.encodeOne("more"))).isEmpty();
        assertThat(p.message().content()).isEqualTo("Sure.");
        assertThat(p.message().toolCalls()).hasSize(1);
        assertThat(p.message().toolCalls().get(0).argumentsJson()).isEqualTo("{\"x\": [1, 2]}");
    }

    @Test
    void toolsDisabledMeansDsmlIsContent() {
        String dsml = ChatRenderer.dsmlText(List.of(new ToolCall("a", "f", "{}")));
        Run r = run(tok.encode("x" + dsml + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), false, null, false);
        assertThat(r.content()).isEqualTo("x" + dsml);
        assertThat(r.names()).isEmpty();
        assertThat(r.finish()).isEqualTo("stop");
    }

    @Test
    void stopStringsAreHeldBackAndCut() {
        String gen = "Hello wor" + "ld! END here";
        OutputParser p = new OutputParser(tok, ThinkingMode.OFF, List.of("END", "world!!"), false);
        List<OutputEvent> ev = new ArrayList<>();
        for (int id : tok.encode(gen)) {
            ev.addAll(p.push(id));
        }
        assertThat(p.done()).isTrue();
        ev.addAll(p.finish(false));
        String content = ev.stream().filter(e -> e instanceof ContentDelta).map(e -> ((ContentDelta) e).text()).reduce("", String::concat);
        assertThat(content).isEqualTo("Hello world! ");
        assertThat(ev.get(ev.size() - 1)).isEqualTo(new Finished("stop"));
        // a held-back partial stop string that never completes is content at the end
        Run r = run(tok.encode("abc EN"), ThinkingMode.OFF, List.of("END"), false, null, true);
        assertThat(r.content()).isEqualTo("abc EN");
        assertThat(r.finish()).isEqualTo("length");
    }

    @Test
    void stopStringsDoNotApplyToReasoning() {
        Run r = run(tok.encode("think STOP more</think>answer STOP tail<｜end▁of▁sentence｜>", true), ThinkingMode.HIGH, List.of("STOP"), false, null, false);
        assertThat(r.reasoning()).isEqualTo("think STOP more");
        assertThat(r.content()).isEqualTo("answer ");
        assertThat(r.finish()).isEqualTo("stop");
    }

    @Test
    void leadingThinkTagIsSkippedAndUnclosedReasoningStaysReasoning() {
        Run r = run(tok.encode("<think>abc</thi", true), ThinkingMode.HIGH, List.of(), true, null, true);
        assertThat(r.reasoning()).isEqualTo("abc</thi");
        assertThat(r.content()).isEmpty();
        assertThat(r.finish()).isEqualTo("length");
    }

    @Test
    void endOfTextInsideAnOpenCallIsLengthNotToolCalls() {
        String gen = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"n\" string=\"false\">12";
        Run r = run(tok.encode(gen + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r.names()).containsExactly("f");
        assertThat(r.args()).containsExactly("{\"n\": ");
        assertThat(r.finish()).isEqualTo("length");
        // an invoke with no parameter yet: no invented {}
        String gen2 = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n";
        Run r2 = run(tok.encode(gen2 + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r2.args()).containsExactly("");
        assertThat(r2.finish()).isEqualTo("length");
    }

    @Test
    void malformedAfterAnOpenCallIsLength() {
        String gen = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\ngarbage";
        Run r = run(tok.encode(gen + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r.finish()).isEqualTo("length");
        assertThat(r.args()).containsExactly("");
    }

    @Test
    void closedInvokesWithoutTheBlockCloseAreToolCalls() {
        String gen = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"n\" string=\"false\">1</｜DSML｜parameter>\n</｜DSML｜invoke>";
        Run r = run(tok.encode(gen + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r.args()).containsExactly("{\"n\": 1}");
        assertThat(r.finish()).isEqualTo("tool_calls");
    }

    @Test
    void malformedBlockBeforeAnyCallIsContent() {
        String gen = "text\n\n<｜DSML｜tool_calls>\nnot dsml at all";
        Run r = run(tok.encode(gen + "<｜end▁of▁sentence｜>", true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r.content()).isEqualTo(gen);
        assertThat(r.names()).isEmpty();
        assertThat(r.finish()).isEqualTo("stop");
    }

    @Test
    void lengthLimitInsideACallKeepsThePartialArgumentsAndFinishesLength() {
        String gen = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"true\">some \"quoted\" te";
        Run r = run(tok.encode(gen, true), ThinkingMode.OFF, List.of(), true, null, true);
        assertThat(r.names()).containsExactly("f");
        // nothing invented: the arguments stop where the generation stopped
        assertThat(r.args()).containsExactly("{\"a\": \"some \\\"quoted\\\" te");
        assertThat(Json.isValid(r.args().get(0))).isFalse();
        assertThat(r.finish()).isEqualTo("length");
        // a non-string value that is not JSON is passed as a string
        String gen2 = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"n\" string=\"false\">oops</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
        Run r2 = run(tok.encode(gen2, true), ThinkingMode.OFF, List.of(), true, null, false);
        assertThat(r2.args()).containsExactly("{\"n\": \"oops\"}");
    }

    @Test
    void stringArgumentsStreamBeforeTheValueCloses() {
        String value = "line one\nline \"two\" " + "x</｜DSML｜param".repeat(3) + " end".repeat(40);
        String gen = ChatRenderer.dsmlText(List.of(new ToolCall("a", "write", "{\"text\": " + Json.quote(value) + "}")));
        OutputParser p = new OutputParser(tok, ThinkingMode.OFF, List.of(), true);
        int deltasBeforeClose = 0;
        StringBuilder args = new StringBuilder();
        boolean closed = false;
        for (int id : tok.encode(gen, true)) {
            for (OutputEvent e : p.push(id)) {
                if (e instanceof ToolCallArgumentsDelta d) {
                    args.append(d.fragment());
                    if (!closed) deltasBeforeClose++;
                    if (args.toString().endsWith("\"}")) closed = true;
                }
            }
        }
        assertThat(deltasBeforeClose).isGreaterThan(10);
        assertThat(args.toString()).isEqualTo("{\"text\": " + Json.quote(value) + "}");
        assertThat(p.finishReason()).isEqualTo("tool_calls");
    }

    @Test
    void controlTokensOtherThanStructuralAreNotText() {
        OutputParser p = new OutputParser(tok, ThinkingMode.OFF, List.of(), false);
        assertThat(p.push(tok.specialTokenId("<｜User｜>").getAsInt())).isEmpty();
        assertThat(p.push(tok.bosId())).isEmpty();
        List<OutputEvent> ev = new ArrayList<>(p.push(tok.encodeOne("hi")));
        ev.addAll(p.push(tok.eosId()));
        assertThat(ev).containsExactly(new ContentDelta("hi"));
        assertThat(p.done()).isTrue();
    }

    @Test
    void exactReplayThroughToolCallMemory() {
        // generated with non-canonical details the re-encoder would write differently: minified JSON,
        // a single newline before the block, keys in a different order than a client might sort them
        String block = "\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"days\" string=\"false\">[1,2]</｜DSML｜parameter>\n"
                + "<｜DSML｜parameter name=\"city\" string=\"true\">Roma</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
        String gen = "Checking.</think>Let me look." + block + "<｜end▁of▁sentence｜>";
        ToolCallMemory mem = new ToolCallMemory(16);
        Run r = run(tok.encode(gen, true), ThinkingMode.HIGH, List.of(), true, mem, false);
        ChatMessage back = r.parser.message();
        assertThat(back.content()).isEqualTo("Let me look.");
        assertThat(back.reasoningContent()).isEqualTo("Checking.");
        assertThat(back.toolCalls().get(0).argumentsJson()).isEqualTo("{\"days\": [1,2], \"city\": \"Roma\"}");
        assertThat(back.toolCalls().get(0).id()).startsWith("call_").hasSize(29);

        var tools = List.of(ChatRendererTest.WEATHER);
        var msgs = List.of(ChatMessage.user("Weather in Rome?"), back, ChatMessage.tool(back.toolCalls().get(0).id(), "sunny"));
        var withMemory = new ChatRenderer(tok, ChatTemplateSettings.defaults(), mem);
        String text = withMemory.renderText(new ChatPrompt(msgs, tools, null, ThinkingMode.HIGH));
        assertThat(text).contains("<｜User｜>Weather in Rome?<｜Assistant｜><think>" + gen + "<｜User｜><tool_result>sunny</tool_result>");
        int[] ids = withMemory.render(new ChatPrompt(msgs, tools, null, ThinkingMode.HIGH));
        assertThat(tok.decode(ids)).isEqualTo(text);
        int dsmlId = tok.specialTokenId("｜DSML｜").getAsInt();
        assertThat(java.util.Arrays.stream(ids).filter(i -> i == dsmlId).count()).isEqualTo(text.split("｜DSML｜", -1).length - 1L);

        // without memory the block is re-encoded (canonical form), so it differs
        String plain = new ChatRenderer(tok, ChatTemplateSettings.defaults()).renderText(new ChatPrompt(msgs, tools, null, ThinkingMode.HIGH));
        assertThat(plain).doesNotContain(gen).contains("[1, 2]");
        // a client that edited the arguments gets the re-encoded form too
        ToolCall edited = new ToolCall(back.toolCalls().get(0).id(), "get_weather", "{\"city\": \"Milano\"}");
        var msgs2 = List.of(ChatMessage.user("Weather in Rome?"), ChatMessage.assistant("Let me look.", "Checking.", List.of(edited)));
        assertThat(withMemory.renderText(new ChatPrompt(msgs2, tools, null, ThinkingMode.HIGH))).contains("Milano").doesNotContain("[1,2]");
    }

    @Test
    void toolCallMemoryIsBoundedLru() {
        ToolCallMemory mem = new ToolCallMemory(2);
        ToolCall a = new ToolCall("a", "f", "{}"), b = new ToolCall("b", "f", "{}"), c = new ToolCall("c", "f", "{}");
        mem.remember(List.of(a), "RA");
        mem.remember(List.of(b), "RB");
        assertThat(mem.replay(List.of(a))).hasValue("RA"); // touch a
        mem.remember(List.of(c), "RC"); // evicts b, the least recently used
        assertThat(mem.size()).isEqualTo(2);
        assertThat(mem.replay(List.of(b))).isEmpty();
        assertThat(mem.replay(List.of(a))).hasValue("RA");
        assertThat(mem.replay(List.of(c))).hasValue("RC");
        assertThat(mem.replay(List.of(a, c))).isEmpty(); // not one block
    }
}
