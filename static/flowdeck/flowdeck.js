// Relative times with the exact time on hover: <time datetime="..."> elements are rewritten.
(function () {
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  function relative(el) {
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    const seconds = (when - Date.now()) / 1000;
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size || unit === "second") {
        el.textContent = fmt.format(Math.round(seconds / size), unit);
        break;
      }
    }
    el.title = when.toLocaleString();
  }
  function refresh(root) { root.querySelectorAll("time[datetime].relative").forEach(relative); }
  document.addEventListener("DOMContentLoaded", () => refresh(document));
  document.addEventListener("htmx:afterSwap", (e) => refresh(e.target));
})();

// The phone layout's helpers (see flowdeck.css): the navigation's menu button, table cells
// labelled by their column for the stacked cards, and zoom buttons on step graphs.
(function () {
  document.documentElement.classList.add("js");

  function menu() {
    const button = document.querySelector(".menu-toggle");
    const nav = document.getElementById("main-nav");
    if (!button || !nav) return;
    button.hidden = false;
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && nav.classList.contains("open")) {
        button.setAttribute("aria-expanded", "false");
        nav.classList.remove("open");
        button.focus();
      }
    });
  }

  function labelTables(root) {
    root.querySelectorAll("table").forEach((table) => {
      const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
      if (!headers.length) return;
      table.classList.add("stacked");
      table.querySelectorAll("tbody tr").forEach((row) => {
        [...row.children].forEach((cell, i) => {
          if (headers[i] && !cell.hasAttribute("data-label") && !cell.hasAttribute("colspan")) cell.dataset.label = headers[i];
        });
      });
    });
  }

  function zoomGraphs(root) {
    root.querySelectorAll(".graph-scroll, figure.run-graph").forEach((box) => {
      const svg = box.querySelector(":scope > svg, :scope > div > svg") || box.querySelector("svg");
      if (!svg || box.dataset.zoom) return;
      box.dataset.zoom = "1";
      box.classList.add("graph-box");
      const width = parseFloat(svg.getAttribute("width")), height = parseFloat(svg.getAttribute("height"));
      if (!width || !height) return;
      let scale = 1;
      const bar = document.createElement("div");
      bar.className = "graph-zoom";
      for (const [label, text, factor] of [["Zoom out", "−", 1 / 1.25], ["Zoom in", "+", 1.25], ["Actual size", "1:1", 0]]) {
        const button = document.createElement("button");
        Object.assign(button, { type: "button", className: "secondary", textContent: text, title: label });
        button.setAttribute("aria-label", `${label} the graph`);
        button.addEventListener("click", () => {
          scale = factor ? Math.min(3, Math.max(0.3, scale * factor)) : 1;
          svg.setAttribute("width", width * scale);
          svg.setAttribute("height", height * scale);
        });
        bar.append(button);
      }
      box.before(bar);
    });
  }

  function enhance(root) { labelTables(root); zoomGraphs(root); }
  document.addEventListener("DOMContentLoaded", () => { menu(); enhance(document); });
  document.addEventListener("htmx:afterSwap", (e) => enhance(e.target.parentNode || document));
})();

// "Select all" in a list of checkboxes: shown only with a script, since it needs one.
(function () {
  function wire(root) {
    root.querySelectorAll("input[data-select-all]").forEach((box) => {
      const holder = box.closest("[hidden]");
      if (holder) holder.hidden = false;
      box.addEventListener("change", () => {
        box.form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`).forEach((item) => {
          item.checked = box.checked;
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", () => wire(document));
  document.addEventListener("htmx:afterSwap", (e) => wire(e.target));
})();
