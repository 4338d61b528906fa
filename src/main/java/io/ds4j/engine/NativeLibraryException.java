package io.ds4j.engine;

/** The native engine library could not be found or bound. */
public class NativeLibraryException extends RuntimeException {
    public NativeLibraryException(String message, Throwable cause) {
        super(message, cause);
    }
}
