// The widget page's keyboard and click niceties for annotations. Everything works without
// this file (Edit is a link to the edit page); it only adds:
// - in an inline edit: Enter saves, Shift+Enter starts a new line, Escape cancels;
// - clicking your own annotation's text opens its inline edit;
// - a live update of the thread never replaces an edit that is open.
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.closest("form.annotation-edit")) return;
    if (event.isComposing) return;
    var form = field.form;
    if (event.key === "Escape") {
      event.preventDefault();
      var cancel = form.querySelector(".cancel");
      if (cancel) cancel.click();
    } else if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // An inline edit opens with the caret after the text, so typing adds to it instead of being
  // glued to its start (htmx focuses a swapped-in [autofocus] field with the caret at 0).
  document.addEventListener("htmx:afterSettle", function (event) {
    var root = event.detail && event.detail.elt;
    if (!(root instanceof Element)) return;
    var field = root.matches("form.annotation-edit textarea[autofocus]") ? root : root.querySelector("form.annotation-edit textarea[autofocus]");
    if (!field) return;
    var end = field.value.length;
    field.focus();
    field.setSelectionRange(end, end);
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element) || target.closest("a, button")) return;
    var body = target.closest(".annotation .body");
    if (!body) return;
    var selection = window.getSelection();
    if (selection && !selection.isCollapsed) return; // selecting text, not editing
    var edit = body.parentElement.querySelector(".own-actions .edit");
    if (edit) {
      event.preventDefault();
      edit.click();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var idiomorph = window.Idiomorph;
    if (!idiomorph || !idiomorph.defaults) return;
    var callbacks = idiomorph.defaults.callbacks || (idiomorph.defaults.callbacks = {});
    var previous = callbacks.beforeNodeMorphed;
    callbacks.beforeNodeMorphed = function (oldNode, newNode) {
      if (oldNode instanceof Element && oldNode.hasAttribute("data-editing")) return false;
      return previous ? previous(oldNode, newNode) : true;
    };
  });
})();
