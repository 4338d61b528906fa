package io.ds4j.engine;

import org.springframework.boot.diagnostics.AbstractFailureAnalyzer;
import org.springframework.boot.diagnostics.FailureAnalysis;

/** Turns a missing/broken native library into a short, actionable startup message. */
public class NativeLibraryFailureAnalyzer extends AbstractFailureAnalyzer<NativeLibraryException> {
    @Override
    protected FailureAnalysis analyze(Throwable rootFailure, NativeLibraryException cause) {
        return new FailureAnalysis(cause.getMessage(),
                "Run ./scripts/setup to build native-lib, or point ds4.engine.library at libds4j.so.", cause);
    }
}
