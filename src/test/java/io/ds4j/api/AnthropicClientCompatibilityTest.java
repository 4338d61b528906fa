package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.anthropic.client.AnthropicClient;
import com.anthropic.client.okhttp.AnthropicOkHttpClient;
import com.anthropic.core.JsonValue;
import com.anthropic.core.http.StreamResponse;
import com.anthropic.errors.BadRequestException;
import com.anthropic.errors.NotFoundException;
import com.anthropic.helpers.MessageAccumulator;
import com.anthropic.models.messages.ContentBlock;
import com.anthropic.models.messages.ContentBlockParam;
import com.anthropic.models.messages.Message;
import com.anthropic.models.messages.MessageCountTokensParams;
import com.anthropic.models.messages.MessageCreateParams;
import com.anthropic.models.messages.RawMessageStreamEvent;
import com.anthropic.models.messages.StopReason;
import com.anthropic.models.messages.ThinkingConfigDisabled;
import com.anthropic.models.messages.Tool;
import com.anthropic.models.messages.ToolChoiceAny;
import com.anthropic.models.messages.ToolChoiceTool;
import com.anthropic.models.messages.ToolResultBlockParam;
import io.ds4j.grammar.JsonSchemaTest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * The official Anthropic Java SDK (com.anthropic:anthropic-java) against the running server's
 * /v1/messages: plain and streamed messages (the SDK's own accumulator rebuilds the streamed message),
 * thinking blocks, count_tokens, a forced tool call whose input validates against the schema, a whole
 * tool round trip, and errors surfacing as the SDK's exceptions.
 */
class AnthropicClientCompatibilityTest extends DemoModelServerTest {
    static final String WEATHER_SCHEMA = """
            {"type":"object","properties":{"city":{"type":"string","maxLength":12},
             "unit":{"enum":["celsius","fahrenheit"]},"days":{"type":"integer"}},
             "required":["city"],"additionalProperties":false}""";

    AnthropicClient client;

    @BeforeEach
    void client() {
        client = AnthropicOkHttpClient.builder().baseUrl("http://localhost:" + port).apiKey("unused").maxRetries(0).build();
    }

    static Tool weatherTool() {
        JsonNode schema = Params.JSON.readTree(WEATHER_SCHEMA);
        var props = Tool.InputSchema.Properties.builder();
        for (var e : schema.get("properties").properties()) {
            props.putAdditionalProperty(e.getKey(), JsonValue.from(Params.JSON.convertValue(e.getValue(), Map.class)));
        }
        return Tool.builder().name("get_weather").description("Current weather of a city")
                .inputSchema(Tool.InputSchema.builder().properties(props.build()).addRequired("city")
                        .putAdditionalProperty("additionalProperties", JsonValue.from(false)).build())
                .build();
    }

    MessageCreateParams.Builder hello() {
        return MessageCreateParams.builder().model("demo").system("Be brief.").addUserMessage("Hi there").maxTokens(6)
                .putAdditionalBodyProperty("temperature", JsonValue.from(0.0)).thinking(ThinkingConfigDisabled.builder().build());
    }

    static String text(Message m) {
        StringBuilder sb = new StringBuilder();
        for (ContentBlock b : m.content()) b.text().ifPresent(t -> sb.append(t.text()));
        return sb.toString();
    }

    Message streamed(MessageCreateParams params, List<String> kinds) {
        MessageAccumulator acc = MessageAccumulator.create();
        try (StreamResponse<RawMessageStreamEvent> s = client.messages().createStreaming(params)) {
            s.stream().forEach(e -> {
                acc.accumulate(e);
                if (e.isMessageStart()) kinds.add("message_start");
                else if (e.isContentBlockStart()) kinds.add("content_block_start");
                else if (e.isContentBlockDelta()) kinds.add("content_block_delta");
                else if (e.isContentBlockStop()) kinds.add("content_block_stop");
                else if (e.isMessageDelta()) kinds.add("message_delta");
                else if (e.isMessageStop()) kinds.add("message_stop");
            });
        }
        return acc.message();
    }

    @Test
    void messageNonStreaming() {
        Message m = client.messages().create(hello().build());
        assertThat(m.id()).startsWith("msg_");
        assertThat(m.model().asString()).isEqualTo("demo");
        assertThat(m.content()).hasSize(1);
        assertThat(m.content().getFirst().isText()).isTrue();
        assertThat(m.stopReason().orElseThrow()).isIn(StopReason.MAX_TOKENS, StopReason.END_TURN);
        var u = m.usage();
        assertThat(u.outputTokens()).isBetween(1L, 6L);
        long prompt = client.messages().countTokens(MessageCountTokensParams.builder().model("demo").system("Be brief.")
                .addUserMessage("Hi there").thinking(ThinkingConfigDisabled.builder().build()).build()).inputTokens();
        assertThat(u.inputTokens() + u.cacheReadInputTokens().orElseThrow()).isEqualTo(prompt);
    }

    @Test
    void streamingRebuildsTheSameGreedyMessage() {
        Message whole = client.messages().create(hello().build());
        List<String> kinds = new ArrayList<>();
        Message m = streamed(hello().build(), kinds);
        assertThat(text(m)).isEqualTo(text(whole));
        assertThat(m.stopReason()).isEqualTo(whole.stopReason());
        assertThat(m.usage().outputTokens()).isEqualTo(whole.usage().outputTokens());
        assertThat(kinds.getFirst()).isEqualTo("message_start");
        assertThat(kinds).containsSubsequence("content_block_start", "content_block_delta", "content_block_stop",
                "message_delta", "message_stop");
        assertThat(kinds.getLast()).isEqualTo("message_stop");
    }

    @Test
    void thinkingComesAsAThinkingBlockStreamedAndNot() {
        var params = MessageCreateParams.builder().model("demo").addUserMessage("Think first.").maxTokens(12)
                .putAdditionalBodyProperty("temperature", JsonValue.from(0.0)).enabledThinking(8).build();
        Message whole = client.messages().create(params);
        assertThat(whole.content().getFirst().isThinking()).as(whole.toString()).isTrue();
        String reasoning = whole.content().getFirst().asThinking().thinking();
        assertThat(reasoning).isNotEmpty();
        List<String> kinds = new ArrayList<>();
        Message m = streamed(params, kinds);
        assertThat(m.content().getFirst().asThinking().thinking()).isEqualTo(reasoning);
        assertThat(m.content().getFirst().asThinking().signature()).isNotEmpty();
    }

    @Test
    void forcedToolCallHasSchemaValidInputAndTheRoundTripAnswers() {
        var schema = Params.JSON.readTree(WEATHER_SCHEMA);
        for (boolean stream : new boolean[] {false, true}) {
            var params = MessageCreateParams.builder().model("demo").addUserMessage("Weather in Paris?").maxTokens(1500)
                    .putAdditionalBodyProperty("temperature", JsonValue.from(1.0)).thinking(ThinkingConfigDisabled.builder().build()).addTool(weatherTool())
                    .toolChoice(stream ? com.anthropic.models.messages.ToolChoice.ofAny(ToolChoiceAny.builder().build())
                            : com.anthropic.models.messages.ToolChoice.ofTool(ToolChoiceTool.builder().name("get_weather").build()))
                    .putAdditionalBodyProperty("seed", JsonValue.from(7))
                    .build();
            Message m = stream ? streamed(params, new ArrayList<>()) : client.messages().create(params);
            assertThat(m.stopReason().orElseThrow()).as(m.toString()).isEqualTo(StopReason.TOOL_USE);
            var uses = m.content().stream().filter(ContentBlock::isToolUse).map(ContentBlock::asToolUse).toList();
            assertThat(uses).isNotEmpty();
            var use = uses.getFirst();
            assertThat(use.name()).isEqualTo("get_weather");
            JsonNode input = Params.JSON.readTree(Params.JSON.writeValueAsString(use._input().convert(Object.class)));
            assertThat(JsonSchemaTest.Validator.valid(schema, input, schema)).as(input.toString()).isTrue();
            assertThat(input.get("city").isString()).isTrue();

            // the client runs the tool and sends its result; the model answers
            var followUp = MessageCreateParams.builder().model("demo").addUserMessage("Weather in Paris?").maxTokens(5)
                    .putAdditionalBodyProperty("temperature", JsonValue.from(0.0)).thinking(ThinkingConfigDisabled.builder().build()).addTool(weatherTool())
                    .addMessage(m.toParam())
                    .addUserMessageOfContentBlockParams(List.of(ContentBlockParam.ofToolResult(ToolResultBlockParam.builder()
                            .toolUseId(use.id()).content("18 degrees, sunny").build())))
                    .build();
            Message answer = stream ? streamed(followUp, new ArrayList<>()) : client.messages().create(followUp);
            assertThat(answer.stopReason().orElseThrow()).isIn(StopReason.MAX_TOKENS, StopReason.END_TURN, StopReason.TOOL_USE);
            assertThat(answer.content()).isNotEmpty();
            // the prompt of the follow-up starts with the first turn's prompt: the session reused it
            assertThat(answer.usage().cacheReadInputTokens().orElseThrow()).isPositive();
        }
    }

    @Test
    void errorsMapToTheSdksExceptions() {
        assertThatThrownBy(() -> client.messages().create(hello().model("no-such-model").build()))
                .isInstanceOf(NotFoundException.class).hasMessageContaining("no-such-model");
        assertThatThrownBy(() -> client.messages().create(hello().maxTokens(1_000_000).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("max_tokens");
    }
}
