// The playground page: an editor over the policy's files (a textarea above two layers, one
// coloured by the TextMate grammar, one marking diagnostics and the rule that decided), live
// diagnostics from the server's checker, a request form whose answer is `gateway explain`'s,
// and the role × duty matrix and reachability table. Every answer comes from the server, which
// runs the gateway's own language code; this file only draws.
import { compileGrammar, highlightHtml } from "/highlight.js";

const $ = (id) => document.getElementById(id);
const state = { files: [], current: 0, grammar: null, diagnostics: [], tests: [], hit: null, seq: 0, timer: null };
const escapeHtml = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

async function postJson(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return res.json();
}

function currentFile() { return state.files[state.current]; }

// ------------------------------------------------------------------ editor

/** Marks over the text: `[start, end, class]`, drawn as <mark> in a layer under the coloured text. */
function marksHtml(text, ranges) {
  const cuts = new Set([0, text.length]);
  for (const [s, e] of ranges) { cuts.add(s); cuts.add(e); }
  const points = [...cuts].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
  let html = "";
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    const classes = [...new Set(ranges.filter(([s, e]) => s <= a && b <= e).map((r) => r[2]))].join(" ");
    const body = escapeHtml(text.slice(a, b));
    html += classes ? `<mark class="${classes}">${body}</mark>` : body;
  }
  return html + "\n";
}

function renderEditor() {
  const file = currentFile();
  if (!file) return;
  const text = file.text;
  const failedTests = state.tests.filter((t) => !t.passed && t.file === file.path);
  const inFile = state.diagnostics.filter((d) => d.span.file === file.path);
  const ranges = inFile.map((d) => {
    const end = d.span.end > d.span.start ? d.span.end : Math.min(d.span.start + 1, text.length);
    return [d.span.start, end, d.severity === "error" ? "err" : "warn"];
  });
  const hit = state.hit && state.hit.file === file.path ? state.hit : null;
  if (hit) ranges.push([hit.start, hit.end, "hit"]);
  $("marks").innerHTML = marksHtml(text, ranges);
  // Policy tests (TOML) are shown as they are: the grammar is the policy language's.
  $("highlight").innerHTML = (file.path.endsWith(".duty") ? highlightHtml(state.grammar, text) : escapeHtml(text)) + "\n";
  const lineCount = text.split("\n").length;
  const lineClass = new Map();
  const mark = (from, to, cls) => { for (let l = from; l <= to; l++) lineClass.set(l, [...(lineClass.get(l) ?? []), cls]); };
  for (const d of inFile) mark(d.span.line, d.span.line, d.severity === "error" ? "err" : "warn");
  for (const t of failedTests) mark(t.line, t.line, "err");
  if (hit) mark(hit.line, hit.endLine, "hit");
  let gutter = "";
  for (let l = 1; l <= lineCount; l++) {
    const cls = lineClass.get(l) ?? [];
    const title = [...inFile.filter((d) => d.span.line === l).map((d) => `${d.code}: ${d.message}`), ...failedTests.filter((t) => t.line === l).map((t) => `test failed: ${t.failure}`)].join("\n");
    gutter += `<div data-line="${l}" class="${cls.join(" ")}"${title ? ` title="${escapeHtml(title)}"` : ""}>${l}</div>`;
  }
  $("gutter").innerHTML = gutter;
  syncScroll();
}

function syncScroll() {
  const ed = $("editor");
  for (const id of ["marks", "highlight"]) { $(id).scrollTop = ed.scrollTop; $(id).scrollLeft = ed.scrollLeft; }
  $("gutter").scrollTop = ed.scrollTop;
}

function showFile(index, line) {
  state.current = index;
  $("file-select").value = String(index);
  $("editor").value = currentFile().text;
  renderEditor();
  if (line) $("editor").scrollTop = Math.max(0, (line - 4) * 20);
  syncScroll();
}

function onEdit() {
  currentFile().text = $("editor").value;
  state.hit = null; // offsets of the decision no longer match the text
  renderEditor();
  clearTimeout(state.timer);
  state.timer = setTimeout(analyze, 150);
}

// ------------------------------------------------------------------ diagnostics and tables

async function analyze() {
  const seq = ++state.seq;
  $("status").textContent = "checking…";
  $("status").className = "";
  const result = await postJson("/api/analyze", { files: state.files });
  if (seq !== state.seq) return; // a newer edit is being checked
  if (result.code) { $("status").textContent = `${result.code}: ${result.message}`; $("status").className = "errors"; return; }
  state.diagnostics = result.diagnostics;
  const errors = result.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = result.diagnostics.length - errors;
  $("status").textContent = errors ? `${errors} error${errors > 1 ? "s" : ""}` : `no errors${warnings ? `, ${warnings} warning${warnings > 1 ? "s" : ""}` : ""}`;
  $("status").className = errors ? "errors" : "ok";
  $("run").disabled = errors > 0;
  $("diagnostics").innerHTML = result.diagnostics.map((d, i) => `<li class="${d.severity}" data-index="${i}">${escapeHtml(d.rendered)}</li>`).join("");
  state.tests = result.tests ?? [];
  renderTests(result.tests);
  if (result.matrix) renderMatrix(result.matrix);
  if (result.reachability) renderReachability(result.reachability);
  renderEditor();
}

function renderTests(tests) {
  if (!tests) { $("tests").innerHTML = `<p class="summary">policy tests: not run while the policy has errors</p>`; return; }
  if (!tests.length) { $("tests").innerHTML = ""; return; }
  const failed = tests.filter((t) => !t.passed);
  $("tests").innerHTML = `<p class="summary ${failed.length ? "failed" : "ok"}" id="tests-summary">policy tests: ${tests.length - failed.length} passed, ${failed.length} failed</p>`
    + (failed.length ? `<ul>${failed.map((t) => `<li data-file="${escapeHtml(t.file)}" data-line="${t.line}">${escapeHtml(`${t.file}:${t.line}: ${t.name}: ${t.failure}`)}</li>`).join("")}</ul>` : "");
}

function renderMatrix(m) {
  const head = `<tr><th>role \\ duty</th>${m.duties.map((d) => `<th class="duty" title="${escapeHtml(d.route)} -> ${escapeHtml(d.upstream)}">${escapeHtml(d.name)}<small>${escapeHtml(d.route)}${d.channel === "admin" ? " · admin" : ""}</small>${d.forbids.length ? `<small>forbid: ${d.forbids.length}</small>` : ""}</th>`).join("")}</tr>`;
  const rows = m.roles.map((role) => {
    const cells = m.duties.map((d) => {
      const grants = m.cells[role]?.[d.name] ?? [];
      if (!grants.length) return `<td class="no">·</td>`;
      const plain = grants.some((g) => !g.when && !g.until);
      const text = grants.map((g) => (!g.when && !g.until ? "yes" : [g.when ? `when ${g.when}` : "", g.until ? `until ${g.until}` : ""].filter(Boolean).join(" "))).join("; ");
      return `<td class="${plain ? "yes" : "cond"}" title="${escapeHtml(grants.map((g) => g.rule).join(", "))}">${escapeHtml(text)}</td>`;
    }).join("");
    return `<tr><th>${escapeHtml(role)}</th>${cells}</tr>`;
  }).join("");
  $("matrix").innerHTML = head + rows;
}

function renderReachability(rows) {
  const head = "<tr><th>constraint</th><th>kind</th><th>sides</th><th>one role reaches both</th><th>role pairs a person may hold</th><th>verdict</th><th>note</th></tr>";
  const body = rows.map((r) => `<tr><td class="mono">${escapeHtml(r.constraint)}</td><td>${r.kind}</td><td class="mono">${escapeHtml(r.sides.join(" / "))}</td>`
    + `<td>${escapeHtml(r.singleRoles.join(", ") || "—")}</td><td>${escapeHtml(r.combinations.map((c) => c.join(" + ")).join(", ") || "—")}${r.omittedCombinations ? ` (+${r.omittedCombinations})` : ""}</td>`
    + `<td class="verdict-${r.verdict}">${r.verdict}</td><td>${escapeHtml(r.note)}</td></tr>`).join("");
  $("reachability").innerHTML = rows.length ? head + body : "<tr><td>the policy has no <code>separate</code> or <code>exclusive</code> constraint</td></tr>";
}

// ------------------------------------------------------------------ requests

function readHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`a header line needs \`name: value\`, got \`${line.trim()}\``);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

async function runRequest(event) {
  event.preventDefault();
  const out = $("decision");
  let principal, headers;
  try { principal = JSON.parse($("principal").value); } catch (e) { out.innerHTML = `<p class="problem">principal is not valid JSON: ${escapeHtml(e.message)}</p>`; return; }
  try { headers = readHeaders($("headers").value); } catch (e) { out.innerHTML = `<p class="problem">${escapeHtml(e.message)}</p>`; return; }
  const request = `${$("method").value} ${$("path").value.trim()}`;
  const result = await postJson("/api/explain", { files: state.files, principal, request, headers, channel: $("channel").value, ip: $("ip").value.trim() || undefined, time: $("time").value.trim() || undefined });
  if (!result.ok) {
    out.innerHTML = `<p class="problem">error[${escapeHtml(result.code)}]: ${escapeHtml(result.message)}</p>`;
    return;
  }
  const e = result.explanation, d = e.decision;
  const duty = e.duty ? `${e.duty.name} (${e.duty.route} -> ${e.duty.upstream}${Object.keys(e.duty.params).length ? ", " + Object.entries(e.duty.params).map(([k, v]) => `${k}=${v}`).join(", ") : ""})` : "(none matched)";
  const reasons = e.considered.map((r) => `<tr class="${r.held ? "held" : "not-held"}${r.rule === d.decidedBy ? " decider" : ""}"><td>${r.held ? "holds" : "not held"}</td><td>${r.kind}</td><td class="mono">${escapeHtml(r.at || "-")}</td><td>${escapeHtml(r.why)}</td></tr>`).join("");
  out.innerHTML = `<div class="verdict ${d.allow ? "allow" : "deny"}" id="verdict">${d.allow ? "ALLOW" : "DENY"}${d.allow ? "" : `<span class="code">${escapeHtml(d.code)}</span>`}</div>`
    + `<dl class="facts"><dt>request</dt><dd>${escapeHtml(`${e.request.method} ${e.request.path}`)} on the ${e.channel} channel</dd>`
    + `<dt>principal</dt><dd>${escapeHtml(e.principal.sub)} [${escapeHtml(e.principal.roles.join(", "))}]</dd>`
    + `<dt>duty</dt><dd>${escapeHtml(duty)}</dd>`
    + `<dt>decided by</dt><dd id="decided-by">${escapeHtml(d.decidedBy ?? "default deny")}</dd>`
    + `<dt>message</dt><dd>${escapeHtml(d.message)}</dd>`
    + (d.separations.length ? `<dt>history</dt><dd>${escapeHtml(d.separations.map((s) => `${s.constraint} by ${s.param}=${s.key}: the live gateway checks its duty ledger`).join("; "))}</dd>` : "")
    + `</dl>`
    + `<table class="reasons"><tr><th></th><th>rule</th><th>at</th><th>why</th></tr>${reasons}</table>`
    + (d.branch.length ? `<p class="mono">tree branch: ${d.branch.map(escapeHtml).join(" → ")}</p>` : "")
    + (e.evaluatorsAgree ? "" : `<p class="problem">the compiled tree and the reference interpreter disagree — please report this</p>`);
  const span = result.decidedBy ?? result.duty;
  state.hit = span;
  if (span) {
    const index = state.files.findIndex((f) => f.path === span.file);
    if (index >= 0) showFile(index, span.line);
  } else renderEditor();
}

// ------------------------------------------------------------------ start

async function start() {
  const [grammar, source] = await Promise.all([fetch("/duty.tmLanguage.json").then((r) => r.json()), fetch("/api/files").then((r) => r.json())]);
  state.grammar = compileGrammar(grammar);
  state.files = source.files;
  $("source-label").textContent = source.label;
  $("file-select").innerHTML = state.files.map((f, i) => `<option value="${i}">${escapeHtml(f.path)}</option>`).join("");
  $("principal").value = JSON.stringify({ sub: "alice", roles: ["developer"], mfa: true, team: "core" }, null, 2);
  $("file-select").addEventListener("change", () => showFile(Number($("file-select").value)));
  $("editor").addEventListener("input", onEdit);
  $("editor").addEventListener("scroll", syncScroll);
  $("request-form").addEventListener("submit", runRequest);
  $("diagnostics").addEventListener("click", (event) => {
    const li = event.target.closest("li");
    const d = li && state.diagnostics[Number(li.dataset.index)];
    const index = d ? state.files.findIndex((f) => f.path === d.span.file) : -1;
    if (index >= 0) showFile(index, d.span.line);
  });
  $("tests").addEventListener("click", (event) => {
    const li = event.target.closest("li");
    const index = li ? state.files.findIndex((f) => f.path === li.dataset.file) : -1;
    if (index >= 0) showFile(index, Number(li.dataset.line));
  });
  const first = state.files.findIndex((f) => f.path.endsWith("changes.duty"));
  showFile(first >= 0 ? first : 0);
  await analyze();
}

start().catch((e) => { $("status").textContent = `the page could not start: ${e.message}`; $("status").className = "errors"; });
