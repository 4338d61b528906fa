package io.ds4j.engine;

/** A native engine call failed; carries the engine's error code and message. */
public class EngineException extends RuntimeException {
    private final int code;

    public EngineException(int code, String message) {
        super(message);
        this.code = code;
    }

    public int code() {
        return code;
    }
}
