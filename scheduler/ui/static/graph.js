// The pipeline as a graph, from the job's values file: source channels → scoring flows →
// scoring services → sinks (dead-letter sinks with a dashed red edge). `buildGraph` is pure;
// `drawGraph` renders it into an <svg>, `paintFlows` updates the flows' states and counts.
import { el, number } from "/ui/static/common.js";

const W = 200;
const H = 52;
const COLUMN = 260;
const ROW = 72;
const TOP = 34;
const LEFT = 16;
const COLUMNS = ["source channels", "scoring flows", "scoring services", "sinks"];

function channelDetail(channel) {
  const config = channel.config || {};
  const detail = {
    kafka: config.topic,
    file: (config.path || "").split("/").pop(),
    s3: config.bucket && `${config.bucket}/${config.key}`,
    http: config.path,
  }[channel.type];
  const text = detail ? `${channel.type} · ${detail}` : channel.type;
  return text.length > 30 ? `${text.slice(0, 29)}…` : text;
}

/** Nodes by column and edges, from the values file (`/api/v1/jobs/{id}/values`). */
export function buildGraph(values) {
  const columns = [[], [], [], []];
  const nodes = new Map();
  const edges = [];
  const add = (column, id, node) => {
    if (!nodes.has(id)) {
      const full = { id, column, ...node };
      nodes.set(id, full);
      columns[column].push(full);
    }
    return id;
  };
  const services = new Map((values.scoringServices || []).map((s) => [s.name, s]));
  for (const flow of values.scoringFlows || []) {
    const source = flow.source || {};
    const sourceId = add(0, `source:${source.name || flow.name}`, {
      kind: "channel", title: source.name || `${flow.name} source`, sub: channelDetail(source),
    });
    const flowId = add(1, `flow:${flow.name}`, {
      kind: "flow", flow: flow.name, title: flow.name, sub: flow.mode,
    });
    edges.push({ from: sourceId, to: flowId, kind: "data" });
    const called = new Set();
    for (const step of flow.steps || []) if (step.service) called.add(step.service);
    for (const name of Object.keys(flow.services || {})) called.add(name);
    for (const name of called) {
      const service = services.get(name) || {};
      const replicas = service.replicas ? ` · ${service.replicas} replica(s)` : "";
      const serviceId = add(2, `service:${name}`, {
        kind: "service", title: name, sub: `${service.runtime || "service"}${replicas}`,
      });
      edges.push({ from: flowId, to: serviceId, kind: "calls" });
    }
    const sink = flow.sink || {};
    const sinkId = add(3, `sink:${sink.name || `${flow.name}-sink`}`, {
      kind: "channel", title: sink.name || `${flow.name} sink`, sub: channelDetail(sink),
    });
    edges.push({ from: flowId, to: sinkId, kind: "data" });
    const dead = flow.deadLetter;
    if (dead) {
      const deadId = add(3, `sink:${dead.name || `${flow.name}-dead-letter`}`, {
        kind: "channel", title: dead.name || `${flow.name} dead letter`,
        sub: `dead letter · ${channelDetail(dead)}`,
      });
      edges.push({ from: flowId, to: deadId, kind: "dead" });
    }
  }
  columns.forEach((column, c) => column.forEach((node, r) => {
    node.x = LEFT + c * COLUMN;
    node.y = TOP + r * ROW;
  }));
  return { columns, nodes, edges };
}

function path(a, b) {
  const x1 = a.x + W;
  const y1 = a.y + H / 2;
  const x2 = b.x;
  const y2 = b.y + H / 2;
  const bend = Math.max(40, (x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
}

/** Render the graph into `svg`; returns the description a screen reader gets. */
export function drawGraph(svg, graph) {
  const rows = Math.max(1, ...graph.columns.map((c) => c.length));
  const width = LEFT * 2 + 3 * COLUMN + W;
  const height = TOP + rows * ROW;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.replaceChildren();
  COLUMNS.forEach((name, c) => {
    svg.append(el("svg:text", { class: "column", x: LEFT + c * COLUMN, y: 18, text: name }));
  });
  for (const edge of graph.edges) {
    const a = graph.nodes.get(edge.from);
    const b = graph.nodes.get(edge.to);
    svg.append(el("svg:path", { class: `edge ${edge.kind}`, d: path(a, b) }));
  }
  for (const node of graph.nodes.values()) {
    const group = el("svg:g", {
      class: `node ${node.kind}`, transform: `translate(${node.x},${node.y})`,
      "data-node": node.id,
    },
    el("svg:title", { text: `${node.title}: ${node.sub}` }),
    el("svg:rect", { width: W, height: H, rx: 8 }),
    el("svg:text", { class: "title", x: 10, y: 21, text: node.title }),
    el("svg:text", { class: "sub", x: 10, y: 39, text: node.sub }));
    if (node.kind === "flow") {
      svg.append(el("svg:a", { href: `#flow-${node.flow}`, "aria-label": `flow ${node.flow}` }, group));
    } else {
      svg.append(group);
    }
  }
  const titles = (c) => graph.columns[c].map((n) => n.title).join(", ") || "none";
  return `Source channels: ${titles(0)}. Scoring flows: ${titles(1)}. `
    + `Scoring services: ${titles(2)}. Sinks: ${titles(3)}.`;
}

/** Show each flow's state and input count on its node. */
export function paintFlows(svg, flows) {
  for (const [name, flow] of Object.entries(flows)) {
    const group = svg.querySelector(`[data-node="flow:${CSS.escape(name)}"]`);
    if (!group) continue;
    group.setAttribute("class", `node flow ${flow.state}`);
    group.querySelector(".sub").textContent =
      `${flow.mode} · ${flow.state} · ${number(flow.records_in)} in`;
  }
}
