package io.ds4j.chat;

/**
 * Prompt-format choices that the request does not carry.
 *
 * @param encoder which generation of DeepSeek's {@code encoding_dsv4.py} the checkpoint ships
 *     (chat-format.md 2.4); they differ only in the reasoning-effort prefix. Default PREVIEW, the
 *     encoder of the original V4 checkpoints and the one ds4 implements.
 * @param defaultThinking used when a prompt does not say; default HIGH (thinking on, like ds4 and the
 *     hosted API).
 * @param dropThinking the reference's {@code drop_thinking} (default true): earlier turns lose their
 *     reasoning unless tools are declared (chat-format.md 2.3).
 */
public record ChatTemplateSettings(EncoderGeneration encoder, ThinkingMode defaultThinking, boolean dropThinking) {
    public enum EncoderGeneration {
        /** First V4 checkpoints: HIGH adds nothing, MAX adds "Absolute maximum ...". */
        PREVIEW,
        /** V4-Flash-0731 refresh: HIGH adds "Absolute maximum ...", MAX adds "Beyond maximum ...". */
        V0731
    }

    public ChatTemplateSettings {
        if (encoder == null) throw new IllegalArgumentException("encoder generation is required");
        if (defaultThinking == null) throw new IllegalArgumentException("defaultThinking is required");
    }

    public static ChatTemplateSettings defaults() {
        return new ChatTemplateSettings(EncoderGeneration.PREVIEW, ThinkingMode.HIGH, true);
    }
}
