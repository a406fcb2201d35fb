// The page: start a run, watch it stream, stop it, reload and carry on; the run list and figures.
//
// It talks to the relay's documented HTTP API only (POST /v1/runs, GET /v1/runs, the events SSE,
// POST .../cancel, GET .../summary), so it works the same against one `midstream serve` or a fleet.
// A run's state (run.js) and the seq it has reached are kept in sessionStorage: a reload restores
// them and reads the events after that seq (?after=), and a dropped connection resumes through the
// EventSource's Last-Event-ID. Everything the model sends goes into the DOM as text (markdown.js).

import { renderMarkdown } from "./markdown.js";
import { INVALID_REASONS, RunState, TOOL_LABELS } from "./run.js";

const KINDS = [
  "run_start", "iteration_start", "response_start", "block_start", "text_delta", "thinking_delta",
  "signature_delta", "citation_delta", "tool_args_delta", "block_stop", "usage_update", "response_end",
  "stream_error", "unknown", "tool_field_start", "tool_field_delta", "tool_field_complete",
  "tool_call_ready", "tool_call_invalid", "tool_ready", "tool_invalid_input", "tool_denied",
  "tool_started", "tool_finished", "tool_failed", "tool_compensated", "hook", "retry", "fallback",
  "cancel", "run_end", "message",
  // a workflow's entries (midstream.relay.workflow): one lane per agent
  "handoff_start", "handoff_end", "handoff_dropped", "alert", "agent_end", "workflow_end", "blackboard", "adaptive",
];
const SAVE_EVERY_MS = 400;
const STORE = "midstream.run.";
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { accept: "application/json" }, ...options });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

// -- one run on screen ----------------------------------------------------------------------------------

class RunView {
  constructor(id) {
    const saved = sessionStorage.getItem(STORE + id);
    this.state = saved ? RunState.restore(JSON.parse(saved)) : new RunState(id);
    this.nodes = [];
    this.source = null;
    this.frame = 0;
    this.savedAt = 0;
    this.connection = "connecting";
    this.transcript = $("#transcript");
    this.transcript.replaceChildren();
    this.userNode = el("div", { class: "turn user", "aria-label": "Prompt" });
    this.transcript.append(this.userNode);
    this.schedule();
  }

  start() {
    if (this.state.terminal === null) this.connect();
    else this.finished();
  }

  connect() {
    const url = `/v1/runs/${encodeURIComponent(this.state.id)}/events?after=${this.state.seq}`;
    const source = new EventSource(url);
    this.source = source;
    const onEntry = (message) => {
      let entry;
      try {
        entry = JSON.parse(message.data);
      } catch {
        return;
      }
      if (this.state.apply(entry)) this.schedule();
      if (entry.kind === "run_end") {
        source.close();
        this.finished();
      }
    };
    for (const kind of KINDS) source.addEventListener(kind, onEntry);
    source.addEventListener("resync", (message) => {
      const { earliest } = JSON.parse(message.data);
      this.state.notice(`Events ${this.state.seq + 1} to ${earliest - 1} were trimmed from the log`, "warn");
      this.schedule();
    });
    source.onopen = () => {
      this.connection = "open";
      this.schedule();
    };
    source.onerror = () => {
      if (this.state.terminal !== null) return;
      if (source.readyState === EventSource.CLOSED) {
        // 204 (nothing more will come) or an error status: ask the run's status what happened.
        this.connection = "closed";
        this.checkStatus();
      } else {
        this.connection = "reconnecting"; // the browser retries with Last-Event-ID
      }
      this.schedule();
    };
  }

  async checkStatus() {
    try {
      const status = await api(`/v1/runs/${encodeURIComponent(this.state.id)}`);
      if (status.state === "ended" && status.last_seq <= this.state.seq) return;
      setTimeout(() => this.source === null || this.source.readyState === EventSource.CLOSED ? this.connect() : null, 1000);
    } catch (error) {
      this.failure = `This run cannot be read: ${error.message}`;
      this.schedule();
    }
  }

  close() {
    if (this.source) this.source.close();
    this.source = null;
    this.save();
    cancelAnimationFrame(this.frame);
  }

  save() {
    try {
      sessionStorage.setItem(STORE + this.state.id, JSON.stringify(this.state.save()));
    } catch {
      sessionStorage.removeItem(STORE + this.state.id); // too large to keep: a reload replays instead
    }
    this.savedAt = performance.now();
  }

  async stop() {
    if (this.state.terminal !== null || this.state.cancelRequested) return;
    this.state.cancelRequested = true;
    this.schedule();
    try {
      await api(`/v1/runs/${encodeURIComponent(this.state.id)}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ reason: "stopped from the web page" }),
      });
    } catch (error) {
      this.state.cancelRequested = false;
      this.failure = `Stop failed: ${error.message}`;
      this.schedule();
    }
  }

  async finished() {
    this.schedule();
    this.save();
    try {
      renderDetails(await api(`/v1/runs/${encodeURIComponent(this.state.id)}/summary`));
    } catch {
      $("#details").hidden = true;
    }
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const state = this.state;
    this.userNode.textContent = state.prompt;
    let lastAgent = this.nodes.length ? state.items[this.nodes.length - 1].agent : null;
    for (const position of [...state.dirty].sort((a, b) => a - b)) {
      const item = state.items[position];
      if (!this.nodes[position]) {
        if (item.agent && item.agent !== lastAgent) {
          this.transcript.append(el("h3", { class: "lane", text: `agent: ${item.agent}` }));
        }
        lastAgent = item.agent;
        this.nodes[position] = this.transcript.appendChild(create(item));
      }
      update(this.nodes[position], item);
    }
    state.dirty.clear();
    this.transcript.setAttribute("aria-busy", String(state.terminal === null));
    renderStatus(state, this.connection, this.failure);
    if (performance.now() - this.savedAt > SAVE_EVERY_MS) this.save();
  }
}

function create(item) {
  if (item.type === "text") return el("div", { class: "answer turn" });
  if (item.type === "thinking") {
    return el("details", { class: "thinking" }, el("summary", { text: "Thinking" }), el("div"));
  }
  if (item.type === "notice") return el("p", { class: "notice", dataset: { tone: item.tone }, text: item.text });
  const header = el(
    "header",
    {},
    el("span", { class: "name", text: item.name }),
    el("span", { class: "badge mode", text: item.mode, title: item.mode === "eager" ? "arguments streamed as the model writes them" : "arguments checked by the provider before they stream" }),
    el("span", { class: "tool-state", "aria-live": "polite" }),
    el("span", { class: "badge bytes" }),
  );
  return el("section", { class: "tool", "aria-label": `Tool call ${item.name}`, dataset: { callId: item.id || "" } }, header, el("dl", { class: "fields" }));
}

function update(node, item) {
  if (item.type === "text") {
    node.dataset.open = String(item.open);
    node.dataset.partial = String(item.partial);
    node.replaceChildren(renderMarkdown(item.text, item.open));
    if (item.partial) node.append(el("p", { class: "partial-mark", text: "partial: the response did not finish" }));
  } else if (item.type === "thinking") {
    node.dataset.partial = String(item.partial);
    node.querySelector("summary").textContent = `Thinking (${item.text.length} characters${item.open ? ", streaming" : ""})`;
    node.querySelector("div").textContent = item.text;
  } else if (item.type === "tool") {
    updateTool(node, item);
  }
}

function updateTool(node, call) {
  node.dataset.state = call.state;
  node.querySelector(".tool-state").textContent = TOOL_LABELS[call.state] || call.state;
  node.querySelector(".bytes").textContent = `${call.bytes} bytes`;
  const fields = node.querySelector(".fields");
  fields.replaceChildren();
  for (const key of call.order) {
    const f = call.fields[key];
    const nested = Object.values(f.nested);
    const value = f.complete
      ? typeof f.value === "string" ? f.value : JSON.stringify(f.value)
      : f.text || (nested.length ? nested.join(" · ") : "");
    // A field is streaming while its call's block is open; after that, complete or incomplete.
    const mark = f.complete ? "true" : call.open ? "false" : "cut";
    const label = { true: "complete", false: "streaming", cut: "incomplete" }[mark];
    fields.append(
      el("dt", {}, key, el("span", { class: "field-state", dataset: { complete: mark }, text: label })),
      el("dd", { dataset: { complete: mark, field: key }, text: value }),
    );
  }
  for (const extra of node.querySelectorAll(".why, .raw, .result")) extra.remove();
  if (call.state === "invalid") {
    const reason = INVALID_REASONS[call.reason] || call.reason;
    node.append(el("p", { class: "why", text: `Not executed: input ${reason}${call.error ? ` (${call.error})` : ""}` }));
    node.append(el("pre", { class: "raw", text: `sent back to the model as ${JSON.stringify(call.wrapped)}` }));
  } else if (["failed", "denied", "compensation_failed", "cut"].includes(call.state)) {
    const why = call.state === "cut" ? "the response ended before this call's input was complete: never executed" : `${call.reason || ""} ${call.error || ""}`.trim();
    if (why) node.append(el("p", { class: "why", text: why }));
  }
  if (call.result !== null && call.result !== undefined) {
    node.append(el("pre", { class: "result", text: `result: ${call.result}` }));
  }
}

function renderStatus(state, connection, failure) {
  const status = $("#status");
  status.dataset.terminal = state.terminal || "";
  let text;
  if (failure) text = failure;
  else if (state.terminal !== null) {
    text = `Run ${state.terminal}${state.reason ? `: ${state.reason}` : ""}${state.error ? ` (${state.error})` : ""}`;
    if (state.terminal !== "completed") text += ". What is shown is partial.";
    if (state.cancel) {
      const compensated = state.items.filter((i) => i.type === "tool" && i.state === "compensated").length;
      text += ` ${compensated} side effect(s) compensated, ${state.cancel.notStarted.length} call(s) never started.`;
    }
  } else if (state.cancelRequested) text = "Stopping: waiting for the server to confirm…";
  else if (connection === "reconnecting") text = `Connection lost: reconnecting from seq ${state.seq}…`;
  else text = `Streaming (seq ${state.seq})`;
  status.textContent = text;
  const running = state.terminal === null;
  $("#stop").disabled = !running || state.cancelRequested;
  $("#send").disabled = running;
}

function renderDetails(summary) {
  $("#details").hidden = false;
  const tokens = summary.tokens || {};
  const rows = [
    ["State", `${summary.terminal || summary.state}${summary.reason ? ` (${summary.reason})` : ""}`],
    ["Time to first token", seconds(summary.ttft_s)],
    ["Duration", seconds(summary.duration_s)],
    ["Tokens in / out", `${tokens.input ?? 0} / ${tokens.output ?? 0}`],
    ["Responses", String(summary.responses)],
    ["Retries", String(summary.retries)],
    ["Fallbacks", String(summary.fallbacks)],
  ];
  $("#figures").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const tools = summary.tools || [];
  $("#tool-figures").replaceChildren(
    ...(tools.length
      ? [el("table", {},
          el("caption", { text: "Tool calls" }),
          el("thead", {}, el("tr", {}, ...["Tool", "Call id", "First argument byte", "Final state"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...tools.map((t) => el("tr", {}, ...[t.name, t.id, seconds(t.first_arg_s), t.state].map((v) => el("td", { text: String(v ?? "–") }))))))]
      : []),
  );
  $("#timeline").replaceChildren(
    ...(summary.timeline || []).map((row) => {
      const detail = [row.name, row.tool, row.reason, row.terminal, row.agent].filter(Boolean).join(" · ");
      return el("li", {}, el("span", { text: `+${row.t.toFixed(3)}s` }), el("span", { text: `#${row.seq}` }), el("span", { text: `${row.kind}${detail ? ` — ${detail}` : ""}` }));
    }),
  );
}

// -- the run list ---------------------------------------------------------------------------------------

async function showRuns() {
  const body = $("#runs tbody");
  body.replaceChildren(el("tr", {}, el("td", { colspan: "6", text: "Loading…" })));
  let runs;
  try {
    runs = (await api("/v1/runs?limit=30")).runs;
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "6", text: `Cannot list runs: ${error.message}` })));
    return;
  }
  if (!runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "6", text: "No runs yet: start one from the chat page." })));
    return;
  }
  body.replaceChildren(
    ...runs.map((run) => {
      const row = el(
        "tr",
        { dataset: { run: run.id } },
        el("td", {}, el("a", { href: `#run=${encodeURIComponent(run.id)}`, text: run.meta?.prompt || run.id })),
        el("td", { class: "state", text: run.terminal || run.state }),
        el("td", { class: "ttft", text: "…" }),
        el("td", { class: "duration", text: "…" }),
        el("td", { class: "tokens", text: "…" }),
        el("td", { text: new Date(run.created_at * 1000).toLocaleString() }),
      );
      fillSummary(row, run);
      return row;
    }),
  );
}

async function fillSummary(row, run) {
  const key = `midstream.summary.${run.id}`;
  let summary = run.state === "ended" ? JSON.parse(sessionStorage.getItem(key) || "null") : null;
  try {
    summary ??= await api(`/v1/runs/${encodeURIComponent(run.id)}/summary`);
  } catch {
    return;
  }
  if (summary.state === "ended") sessionStorage.setItem(key, JSON.stringify({ ...summary, timeline: [] }));
  row.querySelector(".ttft").textContent = seconds(summary.ttft_s);
  row.querySelector(".duration").textContent = seconds(summary.duration_s);
  row.querySelector(".tokens").textContent = `${summary.tokens.input} / ${summary.tokens.output}`;
}

// -- pages ----------------------------------------------------------------------------------------------

let current = null;

function route() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const runId = hash.get("run");
  const page = location.hash === "#runs" ? "runs" : "chat";
  $("#chat-view").hidden = page !== "chat";
  $("#runs-view").hidden = page !== "runs";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current.state.id !== runId) {
    current.close();
    current = null;
  }
  if (page === "runs") {
    showRuns();
    return;
  }
  if (runId && !current) {
    $("#details").hidden = true;
    current = new RunView(runId);
    current.start();
  } else if (!runId) {
    $("#transcript").replaceChildren();
    $("#details").hidden = true;
    $("#status").textContent = "";
    $("#send").disabled = false;
    $("#stop").disabled = true;
  }
}

function runRequest(prompt) {
  const request = { prompt };
  const maxTokens = Number.parseInt($("#max-tokens").value, 10);
  if (maxTokens > 0) request.max_tokens = maxTokens;
  return request;
}

async function send(event) {
  event.preventDefault();
  const prompt = $("#prompt").value.trim();
  if (!prompt || (current && current.state.terminal === null)) return;
  $("#send").disabled = true;
  try {
    const run = await api("/v1/runs", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(runRequest(prompt)),
    });
    $("#prompt").value = "";
    location.hash = `run=${encodeURIComponent(run.id)}`;
  } catch (error) {
    $("#status").textContent = `The run could not start: ${error.message}`;
    $("#send").disabled = false;
  }
}

function theme() {
  const order = ["auto", "light", "dark"];
  const saved = localStorage.getItem("midstream.theme") || "auto";
  const apply = (name) => {
    if (name === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = name;
    $("#theme").textContent = `Theme: ${name}`;
    $("#theme").setAttribute("aria-pressed", String(name !== "auto"));
  };
  apply(saved);
  $("#theme").addEventListener("click", () => {
    const next = order[(order.indexOf(localStorage.getItem("midstream.theme") || "auto") + 1) % order.length];
    localStorage.setItem("midstream.theme", next);
    apply(next);
  });
}

function main() {
  theme();
  $("#prompt-form").addEventListener("submit", send);
  $("#prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  $("#stop").addEventListener("click", () => current?.stop());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && current) current.stop();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("pagehide", () => current?.save());
  // For tests and the browser's console: the run on screen, as the page holds it.
  window.midstream = { state: () => current?.state ?? null };
  route();
}

main();
