package io.ds4j.security;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * The configured API keys, held only as SHA-256 digests. A presented key is hashed and compared with
 * every digest by {@link MessageDigest#isEqual} (constant time for equal lengths, and the digests all
 * have one length), without stopping at a match, so the time taken tells nothing about the keys.
 */
@Component
public class ApiKeys {
    private static final Logger log = LoggerFactory.getLogger(ApiKeys.class);
    private final List<byte[]> digests;

    public ApiKeys(ApiSecurityProperties props) {
        List<String> keys = new ArrayList<>(props.apiKeys());
        if (!props.apiKeysFile().isBlank()) keys.addAll(readFile(Path.of(props.apiKeysFile())));
        this.digests = keys.stream().map(ApiKeys::sha256).toList();
        if (digests.isEmpty()) {
            log.warn("no API keys configured (ds4.security.api-keys / api-keys-file): the API is open to anyone who can reach it");
        } else {
            log.info("API keys required: {} key(s) configured; /actuator is {}", digests.size(),
                    props.protectManagement() ? "protected too" : "open");
        }
    }

    static List<String> readFile(Path file) {
        try {
            List<String> out = new ArrayList<>();
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                String k = line.strip();
                if (!k.isEmpty() && !k.startsWith("#")) out.add(k);
            }
            if (out.isEmpty()) {
                throw new IllegalArgumentException("ds4.security.api-keys-file: " + file.toAbsolutePath() + " holds no key");
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("ds4.security.api-keys-file: cannot read " + file.toAbsolutePath(), e);
        }
    }

    /** Whether any key is configured (none: the API is open). */
    public boolean required() {
        return !digests.isEmpty();
    }

    /** Whether the presented key is one of the configured ones, compared in constant time. */
    public boolean matches(String presented) {
        if (presented == null) return false;
        byte[] d = sha256(presented);
        boolean found = false;
        for (byte[] k : digests) found |= MessageDigest.isEqual(k, d);
        return found;
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
