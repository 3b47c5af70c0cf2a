/* plugins_app code editor: turns <textarea data-code-editor="javascript|json"> (rendered by
 * plugins_app.widgets.CodeEditorWidget) and <pre data-code-editor="..."> (read-only
 * displays) into CodeMirror 6 editors. Progressive enhancement: without this script the
 * plain textarea works; with it, the textarea stays in the form (hidden) and always holds
 * the editor's text, so submitting the form and scripts reading the textarea see it.
 *
 * Built into plugins_app/static/plugins_app/editor/editor.js by ../build.sh.
 *
 * Public API (window.PluginsAppEditor), for other admin scripts (console, tests):
 *   enhance(root = document)      enhance every not yet enhanced element under root
 *   get(elementOrSelector)        the handle of an enhanced textarea/pre (or null)
 *   all()                         every handle on the page
 * A handle has: view (the EditorView), element (the original textarea or pre), language,
 *   getValue(), setValue(text), focus(),
 *   markError(line, column, message)   mark a 1-based line (and 1-based column) as an error
 *   clearError(), error()              remove the mark / the current mark ({line, column, message} or null)
 * An enhanced element carries data-code-editor-ready and the "plugins-app-editor:ready" event
 * (bubbling, detail = handle) is dispatched on it.
 */
import { EditorView } from "codemirror";
import {
  Decoration,
  WidgetType,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  drawSelection,
  dropCursor,
  rectangularSelection,
} from "@codemirror/view";
import { EditorState, StateEffect, StateField, RangeSetBuilder } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  foldGutter,
  foldKeymap,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
import { linter, lintGutter, lintKeymap } from "@codemirror/lint";
import { javascript } from "@codemirror/lang-javascript";
import { json, jsonParseLinter } from "@codemirror/lang-json";
import { classHighlighter } from "@lezer/highlight";

const SELECTOR = "textarea[data-code-editor], pre[data-code-editor]";
const handles = new Map(); // element -> handle

// -- the marked validation error ---------------------------------------------------------
const setError = StateEffect.define();

class ErrorMessageWidget extends WidgetType {
  constructor(message) {
    super();
    this.message = message;
  }
  eq(other) {
    return other.message === this.message;
  }
  toDOM() {
    const span = document.createElement("span");
    span.className = "cm-plugins-app-error-message";
    span.textContent = this.message;
    return span;
  }
  ignoreEvent() {
    return false;
  }
}

/** {line, column, message, from, to} of the marked error, kept in place while the text
 * around it changes and removed once the marked line itself is edited. */
const errorField = StateField.define({
  create: () => null,
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setError)) value = effect.value;
    if (value && tr.docChanged) {
      if (tr.changes.touchesRange(value.lineFrom, value.lineTo)) return null;
      value = {
        ...value,
        lineFrom: tr.changes.mapPos(value.lineFrom),
        lineTo: tr.changes.mapPos(value.lineTo),
        from: tr.changes.mapPos(value.from),
        to: tr.changes.mapPos(value.to),
      };
    }
    return value;
  },
  provide: (field) =>
    EditorView.decorations.from(field, (value) => {
      if (!value) return Decoration.none;
      const builder = new RangeSetBuilder();
      builder.add(
        value.lineFrom,
        value.lineFrom,
        Decoration.line({
          class: "cm-plugins-app-error-line",
          attributes: { "data-error-line": String(value.line), title: value.message || "" },
        }),
      );
      if (value.to > value.from) {
        builder.add(value.from, value.to, Decoration.mark({ class: "cm-plugins-app-error-mark" }));
      }
      if (value.message) {
        builder.add(
          value.lineTo,
          value.lineTo,
          Decoration.widget({ widget: new ErrorMessageWidget(value.message), side: 1 }),
        );
      }
      return builder.finish();
    }),
});

function errorSpec(state, line, column, message) {
  const lineNo = Math.min(Math.max(1, Number(line) || 1), state.doc.lines);
  const docLine = state.doc.line(lineNo);
  let from = docLine.from;
  let to = docLine.to;
  if (column) {
    from = Math.min(docLine.from + Math.max(1, Number(column)) - 1, docLine.to);
    to = Math.min(from + 1, docLine.to);
    if (to === from && from > docLine.from) from -= 1; // "end of input": mark the last character
  }
  return {
    line: lineNo,
    column: column ? Number(column) : null,
    message: message || "",
    lineFrom: docLine.from,
    lineTo: docLine.to,
    from,
    to,
  };
}

// -- status line: cursor position, so error positions can be found by hand too -----------
function statusLine(statusElement, readOnly) {
  const show = (state) => {
    if (readOnly) {
      statusElement.textContent = `${state.doc.lines} line${state.doc.lines === 1 ? "" : "s"}`;
      return;
    }
    const head = state.selection.main.head;
    const line = state.doc.lineAt(head);
    statusElement.textContent = `Line ${line.number}, column ${head - line.from + 1}`;
  };
  const extension = EditorView.updateListener.of((update) => {
    if (update.docChanged || update.selectionSet) show(update.state);
  });
  return { extension, show };
}

// -- editor construction ------------------------------------------------------------------
function languageExtensions(language) {
  if (language === "json") {
    const parseErrors = jsonParseLinter();
    // Empty means "none" (or {}) for the JSON fields: not an error.
    const lint = (view) => (view.state.doc.toString().trim() ? parseErrors(view) : []);
    return [json(), linter(lint, { delay: 400 }), lintGutter()];
  }
  return [javascript()];
}

function labelText(element) {
  if (!element.id) return element.getAttribute("aria-label") || "";
  const label = document.querySelector(`label[for="${CSS.escape(element.id)}"]`);
  return label ? label.textContent.replace(/[:\s]+$/, "").trim() : element.getAttribute("aria-label") || "";
}

function create(element) {
  if (handles.has(element)) return handles.get(element);
  const isTextarea = element.tagName === "TEXTAREA";
  const language = element.dataset.codeEditor === "json" ? "json" : "javascript";
  const readOnly = !isTextarea || element.readOnly || element.disabled || "readonly" in element.dataset;
  const text = isTextarea ? element.value : element.textContent;

  const wrapper = document.createElement("div");
  wrapper.className = "plugins-app-editor" + (readOnly ? " plugins-app-editor-readonly" : "");
  wrapper.dataset.language = language;
  const rows = Number(element.getAttribute("rows")) || 0;
  if (rows && !readOnly) wrapper.style.setProperty("--plugins-app-editor-rows", String(rows));
  const status = document.createElement("div");
  status.className = "plugins-app-editor-status";
  const hint = document.createElement("span");
  hint.className = "plugins-app-editor-hint";
  hint.textContent = readOnly ? "read-only" : "Tab indents; Esc then Tab leaves the editor";
  const position = document.createElement("span");
  status.append(position, hint);

  const { extension: positionListener, show } = statusLine(position, readOnly);
  const contentAttributes = { "aria-label": labelText(element) || `${language} code` };
  if (element.getAttribute("aria-describedby")) contentAttributes["aria-describedby"] = element.getAttribute("aria-describedby");
  if (element.getAttribute("aria-invalid")) contentAttributes["aria-invalid"] = element.getAttribute("aria-invalid");

  const extensions = [
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightSpecialChars(),
    foldGutter(),
    drawSelection(),
    syntaxHighlighting(classHighlighter),
    bracketMatching(),
    highlightSelectionMatches(),
    search({ top: true }),
    indentUnit.of("  "),
    EditorState.tabSize.of(2),
    languageExtensions(language),
    errorField,
    positionListener,
    EditorView.contentAttributes.of(contentAttributes),
    keymap.of([...defaultKeymap, ...searchKeymap, ...foldKeymap, ...lintKeymap]),
  ];
  if (readOnly) {
    extensions.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  } else {
    extensions.push(
      history(),
      dropCursor(),
      rectangularSelection(),
      indentOnInput(),
      closeBrackets(),
      highlightActiveLine(),
      keymap.of([...closeBracketsKeymap, ...historyKeymap, indentWithTab]),
    );
    if (isTextarea) {
      extensions.push(
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          element.value = update.state.doc.toString();
          element.dispatchEvent(new Event("input", { bubbles: true }));
        }),
      );
    }
  }

  element.parentNode.insertBefore(wrapper, element.nextSibling);
  const view = new EditorView({
    parent: wrapper,
    state: EditorState.create({ doc: text, extensions }),
  });
  wrapper.appendChild(status);
  show(view.state);

  if (isTextarea) {
    element.hidden = true;
    element.style.display = "none";
    // A hidden required field would block submitting with a message nobody can see; the
    // server checks the field anyway.
    element.required = false;
    const form = element.form;
    if (form && !readOnly) {
      form.addEventListener("submit", () => {
        element.value = view.state.doc.toString();
      });
    }
    if (element.id) {
      for (const label of document.querySelectorAll(`label[for="${CSS.escape(element.id)}"]`)) {
        label.addEventListener("click", (event) => {
          event.preventDefault();
          view.focus();
        });
      }
    }
  } else {
    element.hidden = true;
    element.style.display = "none";
  }

  const handle = {
    view,
    element,
    language,
    readOnly,
    getValue: () => view.state.doc.toString(),
    setValue(value) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: String(value) } });
    },
    focus: () => view.focus(),
    markError(line, column, message) {
      const spec = errorSpec(view.state, line, column, message);
      view.dispatch({
        effects: [setError.of(spec), EditorView.scrollIntoView(spec.from, { y: "center" })],
      });
      wrapper.dataset.errorLine = String(spec.line);
    },
    clearError() {
      view.dispatch({ effects: setError.of(null) });
      delete wrapper.dataset.errorLine;
    },
    error() {
      const value = view.state.field(errorField);
      return value ? { line: value.line, column: value.column, message: value.message } : null;
    },
  };
  handles.set(element, handle);
  wrapper.pluginsAppEditor = handle;
  element.pluginsAppEditor = handle;

  const line = element.dataset.errorLine;
  if (line) handle.markError(line, element.dataset.errorColumn, element.dataset.errorMessage);
  element.dataset.codeEditorReady = "";
  element.dispatchEvent(new CustomEvent("plugins-app-editor:ready", { bubbles: true, detail: handle }));
  return handle;
}

function enhance(root = document) {
  const found = [];
  const elements = root.matches && root.matches(SELECTOR) ? [root] : root.querySelectorAll(SELECTOR);
  for (const element of elements) {
    if (element.closest(".empty-form")) continue; // admin inline templates, copied later
    try {
      found.push(create(element));
    } catch (error) {
      // The plain textarea keeps working.
      console.error("plugins_app editor: could not enhance", element, error);
    }
  }
  return found;
}

function get(target) {
  const element = typeof target === "string" ? document.querySelector(target) : target;
  if (!element) return null;
  return handles.get(element) || element.pluginsAppEditor || null;
}

window.PluginsAppEditor = { enhance, get, all: () => [...handles.values()], EditorView };

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => enhance());
} else {
  enhance();
}
document.addEventListener("formset:added", (event) => enhance(event.target));
