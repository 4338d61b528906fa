package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Ds4jNativeTest {
    static Path libraryPath() {
        return Path.of(System.getProperty("ds4j.native.dir", "build/native"), "libds4j.so");
    }

    @Test
    void loadsTheRealLibraryAndReportsItsVersion() {
        Ds4jNative lib = Ds4jNative.load(libraryPath());
        assertThat(lib.version()).startsWith("ds4j ");
        assertThat(lib.apiVersion()).isEqualTo(1);
    }

    @Test
    void missingLibraryFailsWithAClearMessage() {
        assertThatThrownBy(() -> Ds4jNative.load(Path.of("/nonexistent/libds4j.so")))
                .isInstanceOf(NativeLibraryException.class)
                .hasMessageContaining("not found")
                .hasMessageContaining("/nonexistent/libds4j.so");
    }

    @Test
    void openingAMissingModelReportsTheNativeError() {
        Ds4jNative lib = Ds4jNative.load(libraryPath());
        assertThatThrownBy(() -> lib.engineOpen("/nonexistent/model.gguf", ""))
                .isInstanceOf(EngineException.class)
                .hasMessageContaining("/nonexistent/model.gguf")
                .satisfies(e -> assertThat(((EngineException) e).code()).isEqualTo(EngineException.IO));
    }

    @Test
    void openingANonGgufFileReportsBadMagic(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("x.gguf");
        Files.writeString(f, "definitely not gguf");
        Ds4jNative lib = Ds4jNative.load(libraryPath());
        assertThatThrownBy(() -> lib.engineOpen(f.toString(), ""))
                .isInstanceOf(EngineException.class)
                .hasMessageContaining("GGUF")
                .satisfies(e -> assertThat(((EngineException) e).code()).isEqualTo(EngineException.FORMAT));
    }
}
