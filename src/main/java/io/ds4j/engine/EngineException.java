package io.ds4j.engine;

/** A native engine call failed; carries the engine's DS4J_ERR_* code and message. */
public class EngineException extends RuntimeException {
    public static final int INVALID_ARGUMENT = -1;
    public static final int IO = -2;
    public static final int FORMAT = -3;
    public static final int NO_MEMORY = -4;
    public static final int CONTEXT_FULL = -5;
    public static final int CANCELLED = -6;
    public static final int COMM = -7;
    public static final int STATE = -8;

    private final int code;

    public EngineException(int code, String message) {
        super(message);
        this.code = code;
    }

    public int code() {
        return code;
    }

    /** The typed exception for a native error code. */
    public static EngineException of(int code, String message) {
        return switch (code) {
            case CONTEXT_FULL -> new ContextOverflowException(message);
            case CANCELLED -> new CancelledException(message);
            case COMM -> new CommunicationException(message);
            default -> new EngineException(code, message);
        };
    }

    /** Symbolic name of a DS4J_ERR_* code. */
    public static String codeName(int code) {
        return switch (code) {
            case INVALID_ARGUMENT -> "invalid_argument";
            case IO -> "io";
            case FORMAT -> "format";
            case NO_MEMORY -> "no_memory";
            case CONTEXT_FULL -> "context_full";
            case CANCELLED -> "cancelled";
            case COMM -> "communication";
            case STATE -> "state";
            default -> "error_" + code;
        };
    }
}
