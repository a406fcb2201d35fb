// Feeds SSE bytes written by midstream's relay adapters to the real client stacks and prints what
// each client ends up holding. Input (stdin): a JSON list of cases; output (stdout): a JSON list of
// results, one per case, in order.
//
// A case: {"client": "ai-sdk" | "ai-sdk-v6" | "ag-ui", "pieces": ["<sse text>", ...], "mode": "send" |
// "resume", "input": <RunAgentInput messages, ag-ui only>}. Each piece arrives as one network read.
//
// ai-sdk: DefaultChatTransport (fetch -> eventsource-parser -> the UIMessageChunk schema) and
// readUIMessageStream (the reducer useChat uses). ag-ui: HttpAgent (fetch -> SSE parser -> the event
// schema -> verifyEvents -> defaultApplyEvents).
import { DefaultChatTransport, readUIMessageStream } from 'ai';
import * as v6 from 'ai-v6';
import { HttpAgent } from '@ag-ui/client';

function bodyOf(pieces) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
}

function fakeFetch(pieces, seen, headers) {
  return async (url, init) => {
    seen.push({ url: String(url), method: init?.method ?? 'GET', body: init?.body ?? null });
    if (pieces === null) return new Response(null, { status: 204 });
    return new Response(bodyOf(pieces), { status: 200, headers });
  };
}

const UI_HEADERS = { 'content-type': 'text/event-stream', 'x-vercel-ai-ui-message-stream': 'v1' };

async function aiSdk(c, lib) {
  const seen = [];
  const errors = [];
  const transport = new lib.DefaultChatTransport({
    api: 'http://relay.test/api/chat',
    fetch: fakeFetch(c.pieces, seen, UI_HEADERS),
  });
  const user = { id: 'u1', role: 'user', parts: [{ type: 'text', text: c.prompt ?? 'hello' }] };
  let stream;
  if (c.mode === 'resume') {
    stream = await transport.reconnectToStream({ chatId: 'chat-1' });
    if (stream === null) return { noStream: true, requests: seen };
  } else {
    stream = await transport.sendMessages({
      chatId: 'chat-1',
      messages: [user],
      abortSignal: undefined,
      trigger: 'submit-message',
      messageId: undefined,
    });
  }
  const [forChunks, forReader] = stream.tee();
  const chunks = [];
  const collecting = (async () => {
    const reader = forChunks.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  })().catch(e => errors.push(String(e?.message ?? e)));
  let last = null;
  const toolStates = {};
  try {
    for await (const message of lib.readUIMessageStream({
      stream: forReader,
      onError: e => errors.push(String(e?.message ?? e)),
    })) {
      last = message;
      for (const part of message.parts) {
        if (part.toolCallId) {
          const states = (toolStates[part.toolCallId] ??= []);
          if (states[states.length - 1] !== part.state) states.push(part.state);
        }
      }
    }
  } catch (e) {
    errors.push(String(e?.message ?? e));
  }
  await collecting;
  return {
    message: last,
    toolStates,
    chunkTypes: chunks.map(x => x.type),
    transient: chunks.filter(x => x.transient).map(x => x.type),
    errors,
    requests: seen,
  };
}

async function agUi(c) {
  const seen = [];
  const errors = [];
  const agent = new HttpAgent({
    url: 'http://relay.test/agui',
    threadId: c.threadId ?? 'thread-1',
    initialMessages: c.messages ?? [],
    fetch: fakeFetch(c.pieces, seen, { 'content-type': 'text/event-stream' }),
  });
  const types = [];
  const custom = [];
  let result = null;
  try {
    const out = await agent.runAgent(
      { runId: c.runId ?? 'run-1' },
      {
        onEvent: ({ event }) => {
          types.push(event.type);
          if (event.type === 'CUSTOM') custom.push(event.name);
          if (event.type === 'RUN_ERROR') errors.push(`RUN_ERROR ${event.code}: ${event.message}`);
        },
      },
    );
    result = out.result ?? null;
  } catch (e) {
    errors.push(String(e?.message ?? e));
  }
  return { messages: agent.messages, types, custom, result, errors, requests: seen };
}

async function main() {
  let text = '';
  for await (const piece of process.stdin) text += piece;
  const cases = JSON.parse(text);
  const results = [];
  for (const c of cases) {
    if (c.client === 'ai-sdk') results.push(await aiSdk(c, { DefaultChatTransport, readUIMessageStream }));
    else if (c.client === 'ai-sdk-v6') results.push(await aiSdk(c, v6));
    else if (c.client === 'ag-ui') results.push(await agUi(c));
    else results.push({ errors: [`unknown client ${c.client}`] });
  }
  process.stdout.write(JSON.stringify(results));
}

// Keep the protocol on stdout: whatever the libraries log goes to stderr.
console.log = console.info = console.warn = console.debug = (...args) => console.error(...args);
main().catch(e => {
  console.error(e);
  process.exit(1);
});
