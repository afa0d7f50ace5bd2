// Live tail of a step's log: the newest line stays in view while the page follows the step,
// unless the person scrolled up to read. The page works without it (lines read top to bottom).
(function () {
  let following = true;
  const view = () => document.getElementById("log-view");
  const toBottom = () => { const log = view(); if (log) log.scrollTop = log.scrollHeight; };
  document.addEventListener("DOMContentLoaded", toBottom);
  document.addEventListener("htmx:beforeSwap", () => {
    const log = view();
    following = !log || log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  });
  document.addEventListener("htmx:afterSwap", () => { if (following) toBottom(); });
})();
