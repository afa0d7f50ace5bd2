// The workflow editor: CodeMirror over the YAML textarea (the form still posts the textarea),
// problems marked at their lines, steps added by the catalog and form mode applied in place.
// Without CodeMirror (or JavaScript) the plain textarea and the server's checks still work.
(function () {
  function start() {
    const textarea = document.getElementById("e-source");
    if (!textarea || !window.CodeMirror) return;
    const announce = document.getElementById("step-added");
    const cm = CodeMirror.fromTextArea(textarea, {
      // The editor grows with the YAML and wraps long lines, so the page is the only thing that
      // scrolls: nothing inside it needs a pointer or a focus trap to reach.
      mode: "yaml", lineNumbers: true, indentUnit: 2, tabSize: 2, lineWrapping: true, viewportMargin: Infinity,
      gutters: ["fd-problems", "CodeMirror-linenumbers"],
      extraKeys: {
        Tab: (editor) => editor.replaceSelection("  "),
        // CodeMirror keeps Tab for indenting, so Esc is the keyboard way out of the editor.
        Esc: () => document.getElementById("e-message").focus(),
      },
    });
    const input = cm.getInputField();
    input.setAttribute("aria-label", "Workflow YAML");
    input.setAttribute("aria-describedby", "e-source-help spec-errors");
    document.querySelector('label[for="e-source"]').addEventListener("click", () => cm.focus());

    function changed() {
      cm.save();
      htmx.trigger(textarea, "fd:changed");
    }
    cm.on("change", changed);

    let marked = [];
    function markProblems() {
      cm.clearGutter("fd-problems");
      marked.forEach((handle) => cm.removeLineClass(handle, "background", "fd-problem-line"));
      marked = [];
      document.querySelectorAll("#spec-errors [data-line]").forEach((item) => {
        const line = parseInt(item.dataset.line, 10) - 1;
        if (line < 0 || line >= cm.lineCount()) return;
        const marker = document.createElement("span");
        marker.className = "fd-problem-marker";
        marker.textContent = "●";
        marker.title = item.dataset.message;
        cm.setGutterMarker(line, "fd-problems", marker);
        marked.push(cm.addLineClass(line, "background", "fd-problem-line"));
      });
    }
    markProblems();
    document.body.addEventListener("htmx:afterSettle", markProblems);

    document.addEventListener("click", (event) => {
      const goto = event.target.closest("[data-goto-line]");
      if (!goto) return;
      cm.setCursor(parseInt(goto.dataset.gotoLine, 10) - 1, Math.max(parseInt(goto.dataset.gotoColumn || "1", 10) - 1, 0));
      cm.focus();
    });

    document.body.addEventListener("fd:step-added", (event) => {
      const { source, line, step } = event.detail;
      cm.setValue(source);
      cm.setCursor(line - 1, 0);
      cm.scrollIntoView({ line: line - 1, ch: 0 }, 80);
      if (announce) announce.textContent = `Added step ${step} at line ${line}.`;
      changed();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
