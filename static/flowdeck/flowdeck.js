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
