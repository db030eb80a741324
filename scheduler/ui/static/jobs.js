// The jobs table: filters (state, pipeline, labels) kept in the page's address, one page of
// the API at a time (newest first, `next` cursors), refreshed every 2 s while live.
import {
  STATES, api, duration, el, every, number, report, signIn, stateBadge, when,
} from "/ui/static/common.js";

const PAGE = 50;
const form = document.getElementById("filters");
const body = document.querySelector("#jobs tbody");
const live = document.getElementById("live");
const cursors = [null]; // cursors[i]: the cursor of page i (null: the first page)
let page = 0;
let next = null;
let isLive = true;
let loads = 0;

function filters() {
  const params = new URLSearchParams(window.location.search);
  return {
    state: params.get("state") || "",
    pipeline: params.get("pipeline") || "",
    label: params.getAll("label"),
  };
}

function showFilters() {
  const f = filters();
  form.state.value = f.state;
  form.pipeline.value = f.pipeline;
  form.label.value = f.label.join(" ");
}

function applyFilters(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams();
  if (form.state.value) params.set("state", form.state.value);
  if (form.pipeline.value.trim()) params.set("pipeline", form.pipeline.value.trim());
  for (const pair of form.label.value.split(/\s+/).filter(Boolean)) params.append("label", pair);
  const query = params.toString();
  history.pushState(null, "", query ? `?${query}` : window.location.pathname);
  restart();
}

function restart() {
  cursors.length = 1;
  page = 0;
  load().catch(report);
}

function query() {
  const f = filters();
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (f.state) params.set("state", f.state);
  if (f.pipeline) params.set("pipeline", f.pipeline);
  for (const pair of f.label) params.append("label", pair);
  if (cursors[page]) params.set("cursor", cursors[page]);
  return params;
}

function totals(job) {
  const sum = { records_in: 0, records_out: 0, records_failed: 0 };
  for (const flow of Object.values(job.flows || {})) {
    for (const key of Object.keys(sum)) sum[key] += flow[key] || 0;
  }
  return sum;
}

function row(job) {
  const sum = totals(job);
  return el("tr", { "data-id": job.id, "data-state": job.state },
    el("td", { class: "id" }, el("a", { href: `/ui/jobs/${job.id}`, text: job.id })),
    el("td", { text: job.name || "" }),
    el("td", { text: job.pipeline }),
    el("td", {}, stateBadge(job.state)),
    el("td", { text: job.task || "" }),
    el("td", { class: "num", text: number(sum.records_in) }),
    el("td", { class: "num", text: number(sum.records_out) }),
    el("td", { class: "num", text: number(sum.records_failed) }),
    el("td", {}, when(job.created_at)),
    el("td", { text: duration(job.started_at, job.finished_at) }),
  );
}

function render(items) {
  // rows are replaced one by one, and only when they changed: focus and selection stay put
  const existing = new Map([...body.rows].map((tr) => [tr.dataset.id, tr]));
  let previous = null;
  for (const job of items) {
    const fresh = row(job);
    const old = existing.get(job.id);
    existing.delete(job.id);
    let current = old;
    if (!old) {
      current = fresh;
    } else if (old.textContent !== fresh.textContent || old.dataset.state !== job.state) {
      const focused = old.contains(document.activeElement);
      old.replaceWith(fresh);
      current = fresh;
      if (focused) fresh.querySelector("a").focus();
    }
    const after = previous ? previous.nextSibling : body.firstChild;
    if (current !== after) body.insertBefore(current, after);
    previous = current;
  }
  for (const gone of existing.values()) gone.remove();
  document.getElementById("empty").hidden = items.length > 0;
}

async function load() {
  const began = performance.now();
  const answer = await api(`/api/v1/jobs?${query()}`);
  next = answer.next;
  render(answer.items);
  document.getElementById("newer").disabled = page === 0;
  document.getElementById("older").disabled = !next;
  document.getElementById("page-label").textContent = `page ${page + 1}`;
  document.getElementById("updated").textContent =
    `updated ${new Date().toLocaleTimeString()}`;
  report(null);
  loads += 1;
  // for tests and bench/ui.py: how many loads, and how long the last one took (fetch to rows)
  document.body.dataset.loadMs = (performance.now() - began).toFixed(1);
  document.body.dataset.loads = String(loads);
}

async function main() {
  for (const state of STATES) form.state.append(el("option", { value: state, text: state }));
  showFilters();
  form.addEventListener("submit", applyFilters);
  form.state.addEventListener("change", applyFilters);
  document.getElementById("f-clear").addEventListener("click", () => {
    form.reset();
    applyFilters();
  });
  window.addEventListener("popstate", () => {
    showFilters();
    restart();
  });
  document.getElementById("older").addEventListener("click", () => {
    if (!next) return;
    cursors[page + 1] = next;
    page += 1;
    load().catch(report);
  });
  document.getElementById("newer").addEventListener("click", () => {
    if (page === 0) return;
    page -= 1;
    load().catch(report);
  });
  live.addEventListener("click", () => {
    isLive = !isLive;
    live.setAttribute("aria-pressed", String(isLive));
    live.textContent = `Live updates: ${isLive ? "on" : "off"}`;
  });
  await signIn("/ui/");
  await load();
  document.body.dataset.readyMs = performance.now().toFixed(1); // since navigation start
  document.body.dataset.ready = "true";
  every(2000, load, () => isLive);
}

main().catch(report);
