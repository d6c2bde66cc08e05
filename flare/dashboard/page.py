"""The dashboard's one page: plain HTML, CSS and JavaScript that poll ``/api/state``.

It loads nothing from outside (no CDN, no font, no chart library): the charts are SVG drawn
by the script, so the page works on a device network with no internet.
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Flare dashboard</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 0.2em; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.4em; }
#status { color: #555; }
#error { color: #b00; font-weight: 600; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.9em; min-width: 9em; }
.card b { display: block; font-size: 1.3em; }
.charts { display: flex; gap: 1.5em; flex-wrap: wrap; }
svg { border: 1px solid #ddd; background: #fff; }
table { border-collapse: collapse; margin: 0.3em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; }
.ok { color: #080; } .bad { color: #b00; font-weight: 600; } .muted { color: #777; }
</style>
</head>
<body>
<h1>Flare dashboard <span id="title"></span></h1>
<div id="status">loading…</div>
<div id="error"></div>
<div class="cards" id="cards"></div>
<div class="charts">
  <div><h2>Accuracy and loss</h2><svg id="quality" width="440" height="220"></svg></div>
  <div><h2>Bytes uploaded per round</h2><svg id="bytes" width="440" height="220"></svg></div>
</div>
<h2>Current attempt</h2>
<div id="current"></div>
<h2>Rounds</h2>
<table>
  <thead><tr><th>round</th><th>attempt</th><th>accuracy</th><th>loss</th><th>uploaded</th>
  <th>submissions</th><th>committee</th><th>flagged</th><th>gas</th><th>verified</th>
  <th>global model</th></tr></thead>
  <tbody id="rounds"></tbody>
</table>
<h2>Latest finalized round in detail</h2>
<div id="detail"></div>
<script>
"use strict";
const POLL_MS = __POLL_MS__;
const escapeHtml = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => (
  {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const short = (text) => text && text.length > 14 ? text.slice(0, 8) + "…" + text.slice(-4) : text;
const fixed = (value, digits) => (
  value === null || value === undefined ? "–" : value.toFixed(digits));
function human(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) { bytes /= 1024; unit += 1; }
  return unit === 0 ? bytes + " B" : bytes.toFixed(1) + " " + units[unit];
}
function table(head, rows) {
  if (!rows.length) return '<p class="muted">none</p>';
  return "<table><tr>" + head.map((h) => "<th>" + escapeHtml(h) + "</th>").join("") + "</tr>" +
    rows.map((row) => "<tr>" + row.map((c) => "<td>" + c + "</td>").join("") + "</tr>").join("") +
    "</table>";
}
function committeeTable(attempt) {
  const votes = {};
  for (const vote of attempt.votes || []) votes[vote.voter] = vote;
  return table(["member", "VRF output", "vote"], (attempt.committee || []).map((seat) => {
    const vote = votes[seat.member];
    const said = vote ? (vote.approve ? "approve #" : "reject #") + vote.proposal : "–";
    return ["<code>" + escapeHtml(seat.member) + "</code>",
            "<code>" + escapeHtml(seat.vrf_output) + "</code>", escapeHtml(said)];
  }));
}
function proposalTable(attempt) {
  return table(["proposal", "by", "model"], (attempt.proposals || []).map((p) => [
    "#" + p.id, "<code>" + escapeHtml(p.proposer) + "</code>",
    "<code>" + escapeHtml(p.model) + "</code>"]));
}
function lineChart(svg, series, maxY) {
  const w = svg.width.baseVal.value, h = svg.height.baseVal.value, pad = 34;
  const count = Math.max(1, ...series.map((s) => s.points.length));
  const x = (i) => pad + (count === 1 ? 0 : i * (w - 2 * pad) / (count - 1));
  const y = (v) => h - pad - v / maxY * (h - 2 * pad);
  let out = `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#999"/>` +
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#999"/>` +
    `<text x="4" y="${pad}" font-size="10">${maxY.toFixed(2)}</text>` +
    `<text x="4" y="${h - pad}" font-size="10">0</text>`;
  series.forEach((s, index) => {
    const drawn = s.points.map((v, i) => [i, v]).filter(([, v]) => v !== null);
    drawn.forEach(([i]) => {
      if (index === 0) {
        out += `<text x="${x(i)}" y="${h - pad + 14}" font-size="10" ` +
          `text-anchor="middle">${i + 1}</text>`;
      }
    });
    if (drawn.length) {
      out += `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="` +
        drawn.map(([i, v]) => x(i) + "," + y(v)).join(" ") + '"/>';
    }
    out += `<text x="${pad + 8 + index * 110}" y="14" font-size="11" fill="${s.color}">` +
      escapeHtml(s.label) + "</text>";
  });
  svg.innerHTML = out;
}
function barChart(svg, values) {
  const w = svg.width.baseVal.value, h = svg.height.baseVal.value, pad = 34;
  const top = Math.max(1, ...values);
  const step = (w - 2 * pad) / Math.max(1, values.length);
  let out = `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#999"/>` +
    `<text x="4" y="${pad - 4}" font-size="10">${human(top)}</text>`;
  values.forEach((v, i) => {
    const height = v / top * (h - 2 * pad);
    out += `<rect x="${pad + i * step + step * 0.15}" y="${h - pad - height}" ` +
      `width="${step * 0.7}" height="${height}" fill="#4c78a8"/>`;
    out += `<text x="${pad + (i + 0.5) * step}" y="${h - pad + 14}" font-size="10" ` +
      `text-anchor="middle">${i + 1}</text>`;
  });
  svg.innerHTML = out;
}
function render(state) {
  document.getElementById("error").textContent = "";
  const when = new Date(state.time * 1000).toLocaleTimeString();
  if (state.task === null) {
    document.getElementById("status").textContent =
      `waiting for task ${state.waiting_for} on chain ${state.chain_id} ` +
      `(block ${state.head}, ${when})`;
    return;
  }
  const rounds = state.rounds;
  document.getElementById("title").textContent = `— task ${state.task}`;
  document.getElementById("status").textContent =
    `${state.status}, ${state.registered} registered; chain ${state.chain_id} at ` +
    `${state.contract}, block ${state.head}; updated ${when}`;
  const total = rounds.reduce((sum, r) => sum + (r.bytes_up || 0), 0);
  const gas = state.gas_total === null ? "n/a" : state.gas_total.gas.toLocaleString() + " gas";
  const eth = state.gas_total === null ? "embedded chain: no gas" :
    (state.gas_total.wei / 1e18).toFixed(6) + " ETH";
  const history = state.history_matches === null ? "–" :
    state.history_matches ? "matches" : "DIFFERS";
  const last = rounds.length ? rounds[rounds.length - 1] : null;
  const cards = [
    ["rounds finalized", rounds.length + " of " + state.params.max_rounds],
    ["accuracy", last ? fixed(last.accuracy, 3) : "–",
     state.test_set ? "on " + state.test_set.split("/").pop() : "give --test to score"],
    ["uploaded", human(total)], ["gas spent", gas, eth], ["history hash", history],
  ];
  document.getElementById("cards").innerHTML = cards.map(([name, value, note]) =>
    `<div class="card">${escapeHtml(name)}<b>${escapeHtml(value)}</b>` +
    `<span class="muted">${escapeHtml(note || "")}</span></div>`).join("");
  const maxLoss = Math.max(1, ...rounds.map((r) => r.loss || 0));
  lineChart(document.getElementById("quality"), [
    {label: "accuracy", color: "#2a7", points: rounds.map((r) => r.accuracy)},
    {label: "loss / " + maxLoss.toFixed(2), color: "#c50",
     points: rounds.map((r) => r.loss === null ? null : r.loss / maxLoss)},
  ], 1);
  barChart(document.getElementById("bytes"), rounds.map((r) => r.bytes_up || 0));
  const current = state.current;
  document.getElementById("current").innerHTML = current === null ?
    '<p class="muted">the task is ' + escapeHtml(state.status) + "</p>" :
    `<p>round ${current.round} attempt ${current.attempt}: ${escapeHtml(current.phase)}, ` +
    `${current.submissions ?? 0} submissions</p>` + committeeTable(current) +
    proposalTable(current);
  document.getElementById("rounds").innerHTML = rounds.map((r) => {
    const verified = r.verification === "re-derived" ? '<span class="ok">re-derived</span>' :
      r.verification === "pending" ? '<span class="muted">pending</span>' :
      '<span class="bad">' + escapeHtml(r.verification) + "</span>";
    const failed = r.failed_attempts.length ?
      ` <span class="muted">(${r.failed_attempts.length} failed: ` +
      r.failed_attempts.map((a) => escapeHtml(a.outcome)).join(", ") + ")</span>" : "";
    return `<tr class="round-row" id="round-${r.round}" data-round="${r.round}">` +
      `<td class="num">${r.round}</td><td class="num">${r.attempt}${failed}</td>` +
      `<td class="num">${fixed(r.accuracy, 3)}</td><td class="num">${fixed(r.loss, 3)}</td>` +
      `<td class="num">${human(r.bytes_up)}</td><td class="num">${r.submissions}</td>` +
      `<td class="num">${r.committee.length}</td>` +
      `<td class="num">${r.flagged ? r.flagged.length : "–"}</td>` +
      `<td class="num">${r.gas === null ? "n/a" : r.gas.toLocaleString()}</td>` +
      `<td>${verified}${r.error ? ' <span class="bad">' + escapeHtml(r.error) + "</span>" : ""}` +
      `</td><td><code>${escapeHtml(short(r.model))}</code></td></tr>`;
  }).join("");
  document.getElementById("detail").innerHTML = last === null ? '<p class="muted">none yet</p>' :
    `<p>round ${last.round}, attempt ${last.attempt}</p>` + committeeTable(last) +
    proposalTable(last) + "<h2>Flagged clients</h2>" +
    table(["client", "reason"], (last.flagged || []).map((f) => [
      "<code>" + escapeHtml(f.participant) + "</code>", escapeHtml(f.reason)])) +
    "<h2>Rejected submissions</h2>" +
    table(["client", "reason"], (last.rejected || []).map((f) => [
      "<code>" + escapeHtml(f.participant) + "</code>", escapeHtml(f.reason)]));
}
async function poll() {
  try {
    const response = await fetch("api/state", {cache: "no-store"});
    const state = await response.json();
    if (!response.ok) throw new Error(state.error || response.statusText);
    render(state);
  } catch (error) {
    document.getElementById("error").textContent = "cannot read the task: " + error.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
"""


def render_page(poll_seconds: float) -> str:
    """The page, polling every ``poll_seconds``."""
    return PAGE.replace("__POLL_MS__", str(round(poll_seconds * 1000)))
