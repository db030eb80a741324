// A live throughput chart of one flow: records/s in, out and failed over the last samples,
// as an SVG the chart redraws at each sample. The numbers are in its accessible name too.
import { el, number } from "/ui/static/common.js";

const WIDTH = 360;
const HEIGHT = 120;
const KEEP = 90;

export class ThroughputChart {
  constructor(container, flow) {
    this.flow = flow;
    this.samples = [];
    this.svg = el("svg:svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", preserveAspectRatio: "none",
      "aria-label": `flow ${flow} throughput: no sample yet`,
    });
    this.figure = el("figure", { class: "chart", "data-flow": flow },
      el("h3", { text: `${flow}: records/s` }),
      this.svg,
      el("div", { class: "legend", "aria-hidden": "true" },
        el("span", {}, el("span", { class: "sw in" }), "in"),
        el("span", {}, el("span", { class: "sw out" }), "out"),
        el("span", {}, el("span", { class: "sw failed" }), "failed")));
    container.append(this.figure);
  }

  /** One sample of the rates (records/s). */
  push(rates) {
    this.samples.push(rates);
    if (this.samples.length > KEEP) this.samples.shift();
    this.draw();
  }

  draw() {
    const top = Math.max(1, ...this.samples.map((s) => Math.max(s.in, s.out, s.failed)));
    const scale = (HEIGHT - 16) / (top * 1.1);
    const span = Math.min(KEEP, Math.max(this.samples.length, 10)); // the window grows to KEEP
    const step = WIDTH / (span - 1);
    const start = span - this.samples.length;
    const line = (key) => this.samples
      .map((s, i) => `${((start + i) * step).toFixed(1)},${(HEIGHT - 2 - s[key] * scale).toFixed(1)}`)
      .join(" ");
    this.svg.replaceChildren(
      el("svg:line", { class: "axis", x1: 0, y1: HEIGHT - 1, x2: WIDTH, y2: HEIGHT - 1 }),
      el("svg:text", { class: "label", x: 4, y: 11, text: `${number(Math.round(top))}/s` }),
      el("svg:polyline", { class: "in", points: line("in") }),
      el("svg:polyline", { class: "out", points: line("out") }),
      el("svg:polyline", { class: "failed", points: line("failed") }),
    );
    this.figure.dataset.samples = String(this.samples.length);
    const last = this.samples[this.samples.length - 1];
    this.svg.setAttribute("aria-label",
      `flow ${this.flow} throughput now: ${number(Math.round(last.in))} in, `
      + `${number(Math.round(last.out))} out, ${number(Math.round(last.failed))} failed records/s`);
  }
}
