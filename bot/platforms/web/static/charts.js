// Tiny SVG charts (no library): bars of ratings per model version, a line of training loss,
// the two arms of an A/B experiment.
// Labels are set with textContent, so version names cannot inject markup.
"use strict";

const charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // stats: [{model_version, ratings, positive_share, mean_score}]
  function ratings(stats, title) {
    const width = 480, rowH = 34, left = 110, right = 110;
    const height = Math.max(1, stats.length) * rowH + 30;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
    root.append(svg("title", {}, title));
    const plot = width - left - right;
    root.append(svg("text", { x: left, y: 12 }, "% 👍 (green) and mean score −1…1 (blue)"));
    stats.forEach((s, i) => {
      const y = 22 + i * rowH;
      root.append(svg("text", { x: 0, y: y + 16 }, s.model_version.slice(0, 18)));
      const share = s.ratings ? s.positive_share : 0;
      root.append(svg("rect", { x: left, y: y + 2, width: Math.max(1, share * plot), height: 11, class: "bar-pos" }));
      const mean = (s.mean_score + 1) / 2;
      root.append(svg("rect", { x: left, y: y + 15, width: Math.max(1, mean * plot), height: 11, class: "bar-mean" }));
      const label = s.ratings ? `${Math.round(share * 100)}% of ${s.ratings}` : "no ratings";
      root.append(svg("text", { x: width - right + 6, y: y + 16 }, label));
    });
    root.append(svg("line", { x1: left, y1: 18, x2: left, y2: height, class: "axis" }));
    return root;
  }

  // points: [[step, loss], ...]
  function loss(points, title) {
    const width = 460, height = 180, pad = 34;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
    root.append(svg("title", {}, title));
    if (!points.length) return root;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
    const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x) => pad + ((x - x0) / ((x1 - x0) || 1)) * (width - 2 * pad);
    const sy = (y) => height - pad + -((y - y0) / ((y1 - y0) || 1)) * (height - 2 * pad);
    const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    root.append(svg("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, class: "axis" }));
    root.append(svg("path", { d: path, class: "loss" }));
    root.append(svg("text", { x: 2, y: pad }, y1.toFixed(2)));
    root.append(svg("text", { x: 2, y: height - pad }, y0.toFixed(2)));
    root.append(svg("text", { x: width - pad - 60, y: height - 8 }, `step ${x1}`));
    return root;
  }

  // loss_log entries may be {step, loss} objects or [step, loss] pairs
  function lossPoints(log) {
    return (log || []).map((e, i) => Array.isArray(e) ? [Number(e[0]), Number(e[1])]
      : [Number(e.step ?? i), Number(e.loss ?? e.train_loss)]).filter((p) => isFinite(p[0]) && isFinite(p[1]));
  }

  // arms: [{arm, version, up_share, interval: [low, high], ratings}]: each arm's 95 % interval
  // as a band and its 👍 share as a dot (no dot before its first rating)
  function ab(arms, title) {
    const width = 480, rowH = 34, left = 150, right = 24, top = 22;
    const height = arms.length * rowH + top + 18;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
    root.append(svg("title", {}, title));
    const plot = width - left - right;
    const x = (share) => left + share * plot;
    root.append(svg("text", { x: left, y: 12 }, "% 👍 with its 95 % interval"));
    arms.forEach((a, i) => {
      const y = top + i * rowH + rowH / 2;
      root.append(svg("text", { x: 0, y: y + 4 }, `${a.arm}: ${a.version.slice(0, 16)}`));
      const [low, high] = a.interval;
      root.append(svg("rect", { x: x(low), y: y - 5, width: Math.max(1, x(high) - x(low)), height: 10, class: `ab-band ab-${a.arm}` }));
      if (a.up_share !== null) {
        root.append(svg("circle", { cx: x(a.up_share), cy: y, r: 6, class: `ab-dot ab-${a.arm}` }));
        root.append(svg("text", { x: x(a.up_share), y: y - 9, "text-anchor": "middle" }, `${Math.round(a.up_share * 100)}%`));
      }
    });
    const bottom = height - 14;
    root.append(svg("line", { x1: left, y1: bottom, x2: width - right, y2: bottom, class: "axis" }));
    for (const tick of [0, 0.5, 1]) root.append(svg("text", { x: x(tick), y: height - 2, "text-anchor": "middle" }, `${tick * 100}%`));
    return root;
  }

  return { ratings, loss, lossPoints, ab };
})();
