package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.chat.OutputParser;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * tool_choice "auto" over DeepSeek's real vocabulary: free text stays free (no allowed set at all), a
 * {@code <} that does not open a DSML tag costs one check and stays free, and once the model writes
 * {@code <｜DSML｜} (marker token or plain text) random walks through the allowed sets end in a closed
 * block whose calls the real output parser returns with schema-valid arguments.
 */
class TriggeredToolCallTest {
    static final Tokenizer TOK = ToolCallConstraintTest.TOK;
    static final JsonVocabulary VOCAB = ToolCallConstraintTest.VOCAB;
    static final int DSML = TOK.requireSpecial(ChatRenderer.DSML);

    private static boolean allowed(byte[] bits, int id) {
        return bits == null || (bits[id >> 3] >> (id & 7) & 1) != 0;
    }

    /** Free text, then the opening as given, then a random walk inside the block. */
    static ToolCallConstraintTest.Walk walk(int maxInvokes, long seed, int[] freeThenOpen) {
        Random rnd = new Random(seed);
        TriggeredToolCall c = new TriggeredToolCall(VOCAB, ToolCallRecognizer.of(ToolCallFixtures.TOOLS, maxInvokes), false);
        OutputParser parser = new OutputParser(TOK, ThinkingMode.OFF, List.of(), true);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int id : freeThenOpen) {
            assertThat(allowed(c.allowedNext(), id)).as("free token %d after '%s'", id, text).isTrue();
            c.accept(id);
            parser.push(id);
            text.writeBytes(TOK.tokenBytes(id));
        }
        assertThat(c.opened()).isTrue();
        for (int step = 0; step < 600; step++) {
            byte[] bits = c.allowedNext();
            assertThat(bits).isNotNull();
            List<Integer> ids = new ArrayList<>();
            for (int id = 0; id < TOK.vocabSize(); id++) if (allowed(bits, id)) ids.add(id);
            assertThat(ids).as("dead end after %s", text).isNotEmpty();
            if (c.complete()) {
                assertThat(ids).containsExactly(TOK.eosId());
                assertThat(parser.done()).isTrue();
                return new ToolCallConstraintTest.Walk(text.toString(StandardCharsets.UTF_8), parser.toolCalls(),
                        parser.finishReason());
            }
            int pick = ToolCallConstraintTest.pick(ids, rnd);
            c.accept(pick);
            parser.push(pick);
            text.writeBytes(TOK.tokenBytes(pick));
        }
        return null;
    }

    private static int[] concat(int[] a, int... b) {
        int[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    @Test
    void freeTextIsUnconstrainedUntilTheModelOpensATag() {
        TriggeredToolCall c = new TriggeredToolCall(VOCAB, ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4), false);
        for (int id : TOK.encode("Let me check the weather.")) {
            assertThat(c.allowedNext()).as("no allowed set for plain text").isNull();
            c.accept(id);
        }
        // "<" is a partial opening: everything that does not complete it stays allowed ...
        c.accept(TOK.encodeOne("<"));
        byte[] bits = c.allowedNext();
        assertThat(bits).isNotNull();
        assertThat(allowed(bits, TOK.encodeOne("b"))).isTrue();
        assertThat(allowed(bits, TOK.eosId())).isTrue();
        assertThat(allowed(bits, DSML)).as("the marker token opens the block").isTrue();
        // ... and an HTML-ish tag that is not DSML returns to free text
        for (int id : TOK.encode("b>")) c.accept(id);
        assertThat(c.allowedNext()).isNull();
        assertThat(c.opened()).isFalse();
        // the marker after "<": from here only the block's grammar
        c.accept(TOK.encodeOne("<"));
        c.accept(DSML);
        assertThat(c.opened()).isTrue();
        bits = c.allowedNext();
        assertThat(allowed(bits, TOK.encode("tool")[0])).isTrue();
        assertThat(allowed(bits, TOK.encodeOne("b"))).isFalse();
        assertThat(allowed(bits, TOK.eosId())).as("no half call").isFalse();
    }

    @Test
    void aCallOpenedInFreeTextAlwaysClosesWithSchemaValidArguments() {
        int[] lead = concat(TOK.encode("Sure, checking now.\n\n"), TOK.encodeOne("<"), DSML);
        int finished = 0;
        for (long seed = 1; seed <= 20; seed++) {
            var w = walk(4, seed, lead);
            if (w == null) continue;
            finished++;
            assertThat(w.finish()).isEqualTo("tool_calls");
            ToolCallConstraintTest.assertValid(w.calls(), w.text());
        }
        assertThat(finished).isGreaterThanOrEqualTo(17);
    }

    @Test
    void theOpeningWrittenAsPlainTextTriggersTooAndParallelOffMeansOneInvoke() {
        // "<｜DSML｜" spelled with ordinary tokens (the parser accepts that too)
        int[] plain = TOK.encode("<" + ChatRenderer.DSML, false);
        assertThat(plain).doesNotContain(DSML);
        int finished = 0;
        for (long seed = 1; seed <= 10; seed++) {
            var w = walk(1, seed, plain);
            if (w == null) continue;
            finished++;
            assertThat(w.calls()).hasSize(1);
            ToolCallConstraintTest.assertValid(w.calls(), w.text());
        }
        assertThat(finished).isGreaterThanOrEqualTo(8);
    }

    @Test
    void reasoningIsFreeEvenWhenItMentionsTheMarker() {
        TriggeredToolCall c = new TriggeredToolCall(VOCAB, ToolCallRecognizer.of(ToolCallFixtures.TOOLS, 4), true);
        c.accept(TOK.encodeOne("<"));
        c.accept(DSML);
        assertThat(c.opened()).isFalse();
        assertThat(c.allowedNext()).isNull();
    }
}
