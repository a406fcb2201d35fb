// heal(text): the terminal view's markdown healer (midstream.core.markdown.heal), rule for rule.
//
// A half-streamed answer is healed before it is rendered: an open code fence is closed, open
// emphasis / code spans / strikethrough / a link's URL are closed in order, a marker still arriving
// is dropped, a table being written gets its header closed and a delimiter row, and a lone list,
// heading or rule marker on the last line is dropped. Every word received is kept in place.
// tests/test_web_markdown.py runs this file and the Python healer on the same inputs and requires
// identical output, so the page and the terminal follow one set of rules.
//
// Python's str methods are mirrored exactly: whitespace is what str.isspace() accepts (not JS \s),
// digits are Unicode digits (\p{Nd}, as Python's \d), and "." never stops at "\r".

const WS = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_SET = new RegExp(`^[${WS}]$`, "u");
const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/su;
const BLANK = new RegExp(`^[${WS}]*$`, "u");
const BLOCK_START = /^ {0,3}(?:[-*+][ \t]|\p{Nd}{1,9}[.)][ \t]|>|#{1,6}(?:[ \t]|$))/u;
const HEADING = /^ {0,3}#{1,6}(?:[ \t]|$)/u;
const STUB = /^ {0,3}(?:[-=+*_]{1,2}|#{1,6}|\p{Nd}{1,9}[.)]?)[ \t]*$/u;
const DELIMITER_CELL = new RegExp(`^[${WS}]*:?-+:?[${WS}]*$`, "u");
const PARTIAL_DELIMITER = new RegExp(`^[${WS}]*\\|?[${WS}:|-]*$`, "u");
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

const isSpace = (c) => c !== "" && WS_SET.test(c);
const lstripWs = (s) => s.replace(new RegExp(`^[${WS}]+`, "u"), "");
const rstripWs = (s) => s.replace(new RegExp(`[${WS}]+$`, "u"), "");
const stripWs = (s) => lstripWs(rstripWs(s));
function lstripChars(s, chars) {
  let i = 0;
  while (i < s.length && chars.includes(s[i])) i++;
  return s.slice(i);
}
function rstripChars(s, chars) {
  let i = s.length;
  while (i > 0 && chars.includes(s[i - 1])) i--;
  return s.slice(0, i);
}
const stripChars = (s, chars) => rstripChars(lstripChars(s, chars), chars);

export function heal(text) {
  for (;;) {
    const trimmed = trim(text);
    if (trimmed === text) return close(text);
    text = trimmed;
  }
}

// -- where the end of the text stands ---------------------------------------------------------------

function context(text) {
  const lines = text.split("\n");
  const [fence, start] = scanBlocks(lines);
  if (fence !== null) return { lines, fence, region: start, table: false, inline: null };
  const region = lines.slice(start);
  const last = lines[lines.length - 1];
  const lastStart = text.length - last.length;
  if (isTable(region)) {
    const lastRow = region.length - 1;
    const openRow = last !== "" && lastRow !== 1 && !rowComplete(last);
    const cell = openRow ? lastStart + last.lastIndexOf("|") + 1 : null;
    return { lines, fence: null, region: start, table: true, inline: cell };
  }
  const first = start + inlineStart(region);
  let offset = 0;
  for (const line of lines.slice(0, first)) offset += line.length + 1;
  return { lines, fence: null, region: start, table: false, inline: Math.min(offset, text.length) };
}

function scanBlocks(lines) {
  let fence = null;
  let start = 0;
  lines.forEach((line, i) => {
    if (fence !== null) {
      if (closes(line, fence)) [fence, start] = [null, i + 1];
      return;
    }
    const match = FENCE.exec(line);
    if (match && !(match[1][0] === "`" && match[2].includes("`"))) {
      fence = { char: match[1][0], length: match[1].length, line: i };
    } else if (BLANK.test(line) && i < lines.length - 1) {
      start = i + 1;
    }
  });
  return [fence, Math.min(start, lines.length - 1)];
}

function closes(line, fence) {
  const stripped = stripWs(line);
  const run = stripped.length - lstripChars(stripped, fence.char).length;
  return run >= fence.length && run === stripped.length && line.length - lstripChars(line, " ").length <= 3;
}

function inlineStart(region) {
  for (let i = region.length - 1; i >= 0; i--) {
    if (BLOCK_START.test(region[i])) {
      return HEADING.test(region[i]) && i < region.length - 1 ? i + 1 : i;
    }
  }
  return 0;
}

// -- the two steps: trim what is still arriving, then close what is open -------------------------------

function trim(text) {
  const ctx = context(text);
  const last = ctx.lines[ctx.lines.length - 1];
  const lastStart = text.length - last.length;
  if (ctx.fence !== null) {
    const stripped = stripWs(last);
    const typing =
      stripped !== "" &&
      [...stripped].every((c) => c === ctx.fence.char) &&
      last.length - lstripWs(last).length <= 3;
    return typing && ctx.fence.line < ctx.lines.length - 1 ? text.slice(0, lastStart) : text;
  }
  if (ctx.table) {
    const isDelimiterLine = ctx.lines.length - 1 === ctx.region + 1;
    if (last && !isDelimiterLine && !stripWs(stripChars(stripWs(last), "|"))) return text.slice(0, lastStart);
  } else if (last && STUB.test(last)) {
    return text.slice(0, lastStart);
  }
  if (ctx.inline === null) return text;
  const cut = inlineCut(text.slice(ctx.inline));
  return cut === null ? text : text.slice(0, ctx.inline + cut);
}

function close(text) {
  const ctx = context(text);
  if (ctx.fence !== null) {
    const closer = ctx.fence.char.repeat(ctx.fence.length);
    return text.endsWith("\n") ? `${text}${closer}` : `${text}\n${closer}`;
  }
  if (ctx.table) return closeTable(text, ctx);
  return ctx.inline === null ? text : text + inlineClosers(text.slice(ctx.inline));
}

// -- tables -------------------------------------------------------------------------------------------

const isRow = (line) => lstripWs(line).startsWith("|");

function isTable(region) {
  if (!region.length || !isRow(region[0])) return false;
  if (region.length === 1 || (region.length === 2 && region[1] === "")) return true;
  const second = region[1];
  if (region.length === 2) return Boolean(stripWs(second)) && PARTIAL_DELIMITER.test(second);
  return isDelimiter(second, region[0]);
}

function cells(row) {
  let body = stripWs(row);
  if (body.startsWith("|")) body = body.slice(1);
  if (body.endsWith("|") && !body.endsWith("\\|")) body = body.slice(0, -1);
  return body.split(/(?<!\\)\|/u);
}

function isDelimiter(line, header) {
  const got = cells(line);
  return got.length === cells(closedRow(header)).length && got.every((c) => DELIMITER_CELL.test(c));
}

function rowComplete(line) {
  const stripped = rstripWs(line);
  return stripped.length > 1 && stripped.endsWith("|") && !stripped.endsWith("\\|");
}

function closedRow(line) {
  if (rowComplete(line)) return line;
  const cell = line.slice(line.lastIndexOf("|") + 1);
  return `${rstripWs(line)}${inlineClosers(cell)} |`;
}

function closeTable(text, ctx) {
  const head = ctx.lines.slice(0, ctx.region);
  const region = ctx.lines.slice(ctx.region);
  if (!stripWs(region[0])) return text;
  const header = closedRow(region[0]);
  const width = cells(header).length;
  let rows;
  if (region.length === 1 || (region.length === 2 && region[1] === "")) {
    rows = [header, "|" + " --- |".repeat(width)];
  } else if (region.length === 2) {
    let delimiter = region[1];
    if (!(rowComplete(delimiter) && isDelimiter(delimiter, header))) {
      const typed = cells(delimiter)
        .filter((c) => DELIMITER_CELL.test(c))
        .map(stripWs)
        .slice(0, width);
      delimiter = "| " + [...typed, ...Array(width - typed.length).fill("---")].join(" | ") + " |";
    }
    rows = [header, delimiter];
  } else {
    const last = region[region.length - 1];
    rows = [header, ...region.slice(1, -1), last ? closedRow(last) : last];
  }
  return [...head, ...rows].join("\n");
}

// -- inline -------------------------------------------------------------------------------------------

function flanking(prev, nxt) {
  const prevSpace = prev === "" || isSpace(prev);
  const nextSpace = nxt === "" || isSpace(nxt);
  const prevPunct = prev !== "" && PUNCTUATION.has(prev);
  const nextPunct = nxt !== "" && PUNCTUATION.has(nxt);
  const left = !nextSpace && (!nextPunct || prevSpace || prevPunct);
  const right = !prevSpace && (!prevPunct || nextSpace || nextPunct);
  return [left, right, prevPunct, nextPunct];
}

function canOpenClose(char, prev, nxt) {
  const [left, right, prevPunct, nextPunct] = flanking(prev, nxt);
  if (char === "_") return [left && (!right || prevPunct), right && (!left || nextPunct)];
  return [left, right];
}

class InlineScan {
  constructor(text) {
    this.text = text;
    this.stack = [];
    this.code = null;
    this.linkUrl = false;
    this.dangling = null;
    this.run();
  }

  run() {
    const text = this.text;
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (this.code !== null) {
        i = this.inCode(i);
      } else if (c === "\\") {
        if (i + 1 === text.length) this.dangling = i;
        i += i + 1 < text.length && PUNCTUATION.has(text[i + 1]) ? 2 : 1;
      } else if (c === "`") {
        i = this.backticks(i);
      } else if ("*_~".includes(c)) {
        i = this.delimiters(i);
      } else {
        if (text.startsWith("](", i)) {
          this.linkUrl = true;
          i += 1;
        } else if (c === ")") {
          this.linkUrl = false;
        }
        i += 1;
      }
    }
  }

  runEnd(i) {
    let end = i;
    while (end < this.text.length && this.text[end] === this.text[i]) end++;
    return end;
  }

  inCode(i) {
    if (this.text[i] !== "`") return i + 1;
    const end = this.runEnd(i);
    if (end - i === this.code.length) this.code = null;
    return end;
  }

  backticks(i) {
    const end = this.runEnd(i);
    this.code = { char: "`", length: end - i, pos: i };
    return end;
  }

  delimiters(i) {
    const text = this.text;
    const char = text[i];
    const end = this.runEnd(i);
    let length = end - i;
    if (char === "~" && length !== 2) {
      if (length === 1 && end === text.length) this.dangling = i;
      return end;
    }
    const prev = i > 0 ? text[i - 1] : "";
    const nxt = end < text.length ? text[end] : "";
    const [canOpen, canClose] = canOpenClose(char, prev, nxt);
    if (canClose) length = this.closeRun(char, length);
    if (length && canOpen) this.stack.push({ char, length: Math.min(length, 3), pos: end - length });
    else if (length && end === text.length) this.dangling = end - length;
    return end;
  }

  closeRun(char, length) {
    while (length) {
      let j = -1;
      for (let k = this.stack.length - 1; k >= 0; k--) {
        if (this.stack[k].char === char) {
          j = k;
          break;
        }
      }
      if (j < 0) return length;
      this.stack.length = j + 1;
      const opener = this.stack[j];
      const used = Math.min(length, opener.length);
      opener.length -= used;
      length -= used;
      if (opener.length === 0) this.stack.pop();
    }
    return 0;
  }
}

function inlineCut(text) {
  const scan = new InlineScan(text);
  if (scan.dangling !== null) return scan.dangling;
  const opener = scan.code || (scan.stack.length ? scan.stack[scan.stack.length - 1] : null);
  if (opener === null) return null;
  if (!stripWs(text.slice(opener.pos + opener.length))) return opener.pos;
  let stripped = rstripWs(text);
  if (stripped.endsWith("\\") && (stripped.length - rstripChars(stripped, "\\").length) % 2) {
    stripped = stripped.slice(0, -1);
  }
  return stripped.length < text.length ? stripped.length : null;
}

function inlineClosers(text) {
  const scan = new InlineScan(text);
  let closers = "";
  if (scan.code !== null) closers = (text.endsWith("`") ? " " : "") + "`".repeat(scan.code.length);
  if (scan.linkUrl) closers += ")";
  for (let k = scan.stack.length - 1; k >= 0; k--) closers += scan.stack[k].char.repeat(scan.stack[k].length);
  return closers;
}
