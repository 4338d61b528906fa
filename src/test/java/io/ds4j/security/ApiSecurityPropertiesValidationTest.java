package io.ds4j.security;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.boot.validation.autoconfigure.ValidationAutoConfiguration;
import org.springframework.context.annotation.Configuration;

/** Binding and validation of ds4.security.*, and the key set ApiKeys builds from it. */
class ApiSecurityPropertiesValidationTest {
    @Configuration
    @EnableConfigurationProperties(ApiSecurityProperties.class)
    static class Config {}

    final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withConfiguration(AutoConfigurations.of(ValidationAutoConfiguration.class))
            .withUserConfiguration(Config.class, ApiKeys.class);

    static String failureText(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) sb.append(c.getMessage()).append('\n');
        return sb.toString();
    }

    @Test
    void noKeysByDefaultLeavesTheApiOpenAndManagementUnprotected() {
        runner.run(ctx -> {
            assertThat(ctx).hasNotFailed();
            assertThat(ctx.getBean(ApiKeys.class).required()).isFalse();
            assertThat(ctx.getBean(ApiKeys.class).matches("")).isFalse();
            assertThat(ctx.getBean(ApiSecurityProperties.class).protectManagement()).isFalse();
            assertThat(ctx.getBean(ApiSecurityProperties.class).corsAllowedOrigins()).isEmpty();
        });
    }

    @Test
    void aCommaSeparatedListBindsAsSeveralKeysAndOnlyExactKeysMatch() {
        // the form DS4_SECURITY_API_KEYS=k1,k2 takes in the environment
        runner.withPropertyValues("ds4.security.api-keys=sk-a,sk-b").run(ctx -> {
            ApiKeys keys = ctx.getBean(ApiKeys.class);
            assertThat(keys.required()).isTrue();
            assertThat(keys.matches("sk-a")).isTrue();
            assertThat(keys.matches("sk-b")).isTrue();
            assertThat(keys.matches("sk-")).isFalse();
            assertThat(keys.matches("sk-ab")).isFalse();
            assertThat(keys.matches("SK-A")).isFalse();
            assertThat(keys.matches(null)).isFalse();
        });
    }

    @Test
    void aMissingOrEmptyKeysFileStopsStartupNamingTheProperty(@TempDir Path dir) throws Exception {
        runner.withPropertyValues("ds4.security.api-keys-file=/nonexistent/keys").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.security.api-keys-file").contains("/nonexistent/keys");
        });
        Path empty = Files.writeString(dir.resolve("keys"), "# nothing yet\n\n");
        runner.withPropertyValues("ds4.security.api-keys-file=" + empty).run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.security.api-keys-file").contains("holds no key");
        });
    }

    @Test
    void aBlankKeyStopsStartup() {
        runner.withPropertyValues("ds4.security.api-keys[0]= ").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.security.api-keys");
        });
    }
}
