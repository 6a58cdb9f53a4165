// A small line chart drawn on <canvas>: time on x, one or two y axes. No library (offline LAN).
// Each series: {label, color, unit, axis: "left" | "right", points: [[unixSeconds, value], ...]}.

import { clock } from "./format.js";

const PAD = { top: 26, right: 80, bottom: 26, left: 60 };
const GRID = "#e5e7eb";
const INK = "#5f6b7a";

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
  if (unit === "W" && value >= 1000) return `${(value / 1000).toFixed(value % 1000 ? 1 : 0)} kW`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : value >= 1 ? 2 : 3;
  return `${value.toFixed(digits)} ${unit}`;
}

export function drawChart(canvas, { series, from = null, to = null, emptyText = "No data yet" }) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(200, canvas.clientWidth);
  const height = Math.max(120, canvas.clientHeight);
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";

  const all = series.flatMap((s) => s.points);
  canvas.dataset.points = String(all.length);
  if (all.length === 0) {
    ctx.fillStyle = INK;
    ctx.textAlign = "center";
    ctx.fillText(emptyText, width / 2, height / 2);
    return;
  }
  const xs = all.map((p) => p[0]);
  let x0 = from ?? Math.min(...xs);
  let x1 = to ?? Math.max(...xs);
  if (x1 - x0 < 1) { x0 -= 30; x1 += 30; }
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * plotW;

  const axes = {};
  for (const s of series) {
    const axis = s.axis || "left";
    const top = Math.max(0, ...s.points.map((p) => p[1]));
    axes[axis] = { unit: s.unit, max: niceMax(Math.max(axes[axis]?.max ?? 0, top)) };
  }

  // Grid and y labels (4 divisions).
  ctx.strokeStyle = GRID;
  ctx.lineWidth = 1;
  ctx.fillStyle = INK;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + plotH - (i / 4) * plotH;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(PAD.left + plotW, y);
    ctx.stroke();
    if (axes.left) {
      ctx.textAlign = "right";
      ctx.fillText(axisLabel((axes.left.max * i) / 4, axes.left.unit), PAD.left - 6, y + 4);
    }
    if (axes.right) {
      ctx.textAlign = "left";
      ctx.fillText(axisLabel((axes.right.max * i) / 4, axes.right.unit), PAD.left + plotW + 6, y + 4);
    }
  }
  // Time labels: start, middle, end.
  ctx.textAlign = "center";
  for (const t of [x0, (x0 + x1) / 2, x1]) {
    ctx.fillText(clock(t), Math.min(Math.max(sx(t), PAD.left + 30), PAD.left + plotW - 30), height - 8);
  }

  // Lines (clipped to the plot: clocks of charger and browser may differ a little) and legend.
  let legendX = PAD.left;
  for (const s of series) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top - 2, plotW, plotH + 4);
    ctx.clip();
    const axis = axes[s.axis || "left"];
    const sy = (v) => PAD.top + plotH - (Math.max(0, v) / axis.max) * plotH;
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
    ctx.textAlign = "left";
    ctx.fillText(s.label, legendX + 16, 14);
    legendX += ctx.measureText(s.label).width + 40;
  }
}
