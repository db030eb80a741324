// One job: its facts, the pipeline graph, each flow's counters with a live throughput chart,
// the scoring services, the events timeline, the log tail of each part, and cancel (with a
// confirmation) for a token that may submit. Polls the job every second until it finishes.
// Fields of later versions of the API are shown when present: `flows.<f>.replicas[]` (a row
// per replica), `flows.<f>.endpoint`, `services.<s>.endpoint`, `errors[].log_tail`.
import {
  FINISHED, api, duration, el, every, number, report, signIn, stateBadge, when,
} from "/ui/static/common.js";
import { buildGraph, drawGraph, paintFlows } from "/ui/static/graph.js";
import { ThroughputChart } from "/ui/static/chart.js";

const jobId = decodeURIComponent(window.location.pathname.split("/").pop());
const base = `/api/v1/jobs/${encodeURIComponent(jobId)}`;
const charts = new Map();
const recent = new Map(); // flow -> [{t, in, out, failed}]: recent samples, for rates
const rates = new Map();
let job = null;
let values = null;
let roles = [];
let eventsSeen = "";

function fact(list, name, value) {
  list.append(el("dt", { text: name }), el("dd", {}, value));
}

function showFacts() {
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  fact(facts, "Pipeline", job.pipeline);
  fact(facts, "Name", job.name || "—");
  fact(facts, "Task", job.task || "—");
  fact(facts, "Reason", job.reason || "—");
  fact(facts, "Created", when(job.created_at));
  fact(facts, "Started", when(job.started_at));
  fact(facts, "Finished", when(job.finished_at));
  fact(facts, "Duration", duration(job.started_at, job.finished_at));
  const labels = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  fact(facts, "Labels", labels || "—");
  const backend = job.backend || {};
  fact(facts, "Backend", [backend.kind, backend.namespace, backend.pipelinerun]
    .filter(Boolean).join(" · "));
  fact(facts, "Content hash", el("code", { text: (job.content_hash || "").slice(0, 16) }));
}

function showProblems() {
  const box = document.getElementById("problems");
  box.replaceChildren();
  if (!job.message && !(job.errors || []).length) return;
  const failed = job.state === "FAILED";
  if (job.message) {
    box.append(el("p", { class: failed ? "message" : "message note", role: failed ? "alert" : null },
      el("strong", { text: failed ? "Failed: " : "Note: " }), job.message));
  }
  for (const error of job.errors || []) {
    if (error.msg === job.message && !error.log_tail) continue;
    const where = (error.loc || []).join(".");
    const item = el("div", { class: "message" }, el("strong", { text: `${where}: ` }), error.msg);
    if (error.log_tail) {
      const tail = Array.isArray(error.log_tail) ? error.log_tail.join("\n") : error.log_tail;
      item.append(el("details", {}, el("summary", { text: "Log tail" }), el("pre", { text: tail })));
    }
    box.append(item);
  }
}

const WINDOW_MS = 5000; // rates over the last 5 s: flows report every 2 s, the page polls every 1 s

function sample(name, flow, now) {
  const seen = recent.get(name) || [];
  seen.push({ t: now, in: flow.records_in, out: flow.records_out, failed: flow.records_failed });
  while (seen.length > 2 && now - seen[1].t >= WINDOW_MS) seen.shift();
  recent.set(name, seen);
  const [first, current] = [seen[0], seen[seen.length - 1]];
  if (seen.length < 2 || current.t <= first.t) return;
  const dt = (current.t - first.t) / 1000;
  const rate = {
    in: Math.max(0, (current.in - first.in) / dt),
    out: Math.max(0, (current.out - first.out) / dt),
    failed: Math.max(0, (current.failed - first.failed) / dt),
  };
  rates.set(name, rate);
  if (!charts.has(name)) charts.set(name, new ThroughputChart(document.getElementById("charts"), name));
  charts.get(name).push(rate);
}

function flowRow(name, flow) {
  const rate = rates.get(name);
  const shards = flow.shards > 1 ? `${flow.shards_done}/${flow.shards}` : (flow.mode === "batch" ? `${flow.shards_done}/1` : "—");
  return el("tr", { id: `flow-${name}`, "data-flow": name },
    el("th", { scope: "row", text: name }),
    el("td", { text: flow.mode }),
    el("td", {}, stateBadge(flow.state)),
    el("td", { class: "num", "data-counter": "in", text: number(flow.records_in) }),
    el("td", { class: "num", "data-counter": "out", text: number(flow.records_out) }),
    el("td", { class: "num", "data-counter": "failed", text: number(flow.records_failed) }),
    el("td", { class: "num", text: number(flow.records_filtered) }),
    el("td", { class: "num", text: shards }),
    el("td", { class: "num", text: rate && !FINISHED.has(job.state) ? number(Math.round(rate.in)) : "—" }),
    el("td", {}, flow.endpoint ? el("code", { text: flow.endpoint }) : "—"),
  );
}

function replicaRow(name, replica, index) {
  return el("tr", { class: "replica", "data-flow": name, "data-replica": String(replica.index ?? index) },
    el("td", { text: `replica ${replica.index ?? index}${replica.pod ? ` (${replica.pod})` : ""}` }),
    el("td", { text: "" }),
    el("td", {}, replica.state ? stateBadge(replica.state) : ""),
    el("td", { class: "num", text: number(replica.records_in) }),
    el("td", { class: "num", text: number(replica.records_out) }),
    el("td", { class: "num", text: number(replica.records_failed) }),
    el("td", { class: "num", text: number(replica.records_filtered) }),
    el("td", { text: "" }),
    el("td", { text: "" }),
    el("td", {}, replica.endpoint ? el("code", { text: replica.endpoint }) : ""),
  );
}

function showFlows() {
  const now = Date.now();
  const body = document.querySelector("#flows tbody");
  const rows = [];
  for (const [name, flow] of Object.entries(job.flows || {}).sort(([a], [b]) => a.localeCompare(b))) {
    sample(name, flow, now);
    rows.push(flowRow(name, flow));
    (flow.replicas || []).forEach((replica, i) => rows.push(replicaRow(name, replica, i)));
  }
  body.replaceChildren(...rows);
  paintFlows(document.getElementById("graph"), job.flows || {});
}

function showServices() {
  const body = document.querySelector("#services tbody");
  const status = job.services || {};
  body.replaceChildren(...(values?.scoringServices || []).map((service) => el("tr", {},
    el("th", { scope: "row", text: service.name }),
    el("td", { text: service.runtime }),
    el("td", { text: (service.models || []).map((m) => m.name).join(", ") }),
    el("td", { class: "num", text: String(service.replicas ?? 1) }),
    el("td", {}, status[service.name]?.endpoint ? el("code", { text: status[service.name].endpoint }) : "—"),
  )));
}

function showHead() {
  document.title = `${job.id} · ${job.state} · tekscore`;
  document.getElementById("crumb").textContent = job.id;
  document.getElementById("job-id").textContent = job.id;
  document.getElementById("job-state").replaceChildren(stateBadge(job.state));
  const cancel = document.getElementById("cancel");
  const allowed = roles.includes("submit"); // a read-only token sees no cancel
  cancel.hidden = !allowed || FINISHED.has(job.state);
  cancel.disabled = job.state === "STOPPING";
}

async function showEvents(fetched = null) {
  const events = fetched || await api(`${base}/events`);
  const key = JSON.stringify(events);
  if (key === eventsSeen) return;
  eventsSeen = key;
  document.getElementById("events").replaceChildren(...events.map((e) => el("li", {},
    when(e.at), stateBadge(e.state),
    e.task ? ` task ${e.task}` : "",
    e.reason ? el("span", { class: "why", text: ` — ${e.reason}` }) : "",
    e.message ? el("span", { class: "why", text: `: ${e.message}` }) : "",
  )));
}

function logParts() {
  const select = document.getElementById("log-part");
  const parts = [
    ...(values?.scoringServices || []).map((s) => ["service", s.name]),
    ...(values?.scoringFlows || []).map((f) => ["flow", f.name]),
  ];
  select.replaceChildren(...parts.map(([kind, name]) =>
    el("option", { value: `${kind}=${name}`, text: `${kind} ${name}` })));
}

async function showLog() {
  const part = document.getElementById("log-part").value;
  const box = document.getElementById("log");
  if (!part) {
    box.textContent = "(no part)";
    return;
  }
  try {
    const text = await api(`${base}/logs?${part}&tail=200`, { text: true });
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.textContent = text || "(empty)";
    if (atEnd) box.scrollTop = box.scrollHeight;
  } catch (error) {
    box.textContent = error.status === 404
      ? "No log for this part here (on Kubernetes, read it with kubectl logs)."
      : `Could not read the log: ${error.message}`;
  }
}

async function refresh(fetched = null) {
  const previous = job ? job.state : fetched?.state;
  job = fetched || await api(base);
  showHead();
  showFacts();
  showProblems();
  showFlows();
  showServices();
  if (job.state !== previous) await showEvents();
  document.body.dataset.state = job.state;
  report(null);
}

function showPipeline() {
  const svg = document.getElementById("graph");
  document.getElementById("graph-caption").textContent = drawGraph(svg, buildGraph(values));
  paintFlows(svg, job.flows || {});
  logParts();
  showServices();
}

function setUpCancel() {
  const dialog = document.getElementById("cancel-dialog");
  document.getElementById("cancel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "cancel") return;
    try {
      job = await api(`${base}/cancel`, { method: "POST" });
      await refresh();
    } catch (error) {
      report(error.status === 403
        ? new Error("this token may not cancel jobs")
        : error);
    }
  });
}

async function main() {
  const who = await signIn();
  roles = who.roles;
  setUpCancel();
  // the job, its values (for the drawing and the parts' logs) and its events at once
  const [first, drawing, events] = await Promise.allSettled(
    [api(base), api(`${base}/values`), api(`${base}/events`)],
  );
  if (first.status === "rejected") throw first.reason;
  if (events.status === "fulfilled") await showEvents(events.value);
  await refresh(first.value);
  if (drawing.status === "fulfilled") {
    values = drawing.value;
    showPipeline();
  } else {
    document.getElementById("graph-caption").textContent =
      `No pipeline drawing: ${drawing.reason.message}`;
  }
  document.getElementById("log-part").addEventListener("change", () => showLog().catch(report));
  document.getElementById("log-refresh").addEventListener("click", () => showLog().catch(report));
  await showLog();
  document.body.dataset.readyMs = performance.now().toFixed(1); // since navigation start
  document.body.dataset.ready = "true";
  every(1000, refresh, () => !FINISHED.has(job.state));
  every(3000, showEvents, () => !FINISHED.has(job.state));
  every(3000, showLog, () => document.getElementById("log-follow").checked && !FINISHED.has(job.state));
}

main().catch(report);
