package io.ds4j.chat;

/**
 * OFF: chat mode (prompt ends {@code <｜Assistant｜></think>}). HIGH / MAX: thinking mode (ends
 * {@code <think>}) with the reasoning-effort prefix of the configured encoder generation
 * ({@link ChatTemplateSettings.EncoderGeneration}).
 */
public enum ThinkingMode {
    OFF, HIGH, MAX;

    public boolean thinking() {
        return this != OFF;
    }
}
