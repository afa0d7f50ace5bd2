// The workflow editor: CodeMirror over the YAML textarea (the form still posts the textarea),
// the published JSON Schema checked in the browser at every change (the `yaml` parser for lines,
// ajv for the schema), the server's semantic checks a moment later (htmx, 300 ms after typing
// stops), problems marked at their lines, and the last good graph kept, greyed, while the YAML has
// problems. Without CodeMirror (or JavaScript) the plain textarea and the server's checks still work.
const textarea = document.getElementById("e-source");
const errorsPanel = () => document.getElementById("spec-errors");

// --- The schema check in the browser ---------------------------------------------------------------

async function schemaChecker() {
  const [YAML, schema] = await Promise.all([
    import(textarea.dataset.yamlModule),
    fetch(textarea.dataset.schemaUrl, { headers: { Accept: "application/json" } }).then((r) => r.json()),
  ]);
  const Ajv = window.ajv2020.default || window.ajv2020;
  // strict off: the schema documents itself with keywords (descriptions on shorthand unions) that
  // ajv's strict mode would refuse, and the server is the one that rejects specs anyway.
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

  return function check(text) {
    const lines = new YAML.LineCounter();
    const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false });
    if (doc.errors.length) {
      return doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return { line: at.line, column: at.col, path: "(YAML syntax)", message: e.message.split("\n")[0],
                 hint: "Check the indentation and the quotes on this line." };
      });
    }
    if (validate(doc.toJS())) return [];
    return dedupe(validate.errors).map((e) => {
      const path = e.instancePath.split("/").slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      const node = doc.getIn(path, true) || doc.contents;
      const at = lines.linePos(node && node.range ? node.range[0] : 0);
      return { line: at.line, column: at.col, path: path.join(".") || "(top level)", ...describe(e) };
    });
  };
}

// allErrors reports every branch of a union ("string or object"); one problem per place and kind is enough.
function dedupe(errors) {
  const seen = new Set();
  return errors.filter((e) => {
    const key = `${e.instancePath} ${e.keyword}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function describe(e) {
  const p = e.params;
  switch (e.keyword) {
    case "additionalProperties":
      return { message: `\`${p.additionalProperty}\` is not a field here`, hint: "Remove it, or check its spelling and indentation." };
    case "required":
      return { message: `\`${p.missingProperty}\` is missing`, hint: `Add \`${p.missingProperty}:\` here.` };
    case "enum":
      return { message: `must be one of ${p.allowedValues.join(", ")}`, hint: "Pick one of the allowed values." };
    case "pattern":
      return { message: "has characters that are not allowed here", hint: "Use lower-case letters, digits and dashes." };
    case "type":
      return { message: `must be ${[].concat(p.type).join(" or ")}`, hint: "Change the value's kind." };
    default:
      return { message: e.message, hint: "See the JSON Schema linked above." };
  }
}

function showProblems(problems) {
  const panel = errorsPanel();
  if (!problems.length) return false;
  const items = problems.map((p) => {
    const li = document.createElement("li");
    Object.assign(li.dataset, { line: p.line, column: p.column, message: p.message });
    const go = document.createElement("button");
    Object.assign(go, { type: "button", className: "link", textContent: `Line ${p.line}, column ${p.column}` });
    Object.assign(go.dataset, { gotoLine: p.line, gotoColumn: p.column });
    const code = document.createElement("code");
    code.textContent = p.path;
    const hint = document.createElement("span");
    Object.assign(hint, { className: "muted", textContent: p.hint });
    li.append(go, " · ", code, document.createElement("br"), p.message, document.createElement("br"), hint);
    return li;
  });
  const intro = document.createElement("p");
  intro.textContent = `${problems.length} problem${problems.length === 1 ? "" : "s"} found in the browser; the server's checks follow:`;
  const list = document.createElement("ul");
  list.className = "errors";
  list.append(...items);
  panel.dataset.source = "browser";
  panel.replaceChildren(intro, list);
  return true;
}

// --- The last good graph ---------------------------------------------------------------------------

function markStale(stale) {
  const preview = document.getElementById("editor-preview");
  if (!preview || preview.dataset.preview !== "ok") return;
  preview.classList.toggle("stale", stale);
  const note = preview.querySelector(".stale-note");
  if (note) note.hidden = !stale;
}

// A blocked answer (the YAML has problems) would replace a graph with a sentence: keep the graph, greyed.
document.body.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (target && target.id === "editor-preview" && target.dataset.preview === "ok"
      && event.detail.serverResponse.includes('data-preview="blocked"')) {
    event.detail.shouldSwap = false;
    markStale(true);
  }
});

// --- CodeMirror ------------------------------------------------------------------------------------

async function start() {
  if (!textarea) return;
  const check = await schemaChecker().catch(() => null);
  let cm = null;
  const checkNow = () => {
    if (!check) return;
    const found = showProblems(check(cm ? cm.getValue() : textarea.value));
    if (found) {
      markStale(true);
      if (cm) markProblems();
    }
  };
  textarea.addEventListener("input", checkNow);
  if (!window.CodeMirror) return;
  const announce = document.getElementById("step-added");
  cm = CodeMirror.fromTextArea(textarea, {
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
    checkNow();
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
    const line = parseInt(goto.dataset.gotoLine, 10) - 1;
    cm.setCursor(line, Math.max(parseInt(goto.dataset.gotoColumn || "1", 10) - 1, 0));
    cm.scrollIntoView({ line, ch: 0 }, 120);
    cm.focus();
  });

  document.body.addEventListener("fd:step-added", (event) => {
    const { source, line, step, changed: edited } = event.detail;
    cm.setValue(source);
    cm.setCursor(line - 1, 0);
    cm.scrollIntoView({ line: line - 1, ch: 0 }, 80);
    if (announce) announce.textContent = `${edited ? "Changed" : "Added"} step ${step} at line ${line}.`;
    changed();
  });
}

start();
