// A small line chart drawn on <canvas>: time on x, one or two y axes. No library (offline LAN).
// Each series: {label, color, unit, axis: "left" | "right", points: [[unixSeconds, value], ...]}.
// Time ticks are as many as fit without touching (measured, at round minutes or seconds), and
// every text drawn is recorded in canvas.dataset.boxes ([x, y, w, h] in CSS px) with the window
// in data-from / data-to and each series' last point in data-last, so tests can check them.

import { number, tick } from "./format.js";

const PAD = { top: 26, right: 72, bottom: 26, left: 60 };
const GRID = "#e5e7eb";
const INK = "#5f6b7a";
const TICK_GAP = 12; // px between two time labels at least
const FONT_PX = 12;
const DAY_S = 86400;
const STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 28 * DAY_S, 91 * DAY_S, 365 * DAY_S];

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exponent = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * exponent >= value) return step * exponent;
  }
  return 10 * exponent;
}

function axisLabel(value, unit) {
  if (value === 0) return `0 ${unit}`;
  if (unit === "W" && value >= 1000) return `${number(value / 1000, value % 1000 ? 1 : 0)} kW`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : value >= 1 ? 2 : 3;
  return `${number(value, digits)} ${unit}`;
}

// Time ticks at round multiples of a step, the smallest step whose labels fit apart.
function timeTicks(ctx, x0, x1, plotW) {
  const span = x1 - x0;
  for (const step of STEPS_S) {
    if (span / step > 12) continue;
    const format = { withSeconds: step < 60, withDate: step >= DAY_S };
    const first = Math.ceil(x0 / step) * step;
    const ticks = [];
    for (let t = first; t <= x1 + 1e-6; t += step) ticks.push(t);
    const widest = Math.max(0, ...ticks.map((t) => ctx.measureText(tick(t, format)).width));
    if (ticks.length <= 1 || (plotW * step) / span >= widest + TICK_GAP) return { ticks, format };
  }
  return { ticks: [x0 + span / 2], format: { withSeconds: false, withDate: span > DAY_S } };
}

export function drawChart(canvas, { series, from = null, to = null, emptyText = "" }) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(200, canvas.clientWidth);
  const height = Math.max(120, canvas.clientHeight);
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `${FONT_PX}px system-ui, sans-serif`;
  const boxes = [];
  const text = (label, x, y, align) => {
    const w = ctx.measureText(label).width;
    const left = align === "center" ? x - w / 2 : align === "right" ? x - w : x;
    ctx.textAlign = align;
    ctx.fillText(label, x, y);
    boxes.push([left, y - FONT_PX + 2, w, FONT_PX + 1].map((v) => Math.round(v * 10) / 10));
  };

  const all = series.flatMap((s) => s.points);
  canvas.dataset.points = String(all.length);
  canvas.dataset.last = JSON.stringify(series.map((s) => s.points.at(-1) ?? null));
  if (all.length === 0) {
    ctx.fillStyle = INK;
    text(emptyText, width / 2, height / 2, "center");
    canvas.dataset.boxes = JSON.stringify(boxes);
    canvas.dataset.width = String(width);
    delete canvas.dataset.from;
    delete canvas.dataset.to;
    return;
  }
  const xs = all.map((p) => p[0]);
  let x0 = from ?? Math.min(...xs);
  let x1 = to ?? Math.max(...xs);
  if (x1 - x0 < 1) { x0 -= 30; x1 += 30; }
  canvas.dataset.from = String(x0);
  canvas.dataset.to = String(x1);
  const axes = {};
  for (const s of series) {
    const axis = s.axis || "left";
    const top = Math.max(0, ...s.points.map((p) => p[1]));
    axes[axis] = { unit: s.unit, max: niceMax(Math.max(axes[axis]?.max ?? 0, top)) };
  }
  const divisions = height - PAD.top - PAD.bottom >= 4 * (FONT_PX + 6) ? 4 : 2;
  const labelsOf = (axis) => (axes[axis]
    ? Array.from({ length: divisions + 1 }, (_, i) => axisLabel((axes[axis].max * i) / divisions, axes[axis].unit))
    : []);
  const widest = (labels) => Math.max(0, ...labels.map((l) => ctx.measureText(l).width));
  const leftLabels = labelsOf("left");
  const rightLabels = labelsOf("right");
  // the axes' labels decide the margins: a 6-digit kWh label never runs off the canvas
  const pad = {
    top: PAD.top, bottom: PAD.bottom,
    left: Math.max(PAD.left, Math.ceil(widest(leftLabels)) + 10),
    right: rightLabels.length ? Math.ceil(widest(rightLabels)) + 10 : 16,
  };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * plotW;

  // Grid and y labels.
  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  ctx.fillStyle = INK;
  for (let i = 0; i <= divisions; i++) {
    const y = pad.top + plotH - (i / divisions) * plotH;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + plotW, y);
    ctx.stroke();
    if (leftLabels.length) text(leftLabels[i], pad.left - 6, y + 4, "right");
    if (rightLabels.length) text(rightLabels[i], pad.left + plotW + 6, y + 4, "left");
  }
  // Time labels: round times, as many as fit apart, each kept inside the canvas.
  const { ticks, format } = timeTicks(ctx, x0, x1, plotW);
  let lastRight = -Infinity;
  for (const t of ticks) {
    const label = tick(t, format);
    const w = ctx.measureText(label).width;
    const x = Math.min(Math.max(sx(t), w / 2 + 2), width - w / 2 - 2);
    if (x - w / 2 < lastRight + TICK_GAP) continue;
    text(label, x, height - 8, "center");
    lastRight = x + w / 2;
  }

  // Lines (clipped to the plot: clocks of charger and browser may differ a little) and legend.
  let legendX = 8;
  for (const s of series) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top - 2, plotW, plotH + 4);
    ctx.clip();
    const axis = axes[s.axis || "left"];
    const sy = (v) => pad.top + plotH - (Math.max(0, v) / axis.max) * plotH;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    s.points.forEach(([t, v], i) => (i === 0 ? ctx.moveTo(sx(t), sy(v)) : ctx.lineTo(sx(t), sy(v))));
    ctx.stroke();
    if (s.points.length === 1) {
      ctx.fillStyle = s.color;
      ctx.fillRect(sx(s.points[0][0]) - 2, sy(s.points[0][1]) - 2, 4, 4);
    }
    ctx.restore();
    ctx.fillStyle = s.color;
    ctx.fillRect(legendX, 8, 12, 4);
    ctx.fillStyle = INK;
    text(s.label, legendX + 16, 14, "left");
    legendX += ctx.measureText(s.label).width + 32;
  }
  canvas.dataset.boxes = JSON.stringify(boxes);
  canvas.dataset.width = String(width);
}
