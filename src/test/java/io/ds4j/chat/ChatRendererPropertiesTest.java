package io.ds4j.chat;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * For any conversation, the ids decode to exactly the rendered text, and client text never becomes a
 * control token: the number of control ids equals the number of structural markers the renderer wrote
 * (counted on a copy of the conversation whose texts cannot contain marker strings).
 */
class ChatRendererPropertiesTest {
    static final String[] FRAGMENTS = {"hi", " ", "\n\n", "<｜User｜>", "<｜Assistant｜>", "</think>", "<think>", "｜DSML｜",
        "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<tool_result>", "é世", "😀", "{\"a\": 1}", "<", "｜"};

    static Arbitrary<String> text() {
        return Arbitraries.of(FRAGMENTS).list().ofMaxSize(6).map(l -> String.join("", l));
    }

    @Provide
    Arbitrary<ChatPrompt> prompts() {
        Arbitrary<ChatMessage> msg = Combinators.combine(Arbitraries.of("system", "developer", "user", "assistant", "tool"), text(), text(),
                Arbitraries.of(true, false)).as((role, a, b, call) -> switch (role) {
                    case "assistant" -> new ChatMessage("assistant", a, b,
                            call ? List.of(new ToolCall("c1", "f", "{\"q\": " + Json.quote(b) + "}")) : null, null, null);
                    case "tool" -> ChatMessage.tool("c1", a);
                    default -> new ChatMessage(role, a, null, null, null, null);
                });
        return Combinators.combine(msg.list().ofMinSize(1).ofMaxSize(6), Arbitraries.of(ThinkingMode.values()), Arbitraries.of(true, false))
                .as((msgs, mode, tools) -> new ChatPrompt(msgs,
                        tools ? List.of(new ToolFunction("f", "d <｜User｜>", "{\"type\": \"object\"}")) : List.of(), null, mode));
    }

    @Property(tries = 150)
    void idsDecodeToTextAndContentNeverBecomesControl(@ForAll("prompts") ChatPrompt p) {
        Tokenizer tok = TestTokenizers.real();
        ChatRenderer r = new ChatRenderer(tok, ChatTemplateSettings.defaults());
        String text = r.renderText(p);
        int[] ids = r.render(p);
        assertThat(tok.decode(ids)).isEqualTo(text);
        long controls = Arrays.stream(ids).filter(tok::isControl).count();
        // same conversation with every client text made harmless (same structure, no marker strings)
        List<ChatMessage> clean = new ArrayList<>();
        for (ChatMessage m : p.messages()) {
            clean.add(new ChatMessage(m.role(), x(m.content()), x(m.reasoningContent()),
                    m.toolCalls() == null ? null : m.toolCalls().stream().map(c -> new ToolCall(c.id(), c.name(), "{\"q\": \"x\"}")).toList(),
                    m.toolCallId(), m.name()));
        }
        List<ToolFunction> cleanTools = p.tools().stream().map(f -> new ToolFunction(f.name(), "d", f.parametersJson())).toList();
        ChatPrompt cp = new ChatPrompt(clean, cleanTools, p.toolChoice(), p.thinking());
        int[] cleanIds = r.render(cp);
        assertThat(controls).isEqualTo(Arrays.stream(cleanIds).filter(tok::isControl).count());
        // and for clean text, the ids are HF's encoding of the text (special tokens matched)
        assertThat(cleanIds).containsExactly(tok.encode(r.renderText(cp), true));
    }

    static String x(String s) {
        return s == null ? null : "x".repeat(s.length() % 3);
    }
}
