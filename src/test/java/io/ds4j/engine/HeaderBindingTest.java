package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Parses native-lib/include/ds4j.h and checks that Ds4jNative binds every
 * DS4J_API function with the same return and argument kinds: adding a
 * function to the header without binding it fails here.
 */
class HeaderBindingTest {
    static final Path HEADER = Path.of("native-lib/include/ds4j.h");
    private static final Pattern DECL = Pattern.compile(
            "DS4J_API\\s+([^;(]*?)\\b(ds4j_\\w+)\\s*\\(([^)]*)\\)\\s*;", Pattern.DOTALL);

    /** name -> "ret(arg,arg...)" in layout kinds: A (pointer), I (int32), J (int64), D (double), F (float), V (void). */
    static Map<String, String> headerSignatures() throws Exception {
        String src = Files.readString(HEADER)
                .replaceAll("(?s)/\\*.*?\\*/", " ")
                .replaceAll("//[^\n]*", " ");
        Map<String, String> out = new TreeMap<>();
        Matcher m = DECL.matcher(src);
        while (m.find()) {
            List<String> args = new ArrayList<>();
            String params = m.group(3).trim();
            if (!params.equals("void") && !params.isEmpty()) {
                for (String p : params.split(",")) args.add(kindOfC(p));
            }
            out.put(m.group(2), kindOfC(m.group(1) + " x") + "(" + String.join(",", args) + ")");
        }
        return out;
    }

    static String kindOfC(String decl) {
        String d = decl.trim();
        if (d.contains("*") || d.contains("_fn")) return "A";
        String type = d.replaceAll("\\bconst\\b", "").trim().split("\\s+")[0];
        return switch (type) {
            case "void" -> "V";
            case "int32_t", "int" -> "I";
            case "int64_t" -> "J";
            case "double" -> "D";
            case "float" -> "F";
            default -> throw new AssertionError("unmapped C type in ds4j.h: " + decl);
        };
    }

    static String kindOf(MemoryLayout l) {
        if (l instanceof ValueLayout.OfInt) return "I";
        if (l instanceof ValueLayout.OfLong) return "J";
        if (l instanceof ValueLayout.OfDouble) return "D";
        if (l instanceof ValueLayout.OfFloat) return "F";
        if (l instanceof java.lang.foreign.AddressLayout) return "A";
        throw new AssertionError("unmapped layout " + l);
    }

    static String javaSignature(FunctionDescriptor fd) {
        Optional<MemoryLayout> ret = fd.returnLayout();
        List<String> args = fd.argumentLayouts().stream().map(HeaderBindingTest::kindOf).toList();
        return ret.map(HeaderBindingTest::kindOf).orElse("V") + "(" + String.join(",", args) + ")";
    }

    @Test
    void everyHeaderFunctionIsBoundWithTheSameShape() throws Exception {
        Map<String, String> header = headerSignatures();
        assertThat(header).as("parsed ds4j.h").containsKeys("ds4j_version", "ds4j_session_sync", "ds4j_sampler_sample");
        Map<String, String> java = new TreeMap<>();
        Ds4jNative.SIGNATURES.forEach((k, v) -> java.put(k, javaSignature(v)));
        // an optional binding counts once the header declares it (and must then have its shape)
        Ds4jNative.OPTIONAL_SIGNATURES.forEach((k, v) -> {
            if (header.containsKey(k)) java.put(k, javaSignature(v));
        });
        assertThat(java).as("Ds4jNative.SIGNATURES vs native-lib/include/ds4j.h").isEqualTo(header);
    }

    @Test
    void optionalBindingsHaveTheHeadersShapes() {
        assertThat(javaSignature(Ds4jNative.OPTIONAL_SIGNATURES.get("ds4j_batch_eval"))).isEqualTo("I(A,A,I)");
        assertThat(Ds4jNative.BATCH_ENTRY.byteSize()).as("sizeof(ds4j_batch_entry) on LP64").isEqualTo(24);
        assertThat(Ds4jNative.OPTIONAL_SIGNATURES.keySet()).doesNotContainAnyElementsOf(Ds4jNative.SIGNATURES.keySet());
    }

    @Test
    void parserSeesMultiLineDeclarations() throws Exception {
        assertThat(headerSignatures().get("ds4j_session_sync")).isEqualTo("I(A,A,I,A,A)");
        assertThat(headerSignatures().get("ds4j_engine_close")).isEqualTo("V(A)");
    }
}
