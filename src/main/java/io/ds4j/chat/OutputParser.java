package io.ds4j.chat;

import io.ds4j.chat.OutputEvent.ContentDelta;
import io.ds4j.chat.OutputEvent.Finished;
import io.ds4j.chat.OutputEvent.ReasoningDelta;
import io.ds4j.chat.OutputEvent.ToolCallArgumentsDelta;
import io.ds4j.chat.OutputEvent.ToolCallStart;
import io.ds4j.tokenizer.StreamDecoder;
import io.ds4j.tokenizer.Tokenizer;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Incremental parser of generated token ids into OpenAI-style deltas (chat-format.md section 3).
 *
 * <p>It works on decoded text (so it does not care whether {@code </think>} or {@code ｜DSML｜} came as
 * one control token or as several text tokens) and only emits what can no longer change meaning:
 * <ul>
 *   <li>thinking on: text up to the first {@code </think>} is reasoning (an optional leading
 *       {@code <think>} is skipped); a partial {@code </think>} at the end is held back;</li>
 *   <li>then content, until EOS, a stop string (content before it is kept, the stop string and all
 *       after it are dropped; a suffix that could still become a stop string is held back), or, with
 *       tools enabled, a DSML block {@code <｜DSML｜tool_calls>} (trailing whitespace and a partial
 *       opening tag are held back, so no part of the tag is ever emitted as content);</li>
 *   <li>DSML invokes become {@link ToolCallStart} and {@link ToolCallArgumentsDelta} events whose
 *       fragments concatenate to a JSON object: {@code string="true"} values are JSON strings (streamed
 *       as they arrive), other values are copied verbatim when they are valid JSON and quoted as a
 *       string otherwise. After {@code </｜DSML｜tool_calls>} generation is {@link #done()} with finish
 *       reason "tool_calls", and the exact block text is recorded in the {@link ToolCallMemory}.</li>
 * </ul>
 * Stop strings apply to content only, not to reasoning or tool-call arguments. Control tokens other than
 * EOS and the three structural ones ({@code <think>}, {@code </think>}, {@code ｜DSML｜}) are not text
 * and are dropped. A malformed DSML block before any call started is returned as content (like ds4);
 * one that breaks after a call started invents nothing: with every invoke closed it finishes with
 * "tool_calls", with a call still open (its arguments as far as generated) with "length".
 * Not thread-safe: one parser per generation.
 */
public final class OutputParser {
    // The format's markers, from the renderer (one spelling for writing and reading).
    static final String THINK = ChatRenderer.THINK;
    static final String END_THINK = ChatRenderer.END_THINK;
    static final String TC_OPEN = "<" + ChatRenderer.DSML + "tool_calls>";
    static final String TC_CLOSE = "</" + ChatRenderer.DSML + "tool_calls>";
    static final String INVOKE_OPEN = "<" + ChatRenderer.DSML + "invoke";
    static final String INVOKE_CLOSE = "</" + ChatRenderer.DSML + "invoke>";
    static final String PARAM_OPEN = "<" + ChatRenderer.DSML + "parameter";
    static final String PARAM_CLOSE = "</" + ChatRenderer.DSML + "parameter>";
    private static final Pattern INVOKE_HEADER = Pattern.compile("<｜DSML｜invoke\\s+name=\"([^\"]*)\"\\s*>");
    private static final Pattern PARAM_HEADER =
            Pattern.compile("<｜DSML｜parameter\\s+name=\"([^\"]*)\"(?:\\s+string=\"(true|false)\")?\\s*>");
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final char[] ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".toCharArray();

    private enum State { THINK_START, REASONING, CONTENT, TOOLS, DONE }

    private enum Dsml { BETWEEN, INVOKE, VALUE }

    private final Tokenizer tokenizer;
    private final boolean thinking;
    private final List<String> stops;
    private final boolean toolsEnabled;
    private final ToolCallMemory memory;
    private final StreamDecoder decoder;
    private final int[] passThrough;

    private State state;
    private final StringBuilder pending = new StringBuilder();
    private final StringBuilder reasoning = new StringBuilder();
    private final StringBuilder content = new StringBuilder();
    private boolean dsmlDisabled;
    private String finishReason;
    private String matchedStop;
    private boolean finished;

    // DSML block state (positions index into pending, which holds the whole raw block)
    private Dsml dsml;
    private int pos;
    private int valueStart;
    private int valueStreamed;
    /** No closing tag starts before this position (keeps long values linear, not quadratic). */
    private int valueScan;
    private boolean valueIsString;
    private boolean argsOpened;
    private final List<Call> calls = new ArrayList<>();

    private static final class Call {
        final String id;
        final String name;
        final StringBuilder args = new StringBuilder();

        Call(String id, String name) {
            this.id = id;
            this.name = name;
        }
    }

    public OutputParser(Tokenizer tokenizer, ThinkingMode thinking, List<String> stopStrings, boolean toolsEnabled) {
        this(tokenizer, thinking, stopStrings, toolsEnabled, null);
    }

    /** With the shared {@link ToolCallMemory} (may be null) that records generated DSML for exact replay. */
    public OutputParser(Tokenizer tokenizer, ThinkingMode thinking, List<String> stopStrings, boolean toolsEnabled,
                        ToolCallMemory memory) {
        this.tokenizer = tokenizer;
        this.thinking = thinking != null && thinking.thinking();
        List<String> s = new ArrayList<>();
        if (stopStrings != null) for (String x : stopStrings) if (x != null && !x.isEmpty()) s.add(x);
        this.stops = List.copyOf(s);
        this.toolsEnabled = toolsEnabled;
        this.memory = memory;
        this.decoder = tokenizer.streamDecoder();
        this.passThrough = new int[] {
            tokenizer.specialTokenId(THINK).orElse(-1),
            tokenizer.specialTokenId(END_THINK).orElse(-1),
            tokenizer.specialTokenId("｜DSML｜").orElse(-1)};
        this.state = this.thinking ? State.THINK_START : State.CONTENT;
    }

    /** Events produced by this token (possibly none: text held back). Tokens after {@link #done()} are ignored. */
    public List<OutputEvent> push(int tokenId) {
        List<OutputEvent> out = new ArrayList<>(2);
        if (state == State.DONE || finished) return out;
        if (tokenId == tokenizer.eosId()) {
            feed(decoder.flush(), out);
            if (state != State.DONE) endOfText(false, out);
            return out;
        }
        if (tokenizer.isControl(tokenId) && !isPassThrough(tokenId)) return out;
        feed(decoder.push(tokenId), out);
        return out;
    }

    /** Feeds generated text directly (what {@link #push} does after detokenizing). */
    public List<OutputEvent> pushText(String text) {
        List<OutputEvent> out = new ArrayList<>(2);
        if (state != State.DONE && !finished) feed(text, out);
        return out;
    }

    /**
     * Flushes what is held back and ends with a {@link Finished} event: the reason recorded when
     * generation became {@link #done()}, else "length" if {@code lengthLimit}, else "stop". Later calls
     * return an empty list.
     */
    public List<OutputEvent> finish(boolean lengthLimit) {
        List<OutputEvent> out = new ArrayList<>();
        if (finished) return out;
        if (state != State.DONE) {
            feed(decoder.flush(), out);
            if (state != State.DONE) endOfText(lengthLimit, out);
        }
        finished = true;
        out.add(new Finished(finishReason));
        return out;
    }

    /** EOS, a stop string or the end of the tool calls was seen: stop generating. */
    public boolean done() {
        return state == State.DONE;
    }

    /** The finish reason once done (null before). */
    public String finishReason() {
        return finishReason;
    }

    /** The stop string that ended the content (null when none did). */
    public String matchedStop() {
        return matchedStop;
    }

    /** The assistant message parsed so far (reasoning null when thinking is off; tool calls null if none). */
    public ChatMessage message() {
        List<ToolCall> tc = toolCalls();
        return new ChatMessage("assistant", content.toString(), thinking ? reasoning.toString() : null,
                tc.isEmpty() ? null : tc, null, null);
    }

    public List<ToolCall> toolCalls() {
        List<ToolCall> out = new ArrayList<>();
        for (Call c : calls) out.add(new ToolCall(c.id, c.name, c.args.toString()));
        return out;
    }

    private boolean isPassThrough(int id) {
        for (int p : passThrough) if (p == id) return true;
        return false;
    }

    // ------------------------------------------------------------------ text state machine

    private void feed(String text, List<OutputEvent> out) {
        if (!text.isEmpty()) pending.append(text);
        boolean progress = true;
        while (progress && state != State.DONE) {
            progress = switch (state) {
                case THINK_START -> thinkStart();
                case REASONING -> reasoningStep(out);
                case CONTENT -> contentStep(out);
                case TOOLS -> toolsStep(out);
                case DONE -> false;
            };
        }
    }

    private boolean thinkStart() {
        int n = Math.min(pending.length(), THINK.length());
        if (!pending.substring(0, n).equals(THINK.substring(0, n))) {
            state = State.REASONING;
            return true;
        }
        if (pending.length() < THINK.length()) return false; // could still be "<think>"
        pending.delete(0, THINK.length());
        state = State.REASONING;
        return true;
    }

    private boolean reasoningStep(List<OutputEvent> out) {
        int at = pending.indexOf(END_THINK);
        if (at >= 0) {
            emitReasoning(pending.substring(0, at), out);
            pending.delete(0, at + END_THINK.length());
            state = State.CONTENT;
            return true;
        }
        int keep = partialSuffix(pending, END_THINK);
        emitReasoning(pending.substring(0, pending.length() - keep), out);
        pending.delete(0, pending.length() - keep);
        return false;
    }

    private boolean contentStep(List<OutputEvent> out) {
        int stopAt = -1;
        String stopped = null;
        for (String s : stops) {
            int k = pending.indexOf(s);
            if (k >= 0 && (stopAt < 0 || k < stopAt)) {
                stopAt = k;
                stopped = s;
            }
        }
        int tagAt = toolsEnabled && !dsmlDisabled ? pending.indexOf(TC_OPEN) : -1;
        if (stopAt >= 0 && (tagAt < 0 || stopAt < tagAt)) {
            matchedStop = stopped;
            emitContent(pending.substring(0, stopAt), out);
            pending.setLength(0);
            end("stop");
            return false;
        }
        if (tagAt >= 0) {
            int ws = tagAt;
            while (ws > 0 && Character.isWhitespace(pending.charAt(ws - 1))) ws--;
            emitContent(pending.substring(0, ws), out);
            pending.delete(0, ws);
            state = State.TOOLS;
            dsml = Dsml.BETWEEN;
            pos = tagAt - ws + TC_OPEN.length();
            return true;
        }
        int keep = 0;
        for (String s : stops) keep = Math.max(keep, partialSuffix(pending, s));
        if (toolsEnabled && !dsmlDisabled) {
            int k = partialSuffix(pending, TC_OPEN);
            int ws = pending.length() - k;
            while (ws > 0 && Character.isWhitespace(pending.charAt(ws - 1))) ws--;
            keep = Math.max(keep, pending.length() - ws);
        }
        emitContent(pending.substring(0, pending.length() - keep), out);
        pending.delete(0, pending.length() - keep);
        return false;
    }

    /** Length of the longest proper prefix of {@code tag} that {@code sb} ends with. */
    static int partialSuffix(CharSequence sb, String tag) {
        int n = sb.length();
        for (int k = Math.min(n, tag.length() - 1); k > 0; k--) {
            boolean match = true;
            for (int i = 0; i < k; i++) {
                if (sb.charAt(n - k + i) != tag.charAt(i)) {
                    match = false;
                    break;
                }
            }
            if (match) return k;
        }
        return 0;
    }

    // ------------------------------------------------------------------ DSML

    private boolean toolsStep(List<OutputEvent> out) {
        switch (dsml) {
            case BETWEEN -> {
                skipWhitespace();
                if (pos >= pending.length()) return false;
                if (startsAt(INVOKE_OPEN)) {
                    int gt = pending.indexOf(">", pos);
                    if (gt < 0) return false;
                    Matcher m = INVOKE_HEADER.matcher(pending).region(pos, gt + 1);
                    if (!m.matches()) return malformed(out);
                    Call c = new Call(newId(), m.group(1));
                    calls.add(c);
                    out.add(new ToolCallStart(calls.size() - 1, c.id, c.name));
                    argsOpened = false;
                    pos = gt + 1;
                    dsml = Dsml.INVOKE;
                    return true;
                }
                if (startsAt(TC_CLOSE)) {
                    pos += TC_CLOSE.length();
                    if (memory != null && !calls.isEmpty()) memory.remember(toolCalls(), pending.substring(0, pos));
                    end("tool_calls");
                    return false;
                }
                if (couldStillBe(INVOKE_OPEN) || couldStillBe(TC_CLOSE)) return false;
                return malformed(out);
            }
            case INVOKE -> {
                skipWhitespace();
                if (pos >= pending.length()) return false;
                if (startsAt(PARAM_OPEN)) {
                    int gt = pending.indexOf(">", pos);
                    if (gt < 0) return false;
                    Matcher m = PARAM_HEADER.matcher(pending).region(pos, gt + 1);
                    if (!m.matches()) return malformed(out);
                    valueIsString = !"false".equals(m.group(2));
                    String frag = (argsOpened ? ", " : "{") + Json.quote(m.group(1)) + ": " + (valueIsString ? "\"" : "");
                    argsOpened = true;
                    args(frag, out);
                    pos = gt + 1;
                    valueStart = valueStreamed = valueScan = pos;
                    dsml = Dsml.VALUE;
                    return true;
                }
                if (startsAt(INVOKE_CLOSE)) {
                    args(argsOpened ? "}" : "{}", out);
                    pos += INVOKE_CLOSE.length();
                    dsml = Dsml.BETWEEN;
                    return true;
                }
                if (couldStillBe(PARAM_OPEN) || couldStillBe(INVOKE_CLOSE)) return false;
                return malformed(out);
            }
            case VALUE -> {
                int close = pending.indexOf(PARAM_CLOSE, valueScan);
                if (close < 0) {
                    valueScan = Math.max(valueScan, pending.length() - PARAM_CLOSE.length() + 1);
                    if (valueIsString) {
                        int safe = pending.length() - partialSuffix(pending, PARAM_CLOSE);
                        if (safe > valueStreamed) {
                            String q = Json.quote(pending.substring(valueStreamed, safe));
                            args(q.substring(1, q.length() - 1), out);
                            valueStreamed = safe;
                        }
                    }
                    return false;
                }
                closeValue(close, out);
                pos = close + PARAM_CLOSE.length();
                dsml = Dsml.INVOKE;
                return true;
            }
        }
        return false;
    }

    /** Writes the rest of the current value (up to {@code end}) and closes it. */
    private void closeValue(int end, List<OutputEvent> out) {
        if (valueIsString) {
            String q = Json.quote(pending.substring(valueStreamed, end));
            args(q.substring(1, q.length() - 1) + "\"", out);
        } else {
            String v = pending.substring(valueStart, end);
            args(Json.isValid(v) ? v : Json.quote(v), out);
        }
        valueStreamed = end;
    }

    private void args(String fragment, List<OutputEvent> out) {
        if (fragment.isEmpty()) return;
        calls.get(calls.size() - 1).args.append(fragment);
        out.add(new ToolCallArgumentsDelta(calls.size() - 1, fragment));
    }

    private boolean malformed(List<OutputEvent> out) {
        if (calls.isEmpty()) {
            // nothing was announced as a tool call: the block is ordinary content
            dsmlDisabled = true;
            state = State.CONTENT;
            return true;
        }
        brokenBlock(false, pending.substring(0, Math.min(pos, pending.length())));
        return false;
    }

    /**
     * The block ended before its closing tag (malformed, end of text or the length limit). Nothing is
     * invented: a call whose invoke was closed is complete and the finish is "tool_calls" (unless the
     * length limit was hit); a call still open keeps its arguments as far as they were generated (not
     * closed, possibly not valid JSON) and the finish is "length", so no client mistakes it for a call.
     */
    private void brokenBlock(boolean lengthLimit, String text) {
        boolean open = dsml != Dsml.BETWEEN;
        if (memory != null && !open) memory.remember(toolCalls(), text);
        end(open || lengthLimit ? "length" : "tool_calls");
    }

    private void skipWhitespace() {
        while (pos < pending.length() && Character.isWhitespace(pending.charAt(pos))) pos++;
    }

    private boolean startsAt(String s) {
        return pending.length() - pos >= s.length() && pending.indexOf(s, pos) == pos;
    }

    /** The text from pos on is a proper prefix of s (more input may complete it). */
    private boolean couldStillBe(String s) {
        int n = pending.length() - pos;
        if (n >= s.length()) return false;
        for (int i = 0; i < n; i++) if (pending.charAt(pos + i) != s.charAt(i)) return false;
        return true;
    }

    // ------------------------------------------------------------------ ends

    /** No more text will come (EOS, or finish()): flush what was held back. */
    private void endOfText(boolean lengthLimit, List<OutputEvent> out) {
        switch (state) {
            case THINK_START, REASONING -> {
                emitReasoning(pending.toString(), out);
                pending.setLength(0);
            }
            case CONTENT -> {
                emitContent(pending.toString(), out);
                pending.setLength(0);
            }
            case TOOLS -> {
                if (calls.isEmpty()) {
                    emitContent(pending.toString(), out);
                    pending.setLength(0);
                } else {
                    brokenBlock(lengthLimit, pending.toString());
                    return;
                }
            }
            case DONE -> {
                return;
            }
        }
        end(lengthLimit ? "length" : "stop");
    }

    private void end(String reason) {
        state = State.DONE;
        finishReason = reason;
    }

    private void emitReasoning(String s, List<OutputEvent> out) {
        if (s.isEmpty()) return;
        reasoning.append(s);
        out.add(new ReasoningDelta(s));
    }

    private void emitContent(String s, List<OutputEvent> out) {
        if (s.isEmpty()) return;
        content.append(s);
        out.add(new ContentDelta(s));
    }

    private static String newId() {
        char[] c = new char[24];
        for (int i = 0; i < c.length; i++) c[i] = ID_CHARS[RANDOM.nextInt(ID_CHARS.length)];
        return "call_" + new String(c);
    }
}
