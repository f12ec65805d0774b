"""The console's stylesheet and script, served as /static/console.css and /static/console.js.

Kept in a module rather than as package data, so that every way the project is installed
(editable, wheel, container image) carries them. The script only redraws a cause page's
ranking and counters from its live JSON; it inserts texts as text, never as HTML.
"""

from __future__ import annotations

CSS = """\
:root { --ink: #1d2430; --muted: #5d6878; --line: #d9dee6; --accent: #2457c5;
        --ok: #1c7c3c; --bad: #b3261e; --paper: #ffffff; --wash: #f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--wash); }
header { display: flex; justify-content: space-between; align-items: center;
         padding: 10px 24px; background: var(--ink); }
header .brand { color: #fff; font-weight: 600; text-decoration: none; }
header button { background: transparent; color: #fff; border: 1px solid #8893a5; }
main { max-width: 1180px; margin: 0 auto; padding: 12px 24px 40px; }
h1 { font-size: 22px; margin: 14px 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 6px;
          padding: 14px 16px; margin: 14px 0; }
.small, .facts, .pid { color: var(--muted); font-size: 12px; font-weight: normal; }
.cause-id { font-family: ui-monospace, monospace; color: var(--muted); }
table { width: 100%; border-collapse: collapse; background: var(--paper); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { max-width: 520px; overflow-wrap: anywhere; }
td.id { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.stats { display: grid; grid-template-columns: repeat(5, 1fr); gap: 8px; margin: 0; }
.stat { background: var(--wash); border-radius: 4px; padding: 6px 10px; }
.stat dt { font-size: 12px; color: var(--muted); }
.stat dd { margin: 0; font-size: 18px; font-variant-numeric: tabular-nums; }
svg.bar rect { fill: #9db5e8; }
svg.bar line { stroke: var(--accent); stroke-width: 2; }
form.inline { display: inline-flex; gap: 6px; align-items: center; margin: 0 4px 0 0; }
form.stack { display: grid; gap: 6px; max-width: 560px; margin-top: 10px; }
form.stack textarea, form.stack input { display: block; width: 100%; margin-top: 2px; }
form.stack button { justify-self: start; }
input, select, textarea, button { font: inherit; }
input, textarea, select { padding: 4px 6px; border: 1px solid var(--line); border-radius: 4px; }
button { padding: 4px 12px; border-radius: 4px; border: 1px solid var(--accent);
         background: var(--accent); color: #fff; cursor: pointer; }
button.reject { background: var(--bad); border-color: var(--bad); }
button.accept { background: var(--ok); border-color: var(--ok); }
.notice { padding: 8px 12px; border-radius: 4px; margin: 12px 0; }
.notice.ok { background: #e3f3e8; color: var(--ok); }
.notice.error, p.error { background: #fbe7e6; color: var(--bad); }
.login { max-width: 440px; margin: 60px auto; }
.state { font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px;
         vertical-align: middle; background: var(--wash); color: var(--muted); }
.state.open { background: #e3f3e8; color: var(--ok); }
.state.closed { background: #fdf0d9; color: #8a5a00; }
.final { font-size: 12px; color: #8a5a00; }
.life-actions { margin: 6px 0 10px; }
button.close, button.archive { background: #8a5a00; border-color: #8a5a00; }
.exclude-flagged button { background: var(--bad); border-color: var(--bad); }
.exclude-flagged input { width: 220px; }
span.excluded { color: var(--muted); font-size: 12px; }
.login form { display: grid; gap: 10px; }
.login input { width: 100%; }
.stale #ranking-counted::after { content: " (not updating: the gateway does not answer)";
                                 color: var(--bad); }
.signed-out #ranking-counted::after { content: " (not updating: signed out, reload the page)";
                                      color: var(--bad); }
"""

JS = """\
"use strict";
(function () {
  const page = document.body;
  const path = page.dataset.live;
  if (!path) { return; }
  const SVG = "http://www.w3.org/2000/svg";
  const number = (n) => n.toLocaleString("en-US");
  const signed = (x, digits) => (x >= 0 ? "+" : "") + x.toFixed(digits);
  let shown = null;

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function bar(entry, low, high, width) {
    const x = (v) => Math.min(Math.max(Math.round(10 * width * (v - low) / (high - low)) / 10,
                                       0), width);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("width", width);
    svg.setAttribute("height", 12);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", x(entry.ci_low));
    rect.setAttribute("y", 3);
    rect.setAttribute("width", Math.max(1, x(entry.ci_high) - x(entry.ci_low)));
    rect.setAttribute("height", 6);
    rect.setAttribute("rx", 2);
    const tick = document.createElementNS(SVG, "line");
    tick.setAttribute("x1", x(entry.ability));
    tick.setAttribute("x2", x(entry.ability));
    tick.setAttribute("y1", 0);
    tick.setAttribute("y2", 12);
    svg.append(rect, tick);
    return svg;
  }

  function draw(live) {
    const rows = document.getElementById("ranking-rows");
    const fresh = document.createDocumentFragment();
    for (const entry of live.entries) {
      const row = document.createElement("tr");
      row.dataset.proposal = entry.proposal_id;
      cell(row, String(entry.rank), "num");
      const what = cell(row, "", "");
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = entry.text;
      const id = document.createElement("span");
      id.className = "pid";
      id.textContent = entry.proposal_id;
      what.append(text, " ", id);
      cell(row, entry.score.toFixed(1), "num");
      cell(row, signed(entry.ability, 3), "num");
      cell(row, signed(entry.ci_low, 2) + " \\u2026 " + signed(entry.ci_high, 2), "num");
      cell(row, "", "").appendChild(bar(entry, live.scale[0], live.scale[1], live.bar_width));
      cell(row, number(entry.wins) + " / " + number(entry.losses) + " / " + number(entry.ties),
           "num");
      fresh.appendChild(row);
    }
    rows.replaceChildren(fresh);
    document.querySelector("table.ranking").dataset.votesCounted = live.votes_counted;
    document.getElementById("ranking-counted").textContent = number(live.votes_counted);
    document.getElementById("ranking-fitted").textContent = live.fitted;
    document.getElementById("ranking-total").textContent = number(live.total_proposals);
    document.getElementById("ranking-final").textContent = live.final;
  }

  function count(live) {
    for (const [field, value] of Object.entries(live.stats)) {
      const target = document.getElementById("stat-" + field);
      if (target) { target.textContent = number(value); }
    }
  }

  async function poll() {
    try {
      const reply = await fetch(path, {credentials: "same-origin", cache: "no-store"});
      if (reply.status === 401) {
        page.classList.add("signed-out");
        return;
      }
      if (reply.ok) {
        const live = await reply.json();
        count(live);
        const key = [live.votes_counted, live.fitted_at_ms, live.total_proposals,
                     live.final].join("/");
        if (key !== shown) { draw(live); shown = key; }
        page.classList.remove("stale");
      } else {
        page.classList.add("stale");
      }
    } catch (failure) {
      page.classList.add("stale");
    }
    setTimeout(poll, document.hidden ? 5000 : 1000);
  }
  setTimeout(poll, 1000);
})();
"""
