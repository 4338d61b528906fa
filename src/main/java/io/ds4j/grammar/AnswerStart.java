package io.ds4j.grammar;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Where the answer starts in the generated tokens: at once, or (thinking on) after the end-of-thinking
 * marker, which the model may write as its control token or as ordinary text tokens (the output parser
 * accepts both). Constraints apply to the answer only.
 */
final class AnswerStart {
    private static final byte[] MARKER = io.ds4j.chat.ChatRenderer.END_THINK.getBytes(StandardCharsets.UTF_8);

    private final int markerToken;
    private final byte[] tail = new byte[MARKER.length];
    private int tailLen;
    private boolean started;

    /** @param markerToken id of the end-of-thinking control token (-1 if none) */
    AnswerStart(int markerToken, boolean afterThinking) {
        this.markerToken = markerToken;
        this.started = !afterThinking;
    }

    boolean started() {
        return started;
    }

    /** A reasoning token was generated ({@code bytes} its text, or null for other control tokens). */
    void accept(int token, byte[] bytes) {
        if (started) return;
        if (token == markerToken) {
            started = true;
            return;
        }
        if (bytes == null) return;
        for (byte x : bytes) {
            if (tailLen == tail.length) {
                System.arraycopy(tail, 1, tail, 0, tail.length - 1);
                tailLen--;
            }
            tail[tailLen++] = x;
            if (tailLen == tail.length && Arrays.equals(tail, MARKER)) {
                started = true;
                return;
            }
        }
    }
}
