package io.ds4j.config;

import jakarta.validation.Valid;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotBlank;
import java.nio.file.Path;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * All ds4j settings under the {@code ds4} prefix (see docs/configuration.md).
 *
 * @param engine where the native library is and how the engine runs
 * @param model the GGUF model to serve (none: the server starts in a "no model" state)
 */
@Validated
@ConfigurationProperties("ds4")
public record Ds4jProperties(@Valid @DefaultValue Engine engine, @Valid @DefaultValue Model model) {

    /**
     * @param library path of libds4j.so (default: the build output of scripts/setup)
     * @param threads worker threads of the native pool (0 = all cores)
     */
    public record Engine(
            @NotBlank @DefaultValue("build/native/libds4j.so") String library,
            @Min(0) @DefaultValue("0") int threads) {}

    /**
     * @param path GGUF file; empty means no model is configured
     * @param id the model id reported by /v1/models (default: file name)
     */
    public record Model(@DefaultValue("") String path, @DefaultValue("") String id) {
        public boolean configured() {
            return path != null && !path.isBlank();
        }

        public String effectiveId() {
            if (id != null && !id.isBlank()) return id;
            if (!configured()) return "none";
            String name = Path.of(path).getFileName().toString();
            return name.endsWith(".gguf") ? name.substring(0, name.length() - 5) : name;
        }
    }
}
