package io.ds4j.grammar;

import io.ds4j.chat.ChatRenderer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * The whole DSML tool-call block as a byte grammar, so a forced (or strict) call always parses into
 * arguments that match the tool's schema:
 * <pre>
 * ["\n\n"] "&lt;｜DSML｜tool_calls&gt;\n" invoke ("\n" invoke)* "\n&lt;/｜DSML｜tool_calls&gt;"
 * invoke = "&lt;｜DSML｜invoke name=\"" TOOL "\"&gt;\n" param ("\n" param)* "\n&lt;/｜DSML｜invoke&gt;"
 * param  = "&lt;｜DSML｜parameter name=\"" NAME "\" string=\"false\"&gt;" JSON "&lt;/｜DSML｜parameter&gt;"
 * </pre>
 * TOOL is one of the allowed tools, the parameters are properties of the tool's {@code parameters} schema in
 * their declared order, every required one present, each value one JSON document of the property's schema
 * (a {@link SchemaRecognizer}; written as {@code string="false"}, which the output parser copies verbatim).
 * A value may not contain {@code </｜DSML｜}, which would end it early for the parser. At most
 * {@code maxInvokes} invokes. Complete after the closing tag of the block.
 */
public final class ToolCallRecognizer implements ByteRecognizer {
    /** A tool the grammar may call: its name and {@code parameters} schema (null = no parameters). */
    public record Tool(String name, String parametersJson) {}

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String D = ChatRenderer.DSML;
    private static final byte[] GUARD = ("</" + D).getBytes(StandardCharsets.UTF_8);
    private static final int[] GUARD_FAIL = failure(GUARD);
    private static final int K_CHOICE = 0, K_VALUE = 1, K_DONE = 2;
    // action kinds of a choice option
    private static final int A_CHOICE = 0, A_VALUE = 1, A_AFTER = 2, A_DONE = 3;

    /** A set of literal alternatives; option i leads to (kind[i], arg[i]). */
    private record Choice(byte[][] opts, int[] kind, int[] arg) {}

    /** The compiled grammar, shared by copies. */
    private record Grammar(List<Choice> choices, JsonSchema[] values, int[] valueClose, int afterMore,
                           int afterLast, int maxInvokes) {}

    private final Grammar g;
    private final SchemaRecognizer[] vals;
    private int kind = K_CHOICE;
    private int choice;       // K_CHOICE: the choice being read
    private long live;        // its options still consistent with the bytes read
    private int cpos;         // bytes of the choice read
    private int value = -1;   // K_VALUE: the parameter being read
    private int guard;        // bytes of GUARD matched at the end of the value
    private int invokes;      // invokes closed

    private ToolCallRecognizer(Grammar g) {
        this.g = g;
        this.vals = new SchemaRecognizer[g.values.length];
        for (int i = 0; i < vals.length; i++) vals[i] = new SchemaRecognizer(g.values[i]);
        enter(0);
    }

    /**
     * @param tools the allowed tools (at most 32; each schema an object with at most 63 properties)
     * @param maxInvokes at most this many invokes in the block (1 for {@code parallel_tool_calls: false})
     * @throws IllegalArgumentException if a schema is outside the supported subset or too large
     */
    public static ToolCallRecognizer of(List<Tool> tools, int maxInvokes) {
        if (tools.isEmpty() || tools.size() > 32) throw new IllegalArgumentException("1..32 tools expected");
        if (maxInvokes < 1) throw new IllegalArgumentException("maxInvokes < 1");
        List<Choice> choices = new ArrayList<>();
        choices.add(null); // start, filled below
        List<JsonSchema> values = new ArrayList<>();
        List<Integer> closes = new ArrayList<>();
        int[] firstParams = new int[tools.size()];
        for (int t = 0; t < tools.size(); t++) firstParams[t] = compileTool(tools.get(t), choices, values, closes);
        // start: the block and the first invoke's header
        byte[][] startOpts = new byte[tools.size() * 2][];
        int[] sk = new int[startOpts.length], sa = new int[startOpts.length];
        for (int t = 0; t < tools.size(); t++) {
            String h = "<" + D + "tool_calls>\n" + header(tools.get(t).name());
            startOpts[2 * t] = utf8(h);
            startOpts[2 * t + 1] = utf8("\n\n" + h);
            sa[2 * t] = sa[2 * t + 1] = firstParams[t];
        }
        choices.set(0, new Choice(startOpts, sk, sa));
        byte[] close = utf8("\n</" + D + "tool_calls>");
        byte[][] more = new byte[tools.size() + 1][];
        int[] mk = new int[more.length], ma = new int[more.length];
        for (int t = 0; t < tools.size(); t++) {
            more[t] = utf8("\n" + header(tools.get(t).name()));
            ma[t] = firstParams[t];
        }
        more[tools.size()] = close;
        mk[tools.size()] = A_DONE;
        choices.add(new Choice(more, mk, ma));
        choices.add(new Choice(new byte[][] {close}, new int[] {A_DONE}, new int[] {0}));
        Grammar g = new Grammar(List.copyOf(choices), values.toArray(JsonSchema[]::new),
                closes.stream().mapToInt(Integer::intValue).toArray(), choices.size() - 2, choices.size() - 1, maxInvokes);
        return new ToolCallRecognizer(g);
    }

    private static String header(String name) {
        return "<" + D + "invoke name=\"" + name + "\">\n";
    }

    /** Adds the choices of one tool's parameters; returns the choice that follows its header. */
    private static int compileTool(Tool tool, List<Choice> choices, List<JsonSchema> values, List<Integer> closes) {
        List<String> names = new ArrayList<>();
        List<JsonSchema> schemas = new ArrayList<>();
        Set<String> required = new HashSet<>();
        if (tool.parametersJson() != null) {
            JsonNode root = JSON.readTree(tool.parametersJson());
            if (!root.isObject()) throw new IllegalArgumentException("parameters must be an object schema");
            String type = root.path("type").asString("object");
            if (!type.equals("object")) throw new IllegalArgumentException("parameters must be of type object");
            JsonNode props = root.get("properties");
            if (props != null && props.isObject()) {
                for (var e : props.properties()) {
                    ObjectNode sub = e.getValue().isObject() ? (ObjectNode) e.getValue().deepCopy() : null;
                    if (sub == null) throw new IllegalArgumentException("property '" + e.getKey() + "' is not a schema object");
                    for (String defs : List.of("$defs", "definitions")) if (root.has(defs) && !sub.has(defs)) sub.set(defs, root.get(defs));
                    names.add(e.getKey());
                    schemas.add(JsonSchema.compile(sub));
                }
            }
            JsonNode req = root.get("required");
            if (req != null && !req.isNull()) {
                if (!req.isArray()) throw new IllegalArgumentException("'required' must be an array of strings");
                for (JsonNode r : req) {
                    if (!r.isString()) throw new IllegalArgumentException("'required' must be an array of strings");
                    required.add(r.stringValue());
                }
            }
            for (String r : required) if (!names.contains(r)) throw new IllegalArgumentException("required '" + r + "' is not a property");
        }
        int n = names.size();
        if (n > 63) throw new IllegalArgumentException("at most 63 parameters per tool");
        int firstValue = values.size();
        values.addAll(schemas);
        // choice ids: params(k, first) for k in 0..n, then the closes of each value
        int base = choices.size();
        int paramsChoices = 2 * (n + 1);
        for (int k = 0; k <= n; k++) {
            for (int first = 0; first < 2; first++) {
                List<byte[]> opts = new ArrayList<>();
                List<Integer> kinds = new ArrayList<>(), args = new ArrayList<>();
                for (int j = k; j < n; j++) {
                    opts.add(utf8((first == 1 ? "" : "\n") + "<" + D + "parameter name=\"" + names.get(j) + "\" string=\"false\">"));
                    kinds.add(A_VALUE);
                    args.add(firstValue + j);
                    if (required.contains(names.get(j))) break; // a required one cannot be skipped
                }
                boolean rest = true;
                for (int j = k; j < n; j++) if (required.contains(names.get(j))) rest = false;
                if (rest) {
                    opts.add(utf8("\n</" + D + "invoke>"));
                    kinds.add(A_AFTER);
                    args.add(0);
                }
                choices.add(new Choice(opts.toArray(byte[][]::new), kinds.stream().mapToInt(Integer::intValue).toArray(),
                        args.stream().mapToInt(Integer::intValue).toArray()));
            }
        }
        for (int j = 0; j < n; j++) {
            int next = base + 2 * (j + 1); // params(j + 1, not first)
            choices.add(new Choice(new byte[][] {utf8("</" + D + "parameter>")}, new int[] {A_CHOICE}, new int[] {next}));
            closes.add(base + paramsChoices + j);
        }
        return base + 1; // params(0, first)
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static int[] failure(byte[] p) {
        int[] f = new int[p.length];
        for (int i = 1, k = 0; i < p.length; i++) {
            while (k > 0 && p[i] != p[k]) k = f[k - 1];
            if (p[i] == p[k]) k++;
            f[i] = k;
        }
        return f;
    }

    private void enter(int c) {
        kind = K_CHOICE;
        choice = c;
        cpos = 0;
        int n = g.choices.get(c).opts.length;
        live = n == 64 ? -1L : (1L << n) - 1;
    }

    @Override
    public boolean feed(int c) {
        return switch (kind) {
            case K_CHOICE -> choiceByte(c);
            case K_VALUE -> valueByte(c);
            default -> false;
        };
    }

    private boolean choiceByte(int c) {
        Choice ch = g.choices.get(choice);
        long ok = 0;
        for (long r = live; r != 0; r &= r - 1) {
            int i = Long.numberOfTrailingZeros(r);
            byte[] o = ch.opts[i];
            if (cpos < o.length && (o[cpos] & 0xff) == c) ok |= 1L << i;
        }
        if (ok == 0) return false;
        live = ok;
        cpos++;
        for (long r = ok; r != 0; r &= r - 1) {
            int i = Long.numberOfTrailingZeros(r);
            if (ch.opts[i].length == cpos) {
                act(ch.kind[i], ch.arg[i]);
                break;
            }
        }
        return true;
    }

    private void act(int k, int arg) {
        switch (k) {
            case A_CHOICE -> enter(arg);
            case A_VALUE -> {
                kind = K_VALUE;
                value = arg;
                guard = 0;
                vals[arg].copyFrom(new SchemaRecognizer(g.values[arg]));
            }
            case A_AFTER -> {
                invokes++;
                enter(invokes < g.maxInvokes ? g.afterMore : g.afterLast);
            }
            default -> kind = K_DONE;
        }
    }

    private boolean valueByte(int c) {
        SchemaRecognizer v = vals[value];
        int m = guard;
        while (m > 0 && (GUARD[m] & 0xff) != c) m = GUARD_FAIL[m - 1];
        if ((GUARD[m] & 0xff) == c) m++;
        if (m < GUARD.length && v.feed(c)) {
            guard = m;
            return true;
        }
        if (!v.complete()) return false;
        // the value is complete: the parameter's closing tag
        int saved = value;
        enter(g.valueClose[value]);
        if (choiceByte(c)) return true;
        kind = K_VALUE;
        value = saved;
        return false;
    }

    @Override
    public boolean complete() {
        return kind == K_DONE;
    }

    /** Invokes closed so far. */
    public int invokes() {
        return invokes;
    }

    @Override
    public int plainStringRoom() {
        return kind == K_VALUE && guard == 0 ? vals[value].plainStringRoom() : -1;
    }

    @Override
    public void copyFrom(ByteRecognizer other) {
        ToolCallRecognizer o = (ToolCallRecognizer) other;
        kind = o.kind;
        choice = o.choice;
        live = o.live;
        cpos = o.cpos;
        value = o.value;
        guard = o.guard;
        invokes = o.invokes;
        if (kind == K_VALUE) vals[value].copyFrom(o.vals[value]);
    }

    @Override
    public ByteRecognizer blank() {
        return new ToolCallRecognizer(g);
    }
}
