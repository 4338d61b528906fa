package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.helpers.ResponseAccumulator;
import com.openai.models.Reasoning;
import com.openai.models.ReasoningEffort;
import com.openai.models.responses.FunctionTool;
import com.openai.models.responses.Response;
import com.openai.models.responses.ResponseCreateParams;
import com.openai.models.responses.ResponseFunctionToolCall;
import com.openai.models.responses.ResponseInputItem;
import com.openai.models.responses.ResponseOutputItem;
import com.openai.models.responses.ResponseStatus;
import com.openai.models.responses.ResponseStreamEvent;
import com.openai.models.responses.ToolChoiceFunction;
import com.openai.models.responses.ToolChoiceOptions;
import io.ds4j.grammar.JsonSchemaTest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * The official OpenAI Java SDK's Responses API (com.openai:openai-java) against the running server's
 * /v1/responses: plain and streamed responses (the SDK's accumulator rebuilds the streamed one),
 * reasoning items, previous_response_id with the store, a forced function call whose arguments validate
 * against the schema, a whole tool round trip, text.format json_schema parsed by the SDK into a class,
 * and errors surfacing as the SDK's exceptions.
 */
class ResponsesClientCompatibilityTest extends DemoModelServerTest {
    OpenAIClient client;

    @BeforeEach
    void client() {
        client = OpenAIOkHttpClient.builder().baseUrl("http://localhost:" + port + "/v1").apiKey("unused")
                .maxRetries(0).build();
    }

    ResponseCreateParams.Builder hello() {
        return ResponseCreateParams.builder().model("demo").instructions("Be brief.").input("Hi there")
                .maxOutputTokens(6L).temperature(0.0).reasoning(Reasoning.builder().effort(ReasoningEffort.MINIMAL).build());
    }

    static String text(Response r) {
        StringBuilder sb = new StringBuilder();
        for (ResponseOutputItem item : r.output()) {
            item.message().ifPresent(m -> m.content().forEach(c -> c.outputText().ifPresent(t -> sb.append(t.text()))));
        }
        return sb.toString();
    }

    Response streamed(ResponseCreateParams params, List<String> types) {
        ResponseAccumulator acc = ResponseAccumulator.create();
        List<Long> sequence = new ArrayList<>();
        try (StreamResponse<ResponseStreamEvent> s = client.responses().createStreaming(params)) {
            s.stream().forEach(e -> {
                acc.accumulate(e);
                JsonValue json = JsonValue.from(e);
                var node = Params.JSON.readTree(Params.JSON.writeValueAsString(json.convert(Object.class)));
                types.add(node.get("type").stringValue());
                sequence.add(node.get("sequence_number").longValue());
            });
        }
        for (int i = 0; i < sequence.size(); i++) assertThat(sequence.get(i)).isEqualTo(i);
        return acc.response();
    }

    static FunctionTool weatherTool() {
        JsonNode schema = Params.JSON.readTree(AnthropicClientCompatibilityTest.WEATHER_SCHEMA);
        var params = FunctionTool.Parameters.builder();
        for (var e : schema.properties()) {
            params.putAdditionalProperty(e.getKey(), JsonValue.from(Params.JSON.convertValue(e.getValue(), Object.class)));
        }
        return FunctionTool.builder().name("get_weather").description("Current weather of a city")
                .parameters(params.build()).strict(true).build();
    }

    @Test
    void responseNonStreamingAndStoredForRetrieval() {
        Response r = client.responses().create(hello().build());
        assertThat(r.id()).startsWith("resp_");
        assertThat(r.status().orElseThrow()).isIn(ResponseStatus.COMPLETED, ResponseStatus.INCOMPLETE);
        assertThat(r.output()).hasSize(1);
        assertThat(r.output().getFirst().isMessage()).isTrue();
        var u = r.usage().orElseThrow();
        assertThat(u.outputTokens()).isBetween(1L, 6L);
        assertThat(u.inputTokens()).isPositive();
        assertThat(u.inputTokensDetails().cachedTokens()).isBetween(0L, u.inputTokens());
        assertThat(u.outputTokensDetails().reasoningTokens()).isZero();
        assertThat(u.totalTokens()).isEqualTo(u.inputTokens() + u.outputTokens());
        Response again = client.responses().retrieve(r.id());
        assertThat(text(again)).isEqualTo(text(r));
        client.responses().delete(r.id());
        assertThatThrownBy(() -> client.responses().retrieve(r.id())).isInstanceOf(NotFoundException.class);
    }

    @Test
    void streamingRebuildsTheSameGreedyResponse() {
        Response whole = client.responses().create(hello().build());
        List<String> types = new ArrayList<>();
        Response r = streamed(hello().build(), types);
        assertThat(text(r)).isEqualTo(text(whole));
        assertThat(r.status()).isEqualTo(whole.status());
        assertThat(r.usage().orElseThrow().outputTokens()).isEqualTo(whole.usage().orElseThrow().outputTokens());
        assertThat(types.subList(0, 2)).containsExactly("response.created", "response.in_progress");
        assertThat(types).containsSubsequence("response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                "response.output_item.done");
        assertThat(types.getLast()).isIn("response.completed", "response.incomplete");
    }

    @Test
    void reasoningIsAReasoningItemAndCountsAsReasoningTokens() {
        var params = ResponseCreateParams.builder().model("demo").input("Think first.").maxOutputTokens(12L)
                .temperature(0.0).reasoning(Reasoning.builder().effort(ReasoningEffort.HIGH).build()).build();
        Response whole = client.responses().create(params);
        assertThat(whole.output().getFirst().isReasoning()).as(whole.toString()).isTrue();
        assertThat(whole.usage().orElseThrow().outputTokensDetails().reasoningTokens()).isPositive();
        List<String> types = new ArrayList<>();
        Response r = streamed(params, types);
        assertThat(types).contains("response.reasoning_text.delta", "response.reasoning_text.done");
        assertThat(r.output().getFirst().asReasoning().content().orElseThrow().getFirst().text())
                .isEqualTo(whole.output().getFirst().asReasoning().content().orElseThrow().getFirst().text());
    }

    @Test
    void previousResponseIdContinuesTheStoredConversation() {
        Response first = client.responses().create(hello().build());
        Response second = client.responses().create(ResponseCreateParams.builder().model("demo").instructions("Be brief.")
                .previousResponseId(first.id()).input("And then?").maxOutputTokens(4L).temperature(0.0)
                .reasoning(Reasoning.builder().effort(ReasoningEffort.MINIMAL).build()).build());
        assertThat(second.previousResponseId()).contains(first.id());
        var u = second.usage().orElseThrow();
        // the second prompt extends the first (its prompt, answer and the new turn): the session reuses it
        assertThat(u.inputTokens()).isGreaterThan(first.usage().orElseThrow().inputTokens());
        assertThat(u.inputTokensDetails().cachedTokens()).isGreaterThanOrEqualTo(first.usage().orElseThrow().inputTokens() - 1);
        assertThatThrownBy(() -> client.responses().create(hello().previousResponseId("resp_unknown").build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("resp_unknown");
    }

    @Test
    void forcedFunctionCallValidatesAndTheRoundTripAnswers() {
        JsonNode schema = Params.JSON.readTree(AnthropicClientCompatibilityTest.WEATHER_SCHEMA);
        for (boolean stream : new boolean[] {false, true}) {
            var params = ResponseCreateParams.builder().model("demo").input("Weather in Paris?").maxOutputTokens(1500L)
                    .temperature(1.0).reasoning(Reasoning.builder().effort(ReasoningEffort.NONE).build())
                    .addTool(weatherTool())
                    .putAdditionalBodyProperty("seed", JsonValue.from(5));
            if (stream) params.toolChoice(ToolChoiceOptions.REQUIRED);
            else params.toolChoice(ToolChoiceFunction.builder().name("get_weather").build());
            List<String> types = new ArrayList<>();
            Response r = stream ? streamed(params.build(), types) : client.responses().create(params.build());
            assertThat(r.status().orElseThrow()).as(r.toString()).isEqualTo(ResponseStatus.COMPLETED);
            List<ResponseFunctionToolCall> calls = r.output().stream().filter(ResponseOutputItem::isFunctionCall)
                    .map(ResponseOutputItem::asFunctionCall).toList();
            assertThat(calls).isNotEmpty();
            ResponseFunctionToolCall call = calls.getFirst();
            assertThat(call.name()).isEqualTo("get_weather");
            JsonNode args = Params.JSON.readTree(call.arguments());
            assertThat(JsonSchemaTest.Validator.valid(schema, args, schema)).as(call.arguments()).isTrue();
            if (stream) assertThat(types).contains("response.function_call_arguments.delta", "response.function_call_arguments.done");

            // the client runs the tool and sends the call and its output back; the model answers
            List<ResponseInputItem> input = new ArrayList<>();
            input.add(ResponseInputItem.ofEasyInputMessage(com.openai.models.responses.EasyInputMessage.builder()
                    .role(com.openai.models.responses.EasyInputMessage.Role.USER).content("Weather in Paris?").build()));
            input.add(ResponseInputItem.ofFunctionCall(call));
            input.add(ResponseInputItem.ofFunctionCallOutput(ResponseInputItem.FunctionCallOutput.builder()
                    .callId(call.callId()).output("18 degrees, sunny").build()));
            var followUp = ResponseCreateParams.builder().model("demo").inputOfResponse(input).maxOutputTokens(5L)
                    .temperature(0.0).reasoning(Reasoning.builder().effort(ReasoningEffort.NONE).build())
                    .addTool(weatherTool()).build();
            Response answer = stream ? streamed(followUp, new ArrayList<>()) : client.responses().create(followUp);
            assertThat(answer.output()).isNotEmpty();
            assertThat(answer.usage().orElseThrow().inputTokensDetails().cachedTokens()).isPositive();
        }
    }

    @Test
    void jsonSchemaTextFormatParsesIntoTheClass() {
        var tok = io.ds4j.tokenizer.TestTokenizers.real();
        var bias = JsonValue.from(Map.of(String.valueOf(tok.encodeOne("\"")), 10, String.valueOf(tok.encodeOne("]")), 6,
                String.valueOf(tok.encodeOne("}")), 6));
        var params = ResponseCreateParams.builder().model("demo").input("Judge this.").maxOutputTokens(1500L)
                .temperature(1.0).reasoning(Reasoning.builder().effort(ReasoningEffort.NONE).build())
                .putAdditionalBodyProperty("seed", JsonValue.from(3))
                .putAdditionalBodyProperty("logit_bias", bias)
                .text(OpenAiClientCompatibilityTest.Verdict.class).build();
        var r = client.responses().create(params);
        var verdict = r.output().stream().flatMap(o -> o.message().stream()).flatMap(m -> m.content().stream())
                .flatMap(c -> c.outputText().stream()).findFirst().orElseThrow();
        assertThat(verdict.answer).isNotNull();
        assertThat(verdict.flags).isNotNull();
    }

    @Test
    void errorsMapToTheSdksExceptions() {
        assertThatThrownBy(() -> client.responses().create(hello().model("no-such-model").build()))
                .isInstanceOf(NotFoundException.class).hasMessageContaining("no-such-model");
        assertThatThrownBy(() -> client.responses().create(hello().maxOutputTokens(1_000_000L).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("max_output_tokens");
    }
}
