package io.ds4j.engine;

/** DS4J_ERR_CONTEXT_FULL: the request does not fit the session's context window. */
public class ContextOverflowException extends EngineException {
    public ContextOverflowException(String message) {
        super(CONTEXT_FULL, message);
    }
}
