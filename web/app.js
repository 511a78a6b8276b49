// Plinth dashboard: plain modules over the /v1 API with the user's key (kept in localStorage).
const $ = (id) => document.getElementById(id);
let key = localStorage.getItem("plinth-key") ?? "";
let selectedJob = null;
let pollTimer = null;

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const fmt = (v, d = 3) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(d)) : esc(v ?? ""));
const when = (t) => new Date(t * 1000).toLocaleString();

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.body ? { "content-type": "application/json" } : {}), ...(init.headers ?? {}) } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({ error: { message: res.statusText } }));
    throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  }
  return res;
}
const json = async (path) => (await api(path)).json();

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// ------------------------------------------------------------ models and the lineage graph
function lineageSvg(models) {
  const bases = models.filter((m) => m.parent === null);
  const adapters = models.filter((m) => m.parent !== null);
  const depth = (m) => (m.lineage ? m.lineage.length - 1 : 0);
  const levels = new Map();
  for (const m of models) {
    const d = m.parent === null ? 0 : depth(m);
    if (!levels.has(d)) levels.set(d, []);
    levels.get(d).push(m);
  }
  const W = 220, H = 34, pos = new Map();
  let height = 0;
  for (const [d, list] of levels) list.forEach((m, i) => { pos.set(m.id, { x: 10 + d * W, y: 10 + i * H }); height = Math.max(height, 10 + (i + 1) * H); });
  const width = 10 + (Math.max(...levels.keys(), 0) + 1) * W;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 10}" font-size="12" font-family="sans-serif">`];
  for (const a of adapters) {
    const p = pos.get(a.parent), c = pos.get(a.id);
    if (p && c) parts.push(`<path class="edge" data-from="${esc(a.parent)}" data-to="${esc(a.id)}" d="M${p.x + 170},${p.y + 12} C${p.x + 190},${p.y + 12} ${c.x - 20},${c.y + 12} ${c.x},${c.y + 12}" fill="none" stroke="#999"/>`);
  }
  for (const m of models) {
    const { x, y } = pos.get(m.id);
    const base = m.parent === null;
    parts.push(`<g class="node" data-id="${esc(m.id)}"><rect x="${x}" y="${y}" width="170" height="24" rx="4" fill="${base ? "#dbe8f7" : "#e6f4ea"}" stroke="${base ? "#1f77b4" : "#2ca02c"}"/>` +
      `<text x="${x + 8}" y="${y + 16}">${esc(m.id)}${base ? "" : ` (${esc(m.method)})`}</text><title>${esc(m.id)} sha256 ${esc(m.sha256)}</title></g>`);
  }
  parts.push("</svg>");
  return parts.join("");
}

async function loadModels() {
  const { data } = await json("/v1/models");
  $("lineage").innerHTML = lineageSvg(data);
  $("model-rows").innerHTML = data.map((m) => `<tr><td>${esc(m.id)}</td><td>${esc(m.parent ?? "—")}</td><td>${esc(m.root)}</td><td>${esc(m.method ?? "base")}</td><td title="${esc(m.sha256)}">${esc(m.sha256.slice(0, 12))}…</td></tr>`).join("");
  const sel = $("play-model");
  const current = sel.value;
  sel.innerHTML = data.filter((m) => m.model_type === "gpt2" || m.method === "lora").map((m) => `<option>${esc(m.id)}</option>`).join("");
  if (current) sel.value = current;
}

// ------------------------------------------------------------ jobs and live loss curves
function lossSvg(points) {
  const W = 560, H = 260, m = { l: 50, r: 10, t: 10, b: 30 };
  if (points.length === 0) return `<svg width="${W}" height="${H}"><text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no loss yet</text></svg>`;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = 0, x1 = Math.max(...xs, 1), y0 = Math.min(...ys), y1 = Math.max(...ys) === y0 ? y0 + 1 : Math.max(...ys);
  const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r), sy = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-size="11" font-family="sans-serif">
    <line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#000"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#000"/>
    <text x="${m.l - 4}" y="${sy(y1) + 4}" text-anchor="end">${y1.toPrecision(3)}</text><text x="${m.l - 4}" y="${sy(y0) + 4}" text-anchor="end">${y0.toPrecision(3)}</text>
    <text x="${W - m.r}" y="${H - 8}" text-anchor="end">step ${x1}</text>
    <path id="loss-path" d="${d}" fill="none" stroke="#1f77b4" stroke-width="1.5" data-points="${points.length}"/></svg>`;
}

async function loadJobs() {
  const { data } = await json("/v1/fine_tuning/jobs?limit=50");
  $("job-rows").innerHTML = data.map((j) => `<tr class="selectable${j.id === selectedJob ? " selected" : ""}" data-job="${esc(j.id)}"><td>${esc(j.id)}</td><td>${esc(j.method.type)}</td><td class="job-status">${esc(j.status)}</td><td>${esc(j.fine_tuned_model ?? "")}</td><td>${fmt(j.trained_tokens ?? "")}</td></tr>`).join("");
  for (const tr of $("job-rows").querySelectorAll("tr")) tr.addEventListener("click", () => { selectedJob = tr.dataset.job; void refreshJob(); void loadJobs(); });
}

async function refreshJob() {
  if (selectedJob === null) return;
  const [job, events] = await Promise.all([json(`/v1/fine_tuning/jobs/${selectedJob}`), json(`/v1/fine_tuning/jobs/${selectedJob}/events?limit=10000`)]);
  const points = events.data.filter((e) => e.type === "metrics" && e.data.train_loss !== undefined).map((e) => [e.data.step, e.data.train_loss]).sort((a, b) => a[0] - b[0]);
  const last = events.data[0];
  $("job-detail").innerHTML = `<h3>${esc(job.id)} <span id="job-detail-status">${esc(job.status)}</span></h3>${lossSvg(points)}<p class="muted">${esc(last ? last.message : "")}</p>`;
}

// ------------------------------------------------------------ evaluations, audits, usage
async function loadResults() {
  const [evals, audits] = await Promise.all([json("/v1/plinth/evaluations"), json("/v1/plinth/audits")]);
  $("eval-rows").innerHTML = evals.data.map((e) => `<tr><td>${esc(e.model)}</td><td>${esc(e.task)}</td><td>${Object.entries(e.metrics).map(([k, v]) => `${esc(k)} ${fmt(v)}`).join(", ")}</td><td>${when(e.created)}</td></tr>`).join("");
  $("audit-rows").innerHTML = audits.data.map((a) => `<tr><td>${esc(a.model)}</td><td>${esc(a.name)}</td><td class="${a.passed ? "pass" : "fail"}">${a.passed ? "pass" : "fail"}${a.result.verdict ? ` (${esc(a.result.verdict)})` : ""}</td><td>${esc(Object.entries(a.result).filter(([k]) => k !== "verdict").map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; "))}</td></tr>`).join("");
}

async function loadUsage() {
  const u = await json("/v1/usage");
  $("whoami").textContent = `tenant ${u.tenant}`;
  $("meters").innerHTML = u.keys.map((k) => {
    const frac = k.token_quota ? Math.min(1, k.tokens_used / k.token_quota) : 0;
    return `<div class="meter" data-key="${esc(k.id)}">${esc(k.prefix)}… ${esc(k.name)}: <span class="used">${k.tokens_used}</span> tokens${k.token_quota ? ` of ${k.token_quota}` : " (no quota)"} ` +
      `<span class="bar"><div class="fill" style="width:${(frac * 100).toFixed(1)}%"></div></span>${k.rpm ? ` · ${k.rpm} requests/min` : ""}</div>`;
  }).join("");
  $("usage-rows").innerHTML = u.data.map((r) => `<tr><td>${esc(r.key_id)}</td><td>${esc(r.kind)}</td><td>${r.requests}</td><td>${r.prompt_tokens}</td><td>${r.completion_tokens}</td><td>${r.training_tokens}</td><td>${fmt(r.compute_seconds)}</td></tr>`).join("");
}

// ------------------------------------------------------------ playground
async function play(ev) {
  ev.preventDefault();
  const out = $("play-out");
  out.textContent = "";
  out.dataset.done = "false";
  const body = {
    model: $("play-model").value, messages: [{ role: "user", content: $("play-prompt").value }],
    max_tokens: Number($("play-max").value), temperature: Number($("play-temp").value), stream: $("play-stream").checked,
  };
  try {
    const res = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
    if (!body.stream) {
      out.textContent = (await res.json()).choices[0].message.content;
    } else {
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const line = buf.slice(0, i).replace(/^data: /, "");
          buf = buf.slice(i + 2);
          if (line === "[DONE]") continue;
          const chunk = JSON.parse(line);
          for (const c of chunk.choices ?? []) out.textContent += c.delta?.content ?? "";
        }
      }
    }
    out.dataset.done = "true";
    void loadUsage();
  } catch (e) {
    out.textContent = `error: ${e.message}`;
    out.dataset.done = "error";
  }
}

async function refreshAll() {
  try {
    await Promise.all([loadModels(), loadJobs(), loadResults(), loadUsage(), refreshJob()]);
    $("app").hidden = false;
    status(`connected · updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    status(e.message, true);
  }
}

$("connect").addEventListener("submit", (ev) => {
  ev.preventDefault();
  key = $("key").value.trim();
  localStorage.setItem("plinth-key", key);
  void refreshAll();
  clearInterval(pollTimer);
  // Jobs and their loss curves update live; the rest on each poll too (cheap on a local server).
  pollTimer = setInterval(() => void Promise.all([loadJobs(), refreshJob(), loadUsage()]).catch((e) => status(e.message, true)), 1000);
});
$("play").addEventListener("submit", play);
if (key) {
  $("key").value = key;
  $("connect").requestSubmit();
}
