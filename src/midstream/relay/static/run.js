// The state of one run, folded from its log entries: pure data, no DOM, serializable.
//
// apply(entry) takes entries in seq order and ignores any it has already seen (seq <= this.seq), so
// resuming after the last rendered seq, or hearing an entry twice, never duplicates a character.
// A tool call's state moves only on the server's word: it is "streaming" while its block is open,
// then whatever the log says ("input complete", "validated", "invalid", "running", "done",
// "failed", "compensated", "not started"); nothing here guesses ahead of an event.

export const TOOL_LABELS = {
  streaming: "streaming",
  closed: "input closed, checking",
  cut: "cut short",
  "input complete": "input complete, checking",
  validated: "validated",
  invalid: "invalid",
  denied: "denied by a hook",
  running: "running",
  done: "done",
  recorded: "done earlier (result recorded)",
  failed: "failed",
  compensated: "compensated",
  compensation_failed: "compensation failed",
  "not started": "never started",
};

export const INVALID_REASONS = {
  truncated: "truncated",
  invalid_json: "invalid JSON",
  schema: "fails the tool's schema",
  unknown_tool: "unknown tool",
};

export class RunState {
  constructor(id) {
    this.id = id;
    this.seq = 0;
    this.prompt = "";
    this.items = []; // {type: text|thinking|tool|notice, ...} in order of appearance
    this.responses = {}; // responses seen per lane (an agent run of a workflow; "" for a plain run)
    this.blocks = {}; // "lane:response:index" -> position in items
    this.calls = {}; // tool call id -> position in items
    this.eager = {}; // per lane: tool names streamed eagerly in the current iteration
    this.terminal = null;
    this.reason = null;
    this.error = null;
    this.cancel = null;
    this.cancelRequested = false;
    this.agents = [];
    this.dirty = new Set();
  }

  static restore(saved) {
    const state = Object.assign(new RunState(saved.id), saved);
    state.dirty = new Set(state.items.map((_, k) => k));
    return state;
  }

  save() {
    const { dirty, ...rest } = this;
    return rest;
  }

  get streaming() {
    return this.terminal === null;
  }

  /** The answer's text: every text block, in order (what the reload test compares). */
  get text() {
    return this.items.filter((item) => item.type === "text").map((item) => item.text).join("");
  }

  push(item, agent) {
    item.agent = agent ?? null;
    if (agent && !this.agents.includes(agent)) this.agents.push(agent);
    this.items.push(item);
    this.dirty.add(this.items.length - 1);
    return this.items.length - 1;
  }

  touch(position) {
    if (position !== undefined) this.dirty.add(position);
  }

  blockKey(e) {
    const lane = laneOf(e);
    return `${lane}:${this.responses[lane] || 0}:${e.index}`;
  }

  block(e) {
    const position = this.blocks[this.blockKey(e)];
    return position === undefined ? null : [position, this.items[position]];
  }

  call(id) {
    const position = id == null ? undefined : this.calls[id];
    return position === undefined ? null : [position, this.items[position]];
  }

  notice(text, tone, agent) {
    this.push({ type: "notice", text, tone }, agent);
  }

  apply(e) {
    if (typeof e.seq !== "number" || e.seq <= this.seq) return false;
    this.seq = e.seq;
    const handler = HANDLERS[e.kind];
    if (handler) handler(this, e);
    return true;
  }
}

// A workflow's agents share one log: each agent run's blocks are indexed on their own.
const laneOf = (e) => e.agent_run || e.agent || "";

function setCall(state, e, change) {
  const found = state.call(e.call_id ?? e.id);
  if (!found) return;
  const [position, call] = found;
  change(call);
  state.touch(position);
}

function field(call, key) {
  if (!call.fields[key]) {
    call.fields[key] = { text: "", complete: false, value: undefined, nested: {} };
    call.order.push(key);
  }
  return call.fields[key];
}

const HANDLERS = {
  run_start(s, e) {
    s.prompt = e.prompt || "";
  },
  iteration_start(s, e) {
    s.eager[laneOf(e)] = e.eager || [];
  },
  response_start(s, e) {
    s.responses[laneOf(e)] = (s.responses[laneOf(e)] || 0) + 1;
  },
  block_start(s, e) {
    const key = s.blockKey(e);
    if (e.type === "text" || e.type === "thinking") {
      s.blocks[key] = s.push({ type: e.type, text: "", open: true, partial: false }, e.agent);
    } else if (e.type === "tool_call") {
      const call = {
        type: "tool",
        id: e.id,
        name: e.name || "?",
        mode: (s.eager[laneOf(e)] || []).includes(e.name) ? "eager" : "buffered",
        state: "streaming",
        fields: {},
        order: [],
        bytes: 0,
        reason: null,
        error: null,
        wrapped: null,
        result: null,
        open: true,
      };
      const position = s.push(call, e.agent);
      s.blocks[key] = position;
      if (e.id) s.calls[e.id] = position;
    }
  },
  text_delta(s, e) {
    const found = s.block(e);
    if (found) {
      found[1].text += e.text;
      s.touch(found[0]);
    }
  },
  thinking_delta(s, e) {
    HANDLERS.text_delta(s, e);
  },
  tool_args_delta(s, e) {
    const found = s.block(e);
    if (found) {
      found[1].bytes += new TextEncoder().encode(e.fragment || "").length;
      s.touch(found[0]);
    }
  },
  tool_field_start(s, e) {
    const found = s.block(e);
    if (found) {
      field(found[1], String(e.path[0]));
      s.touch(found[0]);
    }
  },
  tool_field_delta(s, e) {
    const found = s.block(e);
    if (!found) return;
    const f = field(found[1], String(e.path[0]));
    if (e.path.length === 1) f.text += e.text;
    else f.nested[e.path.slice(1).join(".")] = (f.nested[e.path.slice(1).join(".")] || "") + e.text;
    s.touch(found[0]);
  },
  tool_field_complete(s, e) {
    const found = s.block(e);
    if (!found) return;
    const f = field(found[1], String(e.path[0]));
    if (e.path.length === 1) {
      f.complete = true;
      f.value = e.value;
      f.nested = {};
    }
    s.touch(found[0]);
  },
  block_stop(s, e) {
    const found = s.block(e);
    if (!found) return;
    const [position, item] = found;
    item.open = false;
    if (item.type === "tool") {
      if (item.state === "streaming") item.state = e.complete === false ? "cut" : "closed";
    } else if (e.complete === false) {
      item.partial = true;
    }
    s.touch(position);
  },
  tool_call_ready(s, e) {
    setCall(s, e, (c) => {
      if (["streaming", "closed"].includes(c.state)) c.state = "input complete";
    });
  },
  tool_call_invalid(s, e) {
    HANDLERS.tool_invalid_input(s, e);
  },
  tool_invalid_input(s, e) {
    setCall(s, e, (c) => {
      c.state = "invalid";
      c.reason = e.reason;
      c.error = e.error || c.error;
      c.wrapped = e.wrapped || { INVALID_JSON: e.raw };
    });
  },
  tool_ready(s, e) {
    setCall(s, e, (c) => {
      c.state = "validated";
    });
  },
  tool_denied(s, e) {
    setCall(s, e, (c) => {
      c.state = "denied";
      c.error = e.reason;
    });
  },
  tool_started(s, e) {
    setCall(s, e, (c) => {
      c.state = "running";
    });
  },
  tool_finished(s, e) {
    setCall(s, e, (c) => {
      c.state = e.status === "skipped" ? "recorded" : "done";
      c.result = e.content || JSON.stringify(e.result);
    });
  },
  tool_failed(s, e) {
    setCall(s, e, (c) => {
      c.state = "failed";
      c.reason = e.reason;
      c.error = e.error;
    });
  },
  tool_compensated(s, e) {
    setCall(s, e, (c) => {
      c.state = e.status === "compensated" ? "compensated" : "compensation_failed";
      if (e.error) c.error = e.error;
    });
  },
  retry(s, e) {
    const how = e.mode === "prefill" ? `continuing after ${e.kept} characters` : "asked again from the start";
    s.notice(`Retry ${e.attempt} (${e.reason.replace("_", " ")}): ${how}, max_tokens ${e.max_tokens}`, "warn", e.agent);
  },
  fallback(s, e) {
    s.notice(`${e.tool} sent invalid input ${e.invalid} time(s) while streamed eagerly: buffered from now on`, "warn", e.agent);
  },
  stream_error(s, e) {
    s.notice(`Stream error (${e.error_kind || e.type || "error"}): ${e.message || ""}`, "error", e.agent);
  },
  hook(s, e) {
    const outcome = e.outcome || {};
    if (outcome.status && outcome.status !== "ok") {
      s.notice(`Hook ${outcome.event || ""} ${outcome.hook || ""}: ${outcome.status}`, "warn", e.agent);
    }
  },
  cancel(s, e) {
    s.cancel = { reason: e.reason, phase: e.phase, notStarted: e.not_started || [] };
    for (const id of e.not_started || []) {
      setCall(s, { call_id: id }, (c) => {
        c.state = "not started";
      });
    }
    s.notice(`Cancelled while ${e.phase}: ${e.reason}`, "cancel", e.agent);
  },
  handoff_start(s, e) {
    s.notice(`Handoff: ${e.sender} → ${e.receiver} (started when the call was ${e.when})`, "info", e.agent);
  },
  handoff_end(s, e) {
    s.notice(`Handoff to ${e.receiver} ended ${e.terminal}${e.reason ? `: ${e.reason}` : ""}`, "info", e.agent);
  },
  handoff_dropped(s, e) {
    s.notice(`Handoff to ${e.receiver} dropped: ${e.reason}`, "warn", e.agent);
  },
  alert(s, e) {
    s.notice(`Alert: ${e.metric} is ${e.value}, above its threshold ${e.threshold}`, "warn", e.agent);
  },
  agent_end(s, e) {
    s.notice(`${e.agent || "agent"} ended ${e.terminal}${e.reason ? `: ${e.reason}` : ""}`, e.terminal === "completed" ? "info" : "warn", e.agent);
  },
  run_end(s, e) {
    s.terminal = e.terminal;
    s.reason = e.reason || null;
    s.error = e.error || null;
    s.items.forEach((item, position) => {
      if ((item.type === "text" || item.type === "thinking") && item.open) {
        item.open = false;
        item.partial = e.terminal !== "completed";
        s.touch(position);
      } else if (item.type === "tool" && (item.state === "streaming" || item.open)) {
        item.open = false;
        item.state = "cut";
        s.touch(position);
      }
    });
  },
};
