package io.ds4j.security;

import jakarta.validation.constraints.NotNull;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * Who may call the server ({@code ds4.security.*}, see docs/configuration.md).
 *
 * @param apiKeys accepted API keys (environment: {@code DS4_SECURITY_API_KEYS=k1,k2}); none at all
 *     (here and in the file) leaves the server open
 * @param apiKeysFile a file of further keys, one a line ({@code #} comments and blank lines ignored)
 * @param protectManagement whether /actuator/** needs a key too (default: open, for probes and scrapers)
 * @param corsAllowedOrigins origins browsers may call the API from (empty: no CORS headers, cross-origin
 *     browser calls fail)
 */
@Validated
@ConfigurationProperties("ds4.security")
public record ApiSecurityProperties(
        @NotNull @DefaultValue List<String> apiKeys,
        @DefaultValue("") String apiKeysFile,
        @DefaultValue("false") boolean protectManagement,
        @NotNull @DefaultValue List<String> corsAllowedOrigins) {
    public ApiSecurityProperties {
        apiKeys = apiKeys == null ? List.of() : List.copyOf(apiKeys);
        corsAllowedOrigins = corsAllowedOrigins == null ? List.of() : List.copyOf(corsAllowedOrigins);
        if (apiKeysFile == null) apiKeysFile = "";
        for (String k : apiKeys) {
            if (k == null || k.isBlank() || !k.equals(k.strip())) {
                throw new IllegalArgumentException("ds4.security.api-keys: a key must be non-blank, without surrounding spaces");
            }
        }
        if (!apiKeysFile.isBlank() && !Files.isRegularFile(Path.of(apiKeysFile))) {
            throw new IllegalArgumentException("ds4.security.api-keys-file: no such file: " + Path.of(apiKeysFile).toAbsolutePath());
        }
    }
}
