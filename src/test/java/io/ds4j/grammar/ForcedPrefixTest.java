package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Forcing a tool call: random walks over DeepSeek's real vocabulary through the allowed sets always open a
 * DSML invoke of an allowed tool (the DSML marker allowed as its control token or as text), then run free;
 * with thinking, nothing is forced before the end of the reasoning.
 */
class ForcedPrefixTest {
    static final Tokenizer TOK = TestTokenizers.real();
    static final JsonVocabulary VOCAB = new JsonVocabulary(TOK, TOK.vocabSize(), ChatRenderer.END_THINK,
            java.util.Set.of(ChatRenderer.DSML));

    static List<Integer> ids(byte[] bits) {
        List<Integer> out = new ArrayList<>();
        for (int id = 0; id < TOK.vocabSize(); id++) if ((bits[id >> 3] >> (id & 7) & 1) != 0) out.add(id);
        return out;
    }

    @Test
    void walksOpenACallOfAnAllowedToolThenRunFree() {
        List<String> names = List.of("get_weather", "get_time", "f");
        List<String> alts = ChatRenderer.toolCallOpenings(names);
        int dsmlToken = TOK.specialTokenId(ChatRenderer.DSML).orElseThrow();
        boolean sawControl = false;
        for (long seed = 1; seed <= 10; seed++) {
            Random r = new Random(seed);
            ForcedPrefix c = new ForcedPrefix(VOCAB, alts, false);
            ByteArrayOutputStream text = new ByteArrayOutputStream();
            int steps = 0;
            while (!c.done()) {
                List<Integer> allowed = ids(c.allowedNext());
                assertThat(allowed).as("dead end after '%s'", text).isNotEmpty();
                sawControl |= allowed.contains(dsmlToken);
                int pick = allowed.get(r.nextInt(allowed.size()));
                c.accept(pick);
                text.writeBytes(VOCAB.bytes(pick));
                assertThat(++steps).isLessThan(200);
            }
            String s = text.toString(StandardCharsets.UTF_8);
            assertThat(alts.stream().anyMatch(s::startsWith)).as(s).isTrue();
            assertThat(c.allowedNext()).as("free after the prefix").isNull();
        }
        assertThat(sawControl).as("the DSML control token itself is allowed").isTrue();
        // the named function alone: only its invoke
        ForcedPrefix one = new ForcedPrefix(VOCAB, ChatRenderer.toolCallOpenings(List.of("get_time")), false);
        for (int t : TOK.encode("<" + ChatRenderer.DSML + "tool_calls>\n<" + ChatRenderer.DSML + "invoke name=\"get_", true)) one.accept(t);
        List<Integer> next = ids(one.allowedNext());
        assertThat(next).contains(TOK.encodeOne("time"));
        assertThat(next).doesNotContain(TOK.encodeOne("weather"));
        assertThatThrownBy(() -> one.accept(TOK.encodeOne("weather"))).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void withThinkingNothingIsForcedBeforeTheReasoningEnds() {
        ForcedPrefix c = new ForcedPrefix(VOCAB, ChatRenderer.toolCallOpenings(List.of("f")), true);
        for (int t : TOK.encode("I should call f.", false)) {
            assertThat(c.allowedNext()).isNull();
            c.accept(t);
        }
        c.accept(TOK.specialTokenId(ChatRenderer.END_THINK).orElseThrow());
        List<Integer> allowed = ids(c.allowedNext());
        assertThat(allowed).contains(TOK.encodeOne("<"));
        assertThat(allowed).doesNotContain(TOK.encodeOne("Sure"), TOK.eosId());
    }
}
