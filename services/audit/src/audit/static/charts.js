/* Small SVG charts for the ops console: horizontal bars (one or more series per row), a
   progress gauge, and a line chart. Shipped with the service; no external code. */
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(width, height) {
    return el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  }

  function empty(container, message) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message || "No data yet.";
    container.append(p);
  }

  function fmt(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  /* rows: [{label, values: [number, …]}]; series: names of the values (legend). */
  function bars(container, rows, series) {
    if (!rows.length) return empty(container);
    // Room for the longest label (about 6.5 px a character at 11 px).
    const labelWidth = Math.min(320, 12 + 6.2 * Math.max(...rows.map((r) => r.label.length)));
    const width = 560, barHeight = 12, gap = 8;
    const rowHeight = series.length * barHeight + gap;
    const legend = series.length > 1 ? 18 : 0;
    const height = legend + rows.length * rowHeight + 4;
    const max = Math.max(1, ...rows.flatMap((r) => r.values));
    const scale = (width - labelWidth - 50) / max;
    const chart = svg(width, height);
    series.forEach((name, i) => {
      if (!legend) return;
      chart.append(el("rect", { x: labelWidth + i * 110, y: 2, width: 10, height: 10, class: `s${i}` }));
      chart.append(el("text", { x: labelWidth + i * 110 + 14, y: 11 }, name));
    });
    rows.forEach((row, r) => {
      const top = legend + r * rowHeight;
      chart.append(el("text", { x: labelWidth - 6, y: top + rowHeight / 2, "text-anchor": "end",
        "dominant-baseline": "middle" }, row.label));
      row.values.forEach((value, i) => {
        const y = top + i * barHeight;
        const bar = el("rect", { x: labelWidth, y, width: Math.max(1, value * scale),
          height: barHeight - 2, class: `bar s${i}` });
        bar.append(el("title", {}, `${row.label} — ${series[i]}: ${fmt(value)}`));
        chart.append(bar);
        chart.append(el("text", { x: labelWidth + value * scale + 4, y: y + barHeight - 3 }, fmt(value)));
      });
    });
    chart.append(el("line", { x1: labelWidth, x2: labelWidth, y1: legend, y2: height, class: "axis" }));
    container.replaceChildren(chart);
  }

  /* A share as a filled track with a caption. */
  function gauge(container, share, caption) {
    const width = 520, height = 46;
    const chart = svg(width, height);
    chart.append(el("rect", { x: 0, y: 4, width, height: 18, rx: 3, class: "track" }));
    if (share !== null) {
      chart.append(el("rect", { x: 0, y: 4, width: Math.max(1, share * width), height: 18, rx: 3,
        class: "bar s3" }));
    }
    chart.append(el("text", { x: 0, y: 40 }, caption));
    container.replaceChildren(chart);
  }

  /* points: [{label, values: [number, …]}] in order; series: names of the values. */
  function lines(container, points, series) {
    if (!points.length) return empty(container);
    const width = 1000, height = 200, left = 40, right = 50, bottom = 30, top = 24;
    const max = Math.max(1, ...points.flatMap((p) => p.values));
    const span = width - left - right - 20;
    const x = (i) => left + 20 + (points.length === 1 ? span / 2 : (i * span) / (points.length - 1));
    const y = (v) => height - bottom - (v / max) * (height - bottom - top);
    const chart = svg(width, height);
    chart.append(el("line", { x1: left, x2: width, y1: y(0), y2: y(0), class: "axis" }));
    chart.append(el("text", { x: left - 6, y: y(max), "text-anchor": "end" }, fmt(max)));
    chart.append(el("text", { x: left - 6, y: y(0), "text-anchor": "end" }, "0"));
    series.forEach((name, s) => {
      chart.append(el("rect", { x: left + s * 120, y: 2, width: 10, height: 10, class: `s${s}` }));
      chart.append(el("text", { x: left + s * 120 + 14, y: 11 }, name));
      const coords = points.map((p, i) => `${x(i)},${y(p.values[s])}`).join(" ");
      chart.append(el("polyline", { points: coords, class: `line s${s}` }));
      points.forEach((p, i) => {
        const dot = el("circle", { cx: x(i), cy: y(p.values[s]), r: 3, class: `s${s}` });
        dot.append(el("title", {}, `${p.label} — ${name}: ${p.values[s]}`));
        chart.append(dot);
      });
    });
    points.forEach((p, i) => {
      chart.append(el("text", { x: x(i), y: height - 10, "text-anchor": "middle" }, p.label));
    });
    container.replaceChildren(chart);
  }

  return { bars, gauge, lines, empty };
})();
