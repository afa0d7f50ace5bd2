// Draws each <canvas data-chart="ID"> from the JSON in <script id="ID"> (apps/runs/history.py's
// Chart.data) with Chart.js, in the page's colours (light or dark, redrawn when the scheme changes).
// Without script the table beneath each chart shows the same data.
(function () {
  if (!window.Chart) return;
  const charts = [];

  function colours() {
    const style = getComputedStyle(document.documentElement);
    const value = (name) => style.getPropertyValue(name).trim();
    return { fg: value("--fg"), muted: value("--muted"), line: value("--line"), ok: value("--ok"), bad: value("--bad"),
      warn: value("--warn"), info: value("--info"), accent: value("--accent") };
  }

  function stateColour(state, c) {
    return { succeeded: c.ok, failed: c.bad, cancelled: c.bad, running: c.info, queued: c.info }[state] || c.warn;
  }

  function config(data, c) {
    const datasets = [{
      type: data.kind, label: data.title, data: data.values, borderColor: data.kind === "line" ? c.info : undefined,
      backgroundColor: data.states ? data.states.map((s) => stateColour(s, c)) : (data.kind === "line" ? c.info : c.accent),
      pointRadius: data.kind === "line" ? 2 : undefined, spanGaps: true, borderWidth: data.kind === "line" ? 2 : 0,
    }];
    if (data.threshold) {
      datasets.push({ type: "line", label: data.thresholdLabel, data: data.labels.map(() => data.threshold),
        borderColor: c.bad, borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0 });
    }
    const ticks = { color: c.muted };
    return {
      type: data.kind,
      data: { labels: data.labels, datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: {
          legend: { display: Boolean(data.threshold), labels: { color: c.fg } },
          tooltip: { callbacks: { label: (item) => item.datasetIndex === 0 ? data.shown[item.dataIndex] : data.thresholdLabel } },
        },
        scales: {
          x: { ticks: { ...ticks, maxRotation: 0, autoSkip: true }, grid: { color: c.line } },
          y: { beginAtZero: true, max: data.unit === "percent" ? 100 : undefined,
            ticks: { ...ticks, precision: data.unit === "records" || data.unit === "runs" ? 0 : undefined },
            title: { display: true, text: data.unit, color: c.muted },
            grid: { color: c.line } },
        },
      },
    };
  }

  function draw() {
    charts.splice(0).forEach((chart) => chart.destroy());
    const c = colours();
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const source = document.getElementById(canvas.dataset.chart);
      if (source) charts.push(new window.Chart(canvas, config(JSON.parse(source.textContent), c)));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);
})();
