// The Vercel AI SDK against the midstream simulator: one JSON line per (client, provider, case) cell.
// Usage: node clients.mjs BASE_URL   (interop/run.py starts the simulator and reads these lines)
import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, Output, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const base = process.argv[2];
const key = "sim-key";
const anthropic = createAnthropic({ baseURL: `${base}/v1`, apiKey: key });
const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey: key });
const google = createGoogleGenerativeAI({ baseURL: `${base}/v1beta`, apiKey: key });
const PROVIDERS = {
  anthropic: () => anthropic("claude-sonnet-4-5"),
  "openai-chat": () => openai.chat("gpt-4.1-mini"),
  "openai-responses": () => openai.responses("gpt-4.1-mini"),
  gemini: () => google("gemini-2.5-flash"),
};
const LONG = 1100;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function clearFaults() {
  await fetch(`${base}/_sim/requests`, { method: "DELETE" });
}

const CASES = {
  async text(model) {
    const result = streamText({ model, prompt: "interop text", maxRetries: 0 });
    const text = await result.text;
    check(text === "Rivers carve valleys over thousands of years.", `text ${JSON.stringify(text)}`);
  },
  async long_argument(model) {
    let seen = "";
    const save_note = tool({
      description: "save a note",
      inputSchema: z.object({ content: z.string() }),
      execute: async ({ content }) => {
        seen = content;
        return "saved";
      },
    });
    const result = streamText({ model, prompt: "interop long", tools: { save_note }, stopWhen: stepCountIs(3), maxRetries: 0 });
    const text = await result.text;
    check(seen.length === LONG, `argument of ${seen.length} characters`);
    check(text.includes("Saved the note."), `final ${JSON.stringify(text)}`);
  },
  async two_turn_loop(model) {
    const get_weather = tool({
      description: "the weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => `18 C and sunny in ${city}`,
    });
    const result = await generateText({ model, prompt: "interop weather", tools: { get_weather }, stopWhen: stepCountIs(3), maxRetries: 0 });
    check(result.steps.length === 2, `${result.steps.length} steps`);
    check(result.text === "It is 18 C in Paris.", `final ${JSON.stringify(result.text)}`);
  },
  async max_tokens(model) {
    const result = streamText({ model, prompt: "interop essay", maxOutputTokens: 20, maxRetries: 0 });
    const reason = await result.finishReason;
    check(reason === "length", `finish reason ${reason}`);
  },
  async mid_stream_error(model) {
    const result = streamText({ model, prompt: "interop break", maxRetries: 0, onError: () => {} });
    let error = false;
    for await (const part of result.fullStream) if (part.type === "error") error = true;
    check(error, "no error seen: the cut answer passed for a whole one");
  },
  async retry_after_429(model) {
    await clearFaults();
    const result = await generateText({ model, prompt: "interop busy", maxRetries: 2 });
    check(result.text === "Served after one retry.", `text ${JSON.stringify(result.text)}`);
  },
  async structured_output(model) {
    const schema = z.object({ city: z.string(), nights: z.number().int(), tags: z.array(z.string()) });
    const result = await generateText({ model, prompt: "plan a trip", output: Output.object({ schema }), maxRetries: 0 });
    check(Number.isInteger(result.output.nights), `output ${JSON.stringify(result.output)}`);
  },
  async tool_choice(model) {
    const lookup = tool({ description: "look up", inputSchema: z.object({ q: z.string() }) });
    const book = tool({ description: "book", inputSchema: z.object({ city: z.string() }) });
    const result = await generateText({
      model,
      prompt: "plan a trip",
      tools: { lookup, book },
      toolChoice: { type: "tool", toolName: "book" },
      maxRetries: 0,
    });
    const names = result.toolCalls.map((call) => call.toolName);
    check(names.length === 1 && names[0] === "book", `calls ${JSON.stringify(names)}`);
  },
};

for (const [provider, make] of Object.entries(PROVIDERS)) {
  for (const [name, run] of Object.entries(CASES)) {
    let outcome = "ok";
    try {
      await Promise.race([run(make()), new Promise((_, fail) => setTimeout(() => fail(new Error("timed out")), 30000))]);
    } catch (error) {
      outcome = `fail: ${String(error?.message ?? error).split("\n")[0].slice(0, 100)}`;
    }
    console.log(JSON.stringify({ client: "vercel-ai", provider, case: name, outcome }));
  }
}
process.exit(0);
