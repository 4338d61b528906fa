package io.ds4j.chat;

import io.ds4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * OpenAI messages -> DeepSeek V4 prompt, as DeepSeek's reference encoder {@code encoding_dsv4.py}
 * renders it (chat-format.md section 2): BOS, role markers, thinking-mode transitions, dropping of
 * earlier reasoning, the tools block, DSML tool calls and merged tool results. Request-level tools go
 * to the first message if it is system/developer, else into an empty system message at index 0 (the
 * placement of vLLM's adapter, chat-format.md 2.5).
 *
 * <p>{@link #render} produces ids: structure (role markers, think tags, DSML markers of our own
 * templates) is inserted as control ids, while text that came from the client is BPE-encoded without
 * added-token matching, so a user typing {@code <｜User｜>} cannot forge a turn. For prompts whose
 * content contains no such strings the ids equal HF's encoding of {@link #renderText}. Thread-safe.
 */
public final class ChatRenderer {
    static final String BOS = "<｜begin▁of▁sentence｜>";
    static final String EOS = "<｜end▁of▁sentence｜>";
    static final String USER = "<｜User｜>";
    static final String ASSISTANT = "<｜Assistant｜>";
    static final String THINK = "<think>";
    public static final String END_THINK = "</think>";
    public static final String DSML = "｜DSML｜";
    /** Strings inside our own templates and in replayed generated DSML that are single tokens in V4. */
    private static final String[] STRUCTURAL = {DSML, THINK, END_THINK};

    static final String EFFORT_ABSOLUTE_MAX = "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
            + "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause,"
            + " rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
            + "Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative,"
            + " and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";
    static final String EFFORT_BEYOND_MAX = "Reasoning Effort: Beyond maximum \u2014 exhaustive, relentless, and uncompromising.\n"
            + "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: exhaustively decompose the"
            + " problem into its most fundamental components, trace every causal chain to its root, and resolve the underlying"
            + " cause rather than any surface symptom.\n"
            + "Do not stop reasoning until you have independently verified the solution from multiple angles and are certain"
            + " that no assumption remains unchecked and no error remains undiscovered.\n\n";

    static final String TOOLS_TEMPLATE_HEAD = "## Tools\n\n"
            + "You have access to a set of tools to help answer the user's question. You can invoke tools by writing a"
            + " \"<｜DSML｜tool_calls>\" block like the following:\n\n"
            + "<｜DSML｜tool_calls>\n"
            + "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
            + "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
            + "...\n"
            + "</｜DSML｜invoke>\n"
            + "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
            + "...\n"
            + "</｜DSML｜invoke>\n"
            + "</｜DSML｜tool_calls>\n\n"
            + "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, booleans,"
            + " arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
            + "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside"
            + " <think>...</think> BEFORE any tool calls or final response.\n\n"
            + "Otherwise, output directly after </think> with tool calls or final response.\n\n"
            + "### Available Tool Schemas\n\n";
    static final String TOOLS_TEMPLATE_TAIL =
            "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

    private final Tokenizer tokenizer;
    private final ChatTemplateSettings settings;
    private final ToolCallMemory memory;

    public ChatRenderer(Tokenizer tokenizer, ChatTemplateSettings settings) {
        this(tokenizer, settings, null);
    }

    /** With a shared {@link ToolCallMemory} (may be null) for exact replay of generated tool calls. */
    public ChatRenderer(Tokenizer tokenizer, ChatTemplateSettings settings, ToolCallMemory memory) {
        this.tokenizer = tokenizer;
        this.settings = settings == null ? ChatTemplateSettings.defaults() : settings;
        this.memory = memory;
    }

    public ChatTemplateSettings settings() {
        return settings;
    }

    /** The prompt as text (for debugging and golden tests). */
    public String renderText(ChatPrompt prompt) {
        return build(prompt).text();
    }

    /** Token ids: control tokens by id, client text encoded without special-token matching. */
    public int[] render(ChatPrompt prompt) {
        if (tokenizer == null) throw new IllegalStateException("this renderer has no tokenizer");
        return build(prompt).ids(tokenizer);
    }

    // ------------------------------------------------------------------ message model

    /** Internal message after tool merging; blocks != null for merged user turns. */
    private static final class Msg {
        String role;
        String content;
        String reasoning;
        List<ToolCall> toolCalls;
        boolean hasTools;
        List<Block> blocks; // user turns: text / tool_result parts, joined with "\n\n"
    }

    private record Block(boolean toolResult, String text, String toolCallId) {}

    private Segments build(ChatPrompt prompt) {
        if (prompt == null || prompt.messages() == null) throw new IllegalArgumentException("messages are required");
        ThinkingMode mode = prompt.thinking() != null ? prompt.thinking() : settings.defaultThinking();
        boolean thinking = mode.thinking();
        List<ToolFunction> tools = prompt.tools() == null || "none".equals(prompt.toolChoice()) ? List.of() : prompt.tools();

        List<Msg> msgs = new ArrayList<>();
        for (ChatMessage m : prompt.messages()) {
            if (m == null || m.role() == null) throw new IllegalArgumentException("a message has no role");
            Msg x = new Msg();
            x.role = m.role();
            x.content = m.content();
            x.reasoning = m.reasoningContent();
            x.toolCalls = m.toolCalls() == null ? List.of() : m.toolCalls();
            switch (x.role) {
                case "system", "developer", "user", "assistant" -> {}
                case "tool" -> x.blocks = List.of(new Block(true, m.content() == null ? "" : m.content(), m.toolCallId()));
                default -> throw new IllegalArgumentException("unsupported message role '" + x.role + "'");
            }
            msgs.add(x);
        }
        if (!tools.isEmpty()) {
            if (!msgs.isEmpty() && (msgs.get(0).role.equals("system") || msgs.get(0).role.equals("developer"))) {
                msgs.get(0).hasTools = true;
            } else {
                Msg sys = new Msg();
                sys.role = "system";
                sys.content = "";
                sys.toolCalls = List.of();
                sys.hasTools = true;
                msgs.add(0, sys);
            }
        }
        msgs = mergeToolMessages(msgs);
        sortToolResults(msgs);

        boolean drop = settings.dropThinking() && tools.isEmpty();
        if (thinking && drop) msgs = dropThinking(msgs);

        Segments out = new Segments();
        out.special(BOS);
        int lastUser = lastUserIndex(msgs);
        for (int i = 0; i < msgs.size(); i++) {
            renderMessage(out, msgs, i, lastUser, mode, drop, tools);
        }
        return out;
    }

    private static List<Msg> mergeToolMessages(List<Msg> in) {
        List<Msg> out = new ArrayList<>();
        for (Msg m : in) {
            Msg prev = out.isEmpty() ? null : out.get(out.size() - 1);
            boolean prevMerged = prev != null && prev.role.equals("user") && prev.blocks != null;
            if (m.role.equals("tool")) {
                if (prevMerged) {
                    prev.blocks.addAll(m.blocks);
                } else {
                    Msg u = new Msg();
                    u.role = "user";
                    u.toolCalls = List.of();
                    u.blocks = new ArrayList<>(m.blocks);
                    out.add(u);
                }
            } else if (m.role.equals("user")) {
                Block text = new Block(false, m.content == null ? "" : m.content, null);
                if (prevMerged) {
                    prev.blocks.add(text);
                } else {
                    m.blocks = new ArrayList<>(List.of(text));
                    out.add(m);
                }
            } else {
                out.add(m);
            }
        }
        return out;
    }

    /** Tool results of a user turn follow the call order of the latest assistant tool calls (stable). */
    private static void sortToolResults(List<Msg> msgs) {
        Map<String, Integer> order = new HashMap<>();
        for (Msg m : msgs) {
            if (m.role.equals("assistant") && !m.toolCalls.isEmpty()) {
                order = new HashMap<>();
                for (int i = 0; i < m.toolCalls.size(); i++) {
                    String id = m.toolCalls.get(i).id();
                    if (id != null && !id.isEmpty()) order.putIfAbsent(id, i);
                }
            } else if (m.role.equals("user") && m.blocks != null && !order.isEmpty()) {
                List<Block> results = new ArrayList<>();
                for (Block b : m.blocks) if (b.toolResult) results.add(b);
                if (results.size() < 2) continue;
                Map<String, Integer> ord = order;
                results.sort((a, b) -> Integer.compare(ord.getOrDefault(nz(a.toolCallId), 0), ord.getOrDefault(nz(b.toolCallId), 0)));
                int k = 0;
                for (int i = 0; i < m.blocks.size(); i++) {
                    if (m.blocks.get(i).toolResult) m.blocks.set(i, results.get(k++));
                }
            }
        }
    }

    private static String nz(String s) {
        return s == null ? "" : s;
    }

    private static int lastUserIndex(List<Msg> msgs) {
        for (int i = msgs.size() - 1; i >= 0; i--) {
            String r = msgs.get(i).role;
            if (r.equals("user") || r.equals("developer")) return i;
        }
        return -1;
    }

    /** Before the last user turn: assistants lose their reasoning, developer messages are dropped. */
    private static List<Msg> dropThinking(List<Msg> msgs) {
        int lastUser = lastUserIndex(msgs);
        List<Msg> out = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) {
            Msg m = msgs.get(i);
            if (i >= lastUser || m.role.equals("user") || m.role.equals("system")) {
                out.add(m);
            } else if (m.role.equals("assistant")) {
                m.reasoning = null;
                out.add(m);
            }
            // developer before the last user turn: dropped
        }
        return out;
    }

    private void renderMessage(Segments out, List<Msg> msgs, int index, int lastUser, ThinkingMode mode, boolean drop,
                               List<ToolFunction> tools) {
        Msg m = msgs.get(index);
        boolean thinking = mode.thinking();
        if (index == 0 && thinking) out.trusted(effortPrefix(mode));
        switch (m.role) {
            case "system" -> {
                out.text(m.content == null ? "" : m.content);
                if (m.hasTools) toolsBlock(out, tools);
            }
            case "developer" -> {
                out.special(USER);
                out.text(m.content == null ? "" : m.content);
                if (m.hasTools) toolsBlock(out, tools);
            }
            case "user" -> {
                out.special(USER);
                for (int b = 0; b < m.blocks.size(); b++) {
                    if (b > 0) out.text("\n\n");
                    Block blk = m.blocks.get(b);
                    if (blk.toolResult) {
                        out.text("<tool_result>");
                        out.text(blk.text);
                        out.text("</tool_result>");
                    } else {
                        out.text(blk.text);
                    }
                }
            }
            case "assistant" -> {
                if (thinking && (!drop || index > lastUser)) {
                    out.text(m.reasoning == null ? "" : m.reasoning);
                    out.special(END_THINK);
                }
                out.text(m.content == null ? "" : m.content);
                if (!m.toolCalls.isEmpty()) {
                    Optional<String> raw = memory == null ? Optional.empty() : memory.replay(m.toolCalls);
                    if (raw.isPresent()) out.trusted(raw.get());
                    else toolCallsBlock(out, m.toolCalls);
                }
                out.special(EOS);
            }
            default -> throw new IllegalStateException(m.role);
        }
        boolean nextIsAssistant = index + 1 < msgs.size() && msgs.get(index + 1).role.equals("assistant");
        if (index + 1 < msgs.size() && !nextIsAssistant) return;
        if (m.role.equals("user") || m.role.equals("developer")) {
            out.special(ASSISTANT);
            boolean open = thinking && (!drop || index >= lastUser);
            out.special(open ? THINK : END_THINK);
        }
    }

    private String effortPrefix(ThinkingMode mode) {
        return switch (settings.encoder()) {
            case PREVIEW -> mode == ThinkingMode.MAX ? EFFORT_ABSOLUTE_MAX : "";
            case V0731 -> mode == ThinkingMode.MAX ? EFFORT_BEYOND_MAX : EFFORT_ABSOLUTE_MAX;
        };
    }

    private static void toolsBlock(Segments out, List<ToolFunction> tools) {
        out.text("\n\n");
        out.trusted(TOOLS_TEMPLATE_HEAD);
        for (int i = 0; i < tools.size(); i++) {
            if (i > 0) out.text("\n");
            out.text(toolSchemaJson(tools.get(i)));
        }
        out.trusted(TOOLS_TEMPLATE_TAIL);
    }

    /** The function object as Python {@code json.dumps(..., ensure_ascii=False)} writes it. */
    static String toolSchemaJson(ToolFunction f) {
        if (f == null || f.name() == null) throw new IllegalArgumentException("a tool has no function name");
        Map<String, Object> obj = new LinkedHashMap<>();
        obj.put("name", f.name());
        if (f.description() != null) obj.put("description", f.description());
        if (f.parametersJson() != null && !f.parametersJson().isBlank()) {
            try {
                obj.put("parameters", Json.parse(f.parametersJson()));
            } catch (Json.JsonException e) {
                throw new IllegalArgumentException("tool '" + f.name() + "' has invalid parameters JSON: " + e.getMessage(), e);
            }
        }
        return Json.dumpsPython(obj);
    }

    /**
     * How a generated tool call of one of {@code names} begins, spelled as {@link #toolCallsBlock} writes it,
     * with and without the blank line that separates the block from preceding content; with no names, the
     * opening up to the function name. Used to force a call (tool_choice "required" or a named function).
     */
    public static List<String> toolCallOpenings(List<String> names) {
        String head = "<" + DSML + "tool_calls>\n<" + DSML + "invoke name=\"";
        List<String> heads = names.isEmpty() ? List.of(head) : names.stream().map(n -> head + n + "\">\n").toList();
        return heads.stream().flatMap(h -> java.util.stream.Stream.of(h, "\n\n" + h)).toList();
    }

    /** {@code "\n\n<｜DSML｜tool_calls>\n" + invokes joined by "\n" + "\n</｜DSML｜tool_calls>"}. */
    static void toolCallsBlock(Segments out, List<ToolCall> calls) {
        out.text("\n\n<");
        out.special(DSML);
        out.text("tool_calls>\n");
        for (int i = 0; i < calls.size(); i++) {
            ToolCall c = calls.get(i);
            if (i > 0) out.text("\n");
            out.text("<");
            out.special(DSML);
            out.text("invoke name=\"");
            out.text(c.name() == null ? "" : c.name());
            out.text("\">\n");
            List<String[]> params = dsmlParameters(c.argumentsJson());
            for (int p = 0; p < params.size(); p++) {
                String[] kv = params.get(p);
                if (p > 0) out.text("\n");
                out.text("<");
                out.special(DSML);
                out.text("parameter name=\"");
                out.text(kv[0]);
                out.text("\" string=\"" + kv[1] + "\">");
                out.text(kv[2]);
                out.text("</");
                out.special(DSML);
                out.text("parameter>");
            }
            out.text("\n</");
            out.special(DSML);
            out.text("invoke>");
        }
        out.text("\n</");
        out.special(DSML);
        out.text("tool_calls>");
    }

    /** (name, "true"|"false", value) per argument; a non-object argument text is wrapped as {"arguments": text}. */
    static List<String[]> dsmlParameters(String argumentsJson) {
        Object parsed;
        try {
            parsed = Json.parse(argumentsJson);
        } catch (Json.JsonException e) {
            parsed = null;
        }
        Map<?, ?> args;
        if (parsed instanceof Map<?, ?> map) {
            args = map;
        } else {
            args = Map.of("arguments", argumentsJson == null ? "" : argumentsJson);
        }
        List<String[]> out = new ArrayList<>();
        for (Map.Entry<?, ?> e : args.entrySet()) {
            Object v = e.getValue();
            if (v instanceof String s) out.add(new String[] {String.valueOf(e.getKey()), "true", s});
            else out.add(new String[] {String.valueOf(e.getKey()), "false", Json.dumpsPython(v)});
        }
        return out;
    }

    /** The plain DSML text of some calls (what {@link #toolCallsBlock} writes), for tests and tools. */
    public static String dsmlText(List<ToolCall> calls) {
        Segments s = new Segments();
        toolCallsBlock(s, calls);
        return s.text();
    }

    // ------------------------------------------------------------------ segments

    /** The prompt as a sequence of plain text and special tokens. */
    static final class Segments {
        private final List<String> parts = new ArrayList<>();
        private final List<Boolean> special = new ArrayList<>();

        void text(String s) {
            if (s.isEmpty()) return;
            int last = parts.size() - 1;
            if (last >= 0 && !special.get(last)) parts.set(last, parts.get(last) + s);
            else {
                parts.add(s);
                special.add(false);
            }
        }

        void special(String s) {
            parts.add(s);
            special.add(true);
        }

        /** Our own template text (or replayed generated DSML): structural strings become tokens. */
        void trusted(String s) {
            int i = 0;
            while (i < s.length()) {
                int best = -1;
                String which = null;
                for (String t : STRUCTURAL) {
                    int at = s.indexOf(t, i);
                    if (at >= 0 && (best < 0 || at < best)) {
                        best = at;
                        which = t;
                    }
                }
                if (best < 0) {
                    text(s.substring(i));
                    return;
                }
                text(s.substring(i, best));
                special(which);
                i = best + which.length();
            }
        }

        String text() {
            return String.join("", parts);
        }

        int[] ids(Tokenizer tok) {
            List<int[]> chunks = new ArrayList<>();
            int total = 0;
            for (int i = 0; i < parts.size(); i++) {
                String part = parts.get(i);
                int[] c;
                if (special.get(i)) {
                    // a vocabulary without this added token (e.g. a V3 tokenizer lacks <think>) spells it as text, like HF
                    var id = tok.specialTokenId(part);
                    c = id.isPresent() ? new int[] {id.getAsInt()} : tok.encode(part, false);
                } else {
                    c = tok.encode(part, false);
                }
                chunks.add(c);
                total += c.length;
            }
            int[] out = new int[total];
            int k = 0;
            for (int[] c : chunks) {
                System.arraycopy(c, 0, out, k, c.length);
                k += c.length;
            }
            return out;
        }
    }
}
