// Markdown to DOM, safely: every piece of text becomes a Text node (textContent), never HTML.
//
// A small CommonMark subset, what answers use: ATX and setext headings, paragraphs, fenced and
// indented code, block quotes, ordered and bullet lists, tables, rules; inline code, emphasis,
// strong, strikethrough, links and autolinks. Raw HTML is shown as the text it is. A link keeps its
// href only for http:, https: and mailto: URLs (a javascript: or data: URL is shown as text), and
// opens in a new tab without a referrer. Images are not loaded: their alt text links to them.
//
// renderMarkdown(text, healed) -> DocumentFragment. Streaming text is healed first (heal.js, the
// terminal's rules); a complete block is rendered exactly as received.

import { heal } from "./heal.js";

const SAFE_SCHEMES = /^(https?:|mailto:)/i;
const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})([^`]*)$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}((?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const BULLET = /^( {0,3})([-*+])([ \t]+)(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])([ \t]+)(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const TABLE_DELIMITER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const BLANK = /^\s*$/;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

export function safeHref(url) {
  const trimmed = url.trim().replace(/[\u0000-\u0020]/g, "");
  return SAFE_SCHEMES.test(trimmed) ? url.trim() : null;
}

export function renderMarkdown(text, streaming = false) {
  const fragment = document.createDocumentFragment();
  blocks((streaming ? heal(text) : text).split("\n"), fragment);
  return fragment;
}

function splitRow(row) {
  let body = row.trim();
  if (body.startsWith("|")) body = body.slice(1);
  if (body.endsWith("|") && !body.endsWith("\\|")) body = body.slice(0, -1);
  return body.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function blocks(lines, parent) {
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) {
      const p = el("p");
      inline(paragraph.join("\n").trim(), p);
      parent.append(p);
      paragraph = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (BLANK.test(line)) {
      flush();
      i++;
    } else if ((m = FENCE_OPEN.exec(line)) || (m = /^ {0,3}(~{3,})(.*)$/.exec(line))) {
      flush();
      const marker = m[1];
      const body = [];
      i++;
      while (i < lines.length) {
        const t = lines[i].trim();
        if (t.length >= marker.length && t === marker[0].repeat(t.length)) {
          i++;
          break;
        }
        body.push(lines[i]);
        i++;
      }
      const pre = el("pre");
      const code = el("code");
      const lang = m[2].trim().split(/\s+/)[0];
      if (lang) code.dataset.lang = lang;
      code.textContent = body.join("\n");
      pre.append(code);
      parent.append(pre);
    } else if ((m = HEADING.exec(line))) {
      flush();
      const h = el(`h${m[1].length}`);
      inline(m[2] || "", h);
      parent.append(h);
      i++;
    } else if (paragraph.length && (m = SETEXT.exec(line))) {
      const h = el(m[1][0] === "=" ? "h1" : "h2");
      inline(paragraph.join("\n").trim(), h);
      paragraph = [];
      parent.append(h);
      i++;
    } else if (RULE.test(line)) {
      flush();
      parent.append(el("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const quote = el("blockquote");
      blocks(inner, quote);
      parent.append(quote);
    } else if (BULLET.test(line) || ORDERED.test(line)) {
      flush();
      i = list(lines, i, parent);
    } else if (
      !paragraph.length &&
      line.trim().startsWith("|") &&
      i + 1 < lines.length &&
      TABLE_DELIMITER.test(lines[i + 1]) &&
      lines[i + 1].includes("-")
    ) {
      i = table(lines, i, parent);
    } else if (!paragraph.length && /^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || BLANK.test(lines[i]))) {
        body.push(lines[i].replace(/^( {4}|\t)/, ""));
        i++;
      }
      while (body.length && BLANK.test(body[body.length - 1])) body.pop();
      const pre = el("pre");
      const code = el("code");
      code.textContent = body.join("\n");
      pre.append(code);
      parent.append(pre);
    } else {
      paragraph.push(line);
      i++;
    }
  }
  flush();
}

function list(lines, i, parent) {
  const first = BULLET.exec(lines[i]) || ORDERED.exec(lines[i]);
  const ordered = !BULLET.test(lines[i]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && first[2] !== "1") node.start = Number(first[2]);
  let loose = false;
  while (i < lines.length) {
    const m = ordered ? ORDERED.exec(lines[i]) : BULLET.exec(lines[i]);
    if (!m) break;
    const indent = m[0].length - m[m.length - 1].length;
    const item = [m[m.length - 1]];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (BLANK.test(line)) {
        const next = lines[i + 1];
        if (next !== undefined && next.length - next.trimStart().length >= indent) {
          item.push("");
          loose = true;
          i++;
          continue;
        }
        break;
      }
      const lead = line.length - line.trimStart().length;
      if (lead >= indent) item.push(line.slice(indent));
      else if (BULLET.test(line) || ORDERED.test(line) || HEADING.test(line) || QUOTE.test(line)) break;
      else item.push(line); // a lazy continuation line
      i++;
    }
    const li = el("li");
    blocks(item, li);
    node.append(li);
    if (i < lines.length && BLANK.test(lines[i])) {
      const next = lines[i + 1];
      if (next !== undefined && (ordered ? ORDERED : BULLET).test(next)) {
        loose = true;
        i++;
      }
    }
  }
  if (!loose) {
    for (const li of node.children) {
      if (li.children.length === 1 && li.firstElementChild.tagName === "P") {
        li.append(...li.firstElementChild.childNodes);
        li.firstElementChild.remove();
      }
    }
  }
  parent.append(node);
  return i;
}

function table(lines, i, parent) {
  const head = splitRow(lines[i]);
  const aligns = splitRow(lines[i + 1]).map((c) =>
    c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : "",
  );
  const node = el("table");
  const thead = el("thead");
  const tr = el("tr");
  head.forEach((cell, k) => {
    const th = el("th");
    if (aligns[k]) th.style.textAlign = aligns[k];
    inline(cell, th);
    tr.append(th);
  });
  thead.append(tr);
  node.append(thead);
  const tbody = el("tbody");
  i += 2;
  while (i < lines.length && lines[i].trim().startsWith("|")) {
    const row = el("tr");
    const cells = splitRow(lines[i]);
    head.forEach((_, k) => {
      const td = el("td");
      if (aligns[k]) td.style.textAlign = aligns[k];
      inline(cells[k] || "", td);
      row.append(td);
    });
    tbody.append(row);
    i++;
  }
  node.append(tbody);
  const wrap = el("div", "table-wrap");
  wrap.append(node);
  parent.append(wrap);
  return i;
}

// -- inline ------------------------------------------------------------------------------------------

const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

function closing(text, from, marker) {
  // The next run of exactly `marker` that can close (not preceded by a space).
  let k = from;
  for (;;) {
    k = text.indexOf(marker, k);
    if (k < 0) return -1;
    const before = text[k - 1];
    const after = text[k + marker.length];
    const runLonger = after === marker[0] && marker.length < 2;
    if (k > from && before !== " " && before !== "\n" && !runLonger) {
      if (marker[0] !== "_" || !after || !/[\p{L}\p{N}]/u.test(after)) return k;
    }
    k += marker.length;
  }
}

function inline(text, parent) {
  let buffer = "";
  const out = () => {
    if (buffer) parent.append(document.createTextNode(buffer));
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if (c === "\\" && i + 1 < text.length && PUNCT.includes(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
    } else if (c === "\\" && text[i + 1] === "\n") {
      out();
      parent.append(el("br"));
      i += 2;
    } else if (c === "`") {
      const run = /^`+/.exec(rest)[0];
      const end = text.indexOf(run, i + run.length);
      if (end < 0) {
        buffer += run;
        i += run.length;
        continue;
      }
      out();
      const code = el("code");
      let body = text.slice(i + run.length, end).replace(/\n/g, " ");
      if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ") && body.trim()) body = body.slice(1, -1);
      code.textContent = body;
      parent.append(code);
      i = end + run.length;
    } else if ((c === "*" || c === "_" || c === "~") && (m = /^(\*\*|__|~~|\*|_)/.exec(rest))) {
      const marker = m[1];
      const prev = text[i - 1];
      const next = text[i + marker.length];
      const intraword = marker[0] === "_" && prev && /[\p{L}\p{N}]/u.test(prev);
      const end = !next || /\s/.test(next) || intraword ? -1 : closing(text, i + marker.length, marker);
      if (end < 0) {
        buffer += marker;
        i += marker.length;
        continue;
      }
      out();
      const tag = marker === "~~" ? "del" : marker.length === 2 ? "strong" : "em";
      const node = el(tag);
      inline(text.slice(i + marker.length, end), node);
      parent.append(node);
      i = end + marker.length;
    } else if ((c === "[" || (c === "!" && text[i + 1] === "[")) && (m = link(text, c === "!" ? i + 1 : i))) {
      out();
      const href = safeHref(m.url);
      const label = c === "!" ? m.label || m.url : m.label;
      if (href === null) {
        const span = el("span", "unsafe-link");
        span.title = `link not followed: ${m.url}`;
        inline(label, span);
        parent.append(span);
      } else {
        const a = el("a");
        a.href = href;
        a.rel = "noopener noreferrer nofollow";
        a.target = "_blank";
        if (c === "!") a.className = "image-link";
        inline(label, a);
        parent.append(a);
      }
      i = m.end;
    } else if (c === "<" && (m = /^<((?:https?:\/\/|mailto:)[^\s<>]*)>/i.exec(rest))) {
      out();
      const a = el("a");
      a.href = m[1];
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
      a.textContent = m[1];
      parent.append(a);
      i += m[0].length;
    } else if (c === "\n" && / {2,}$/.test(buffer)) {
      buffer = buffer.replace(/ +$/, "");
      out();
      parent.append(el("br"));
      i++;
    } else {
      buffer += c;
      i++;
    }
  }
  out();
}

function link(text, i) {
  // [label](url "title") starting at i; balanced brackets in the label, no newline in the URL.
  let depth = 0;
  let k = i;
  for (; k < text.length; k++) {
    if (text[k] === "\\") k++;
    else if (text[k] === "[") depth++;
    else if (text[k] === "]" && --depth === 0) break;
  }
  if (k >= text.length || text[k + 1] !== "(") return null;
  let close = k + 2;
  for (let open = 1; close < text.length; close++) {
    if (text[close] === "\\") close++;
    else if (text[close] === "(") open++;
    else if (text[close] === ")" && --open === 0) break;
  }
  if (close >= text.length) return null; // balanced parentheses, as CommonMark allows in a URL
  const inside = text.slice(k + 2, close).trim();
  if (inside.includes("\n")) return null;
  const url = inside.replace(/\s+"[^"]*"$/, "").replace(/^<(.*)>$/, "$1");
  return { label: text.slice(i + 1, k), url, end: close + 1 };
}
