package io.ds4j.grammar;

import java.util.List;

/** Tools with string, number, integer, boolean, enum, nested-object and array parameters, for constrained calls. */
public final class ToolCallFixtures {
    private ToolCallFixtures() {}

    public static final List<ToolCallRecognizer.Tool> TOOLS = List.of(
            new ToolCallRecognizer.Tool("get_weather", """
                    {"type":"object","properties":{
                      "city":{"type":"string","maxLength":12},
                      "unit":{"enum":["celsius","fahrenheit"]},
                      "days":{"type":"integer"}},
                     "required":["city"],"additionalProperties":false}"""),
            new ToolCallRecognizer.Tool("set_flag", """
                    {"type":"object","properties":{
                      "on":{"type":"boolean"},
                      "level":{"type":"number"}},
                     "required":["on","level"]}"""),
            new ToolCallRecognizer.Tool("search", """
                    {"type":"object","properties":{
                      "query":{"type":"string","minLength":1,"maxLength":10},
                      "tags":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":3},
                      "filters":{"type":"object","properties":{
                          "lang":{"enum":["en","fr"]},
                          "year":{"type":["integer","null"]}},
                        "required":["lang"],"additionalProperties":false}},
                     "required":["query","filters"],"additionalProperties":false}"""),
            new ToolCallRecognizer.Tool("noop", null));

    /** The tools as the request's {@code tools} array. */
    public static String requestTools() {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < TOOLS.size(); i++) {
            var t = TOOLS.get(i);
            if (i > 0) sb.append(',');
            sb.append("{\"type\":\"function\",\"function\":{\"name\":\"").append(t.name()).append('"');
            if (t.parametersJson() != null) sb.append(",\"parameters\":").append(t.parametersJson());
            sb.append("}}");
        }
        return sb.append(']').toString();
    }
}
