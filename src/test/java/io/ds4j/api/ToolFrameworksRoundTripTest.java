package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.langchain4j.agent.tool.P;
import dev.langchain4j.agent.tool.ToolExecutionRequest;
import dev.langchain4j.agent.tool.ToolSpecifications;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ToolExecutionResultMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ToolChoice;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.service.tool.DefaultToolExecutor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.ai.chat.prompt.Prompt;
import org.springframework.ai.model.tool.ToolCallingManager;
import org.springframework.ai.model.tool.ToolExecutionResult;
import org.springframework.ai.openai.OpenAiChatOptions;

/**
 * Spring AI's and LangChain4j's own tool machinery against the demo model (random weights): a forced call
 * comes back with its required parameter filled, the framework executes the tool with it, sends the result,
 * and the follow-up (tool_choice relaxed, as both frameworks' users must do to avoid a forced loop) answers.
 * The random model rarely samples a closing quote among the thousands of tokens a string allows, so a logit
 * bias on {@code "} keeps the city short enough for max_tokens (without it the call ends "length" with
 * partial arguments, which both frameworks then fail to parse: they ignore finish_reason).
 */
class ToolFrameworksRoundTripTest extends DemoModelServerTest {
    static final String QUOTE = Integer.toString(io.ds4j.tokenizer.TestTokenizers.real().encodeOne("\""));
    /** The tool (LangChain4j's annotations; Spring AI wraps it below); remembers the cities it was called with. */
    public static class Weather {
        final List<String> cities = new ArrayList<>();

        @dev.langchain4j.agent.tool.Tool("Current weather in a city")
        public String getWeather(@P("the city") String city) {
            cities.add(city);
            return "sunny, 21 C in " + city;
        }
    }

    /** Spring AI's tool input type. */
    public record WeatherRequest(String city) {}

    /**
     * The Spring AI tool with its schema written out (what its annotation processing would generate): its
     * schema generator needs victools 5, while the OpenAI Java SDK used by the other tests needs victools 4.
     */
    static org.springframework.ai.tool.ToolCallback springTool(Weather tools) {
        return org.springframework.ai.tool.function.FunctionToolCallback
                .builder("getWeather", (WeatherRequest r) -> tools.getWeather(r.city()))
                .description("Current weather in a city").inputType(WeatherRequest.class)
                .inputSchema("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":"
                        + "\"the city\"}},\"required\":[\"city\"],\"additionalProperties\":false}")
                .build();
    }

    @Test
    void springAiForcedCallRoundTrip() {
        for (int seed = 1; seed <= 2; seed++) {
            Weather tools = new Weather();
            var forced = OpenAiChatOptions.builder().baseUrl("http://localhost:" + port + "/v1").apiKey("unused")
                    .model("demo").toolCallbacks(springTool(tools)).toolChoice("required").strict(true)
                    .maxTokens(600).temperature(1.0).seed(seed).logitBias(Map.of(QUOTE, 9))
                    .extraBody(Map.of("thinking", false)).build();
            var model = org.springframework.ai.openai.OpenAiChatModel.builder().options(forced).build();
            Prompt prompt = new Prompt(List.of(new org.springframework.ai.chat.messages.UserMessage("Weather in Paris?")), forced);
            var first = model.call(prompt);
            assertThat(first.hasToolCalls()).as("seed %d: %s", seed, first).isTrue();
            ToolExecutionResult executed = ToolCallingManager.builder().build().executeToolCalls(prompt, first);
            assertThat(tools.cities).as("the tool ran with its required parameter").isNotEmpty();
            tools.cities.forEach(c -> assertThat(c).isNotNull());
            var relaxed = OpenAiChatOptions.builder().baseUrl("http://localhost:" + port + "/v1").apiKey("unused")
                    .model("demo").toolCallbacks(springTool(tools)).toolChoice("none").maxTokens(16)
                    .temperature(1.0).seed(seed).extraBody(Map.of("thinking", false)).build();
            var answer = model.call(new Prompt(executed.conversationHistory(), relaxed));
            assertThat(answer.hasToolCalls()).isFalse();
            assertThat(answer.getResult().getOutput().getText()).isNotBlank();
            System.out.printf("spring-ai seed %d: called with %s, then answered %d chars%n", seed, tools.cities,
                    answer.getResult().getOutput().getText().length());
        }
    }

    @Test
    void langChain4jForcedCallRoundTrip() throws Exception {
        for (int seed = 1; seed <= 2; seed++) {
            Weather tools = new Weather();
            OpenAiChatModel model = OpenAiChatModel.builder().baseUrl("http://localhost:" + port + "/v1").apiKey("unused")
                    .modelName("demo").strictTools(true).maxTokens(600).temperature(1.0).seed(seed)
                    .logitBias(Map.of(QUOTE, 9)).customParameters(Map.of("thinking", false)).build();
            var specs = ToolSpecifications.toolSpecificationsFrom(tools);
            List<dev.langchain4j.data.message.ChatMessage> history = new ArrayList<>();
            history.add(UserMessage.from("Weather in Paris?"));
            ChatResponse first = model.chat(ChatRequest.builder().messages(history).toolSpecifications(specs)
                    .toolChoice(ToolChoice.REQUIRED).build());
            AiMessage ai = first.aiMessage();
            assertThat(ai.hasToolExecutionRequests()).as("seed %d: %s", seed, ai).isTrue();
            history.add(ai);
            for (ToolExecutionRequest req : ai.toolExecutionRequests()) {
                var executor = new DefaultToolExecutor(tools, Weather.class.getMethod("getWeather", String.class));
                history.add(ToolExecutionResultMessage.from(req, executor.execute(req, "mem")));
            }
            assertThat(tools.cities).as("the tool ran with its required parameter").isNotEmpty();
            tools.cities.forEach(c -> assertThat(c).isNotNull());
            ChatResponse answer = model.chat(ChatRequest.builder().messages(history).toolSpecifications(specs)
                    .toolChoice(ToolChoice.NONE).maxOutputTokens(16).build());
            assertThat(answer.aiMessage().hasToolExecutionRequests()).isFalse();
            assertThat(answer.aiMessage().text()).isNotBlank();
            System.out.printf("langchain4j seed %d: called with %s, then answered %d chars%n", seed, tools.cities,
                    answer.aiMessage().text().length());
        }
    }
}
