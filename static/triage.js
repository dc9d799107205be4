// The triage board's keyboard and selection. No framework: htmx does every request; this
// script only moves focus, clicks the row's own buttons and keeps the selection across swaps.
(function () {
  "use strict";

  var selected = new Set(); // annotation ids, kept across live morphs and row swaps
  var anchor = null; // the last row clicked, for shift-click ranges
  var currentId = null; // the focused row, so focus survives a swap
  var currentIndex = 0; // …and its place, for when the row leaves the queue

  function board() { return document.querySelector(".triage-board"); }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#triage-queue tr.triage-row")); }
  function rowOf(el) { return el && el.closest ? el.closest("tr.triage-row") : null; }
  function byId(id) { return id ? document.getElementById("row-" + id) : null; }
  function currentRow() { return rowOf(document.activeElement) || byId(currentId); }
  function dialog() { return document.getElementById("triage-dialog"); }
  function help() { return document.getElementById("triage-help"); }

  function focusRow(row, preventScroll) {
    if (!row) return;
    currentId = row.getAttribute("data-id");
    currentIndex = Math.max(0, rows().indexOf(row));
    row.focus({ preventScroll: !!preventScroll });
  }

  function move(delta) {
    var all = rows();
    if (!all.length) return;
    var i = all.indexOf(currentRow());
    var next = i < 0 ? all[0] : all[Math.max(0, Math.min(all.length - 1, i + delta))];
    focusRow(next);
  }

  // htmx binds swapped-in buttons when the swap settles (20 ms later); a quick key must not
  // click one before that, so bind it now (binding twice is a no-op).
  function activate(el) {
    if (!el || el.disabled) return;
    if (window.htmx) window.htmx.process(el);
    el.click();
  }

  function press(row, selector) {
    activate(row && row.querySelector(selector));
  }

  function syncSelection() {
    var present = new Set();
    rows().forEach(function (row) {
      var id = row.getAttribute("data-id");
      var on = selected.has(id);
      var box = row.querySelector('input[name="sel"]');
      present.add(id);
      if (box) box.checked = on;
      row.classList.toggle("selected", on);
    });
    // Count only what a bulk action would send.
    selected.forEach(function (id) { if (!present.has(id)) selected.delete(id); });
    var count = document.getElementById("bulk-count");
    if (count) count.textContent = selected.size + " selected";
    var bulk = document.getElementById("triage-bulk");
    if (bulk) {
      bulk.classList.toggle("has-selection", selected.size > 0);
      // With nothing selected a bulk action has nothing to act on: the buttons are really
      // disabled (not only greyed), and say why.
      bulk.querySelectorAll("[data-bulk]").forEach(function (b) {
        b.disabled = selected.size === 0;
        if (selected.size === 0) b.title = "Select annotations first (x or Space on a row)"; else b.removeAttribute("title");
      });
    }
  }

  function select(row, on) {
    var id = row.getAttribute("data-id");
    if (on) selected.add(id); else selected.delete(id);
  }

  function selectRange(from, to, on) {
    var all = rows();
    var a = all.indexOf(from), b = all.indexOf(to);
    if (a < 0 || b < 0) { select(to, on); return; }
    for (var i = Math.min(a, b); i <= Math.max(a, b); i++) select(all[i], on);
  }

  function closeDialog() {
    var d = dialog();
    if (d && d.open) d.close();
    var body = document.getElementById("triage-dialog-body");
    if (body) body.innerHTML = "";
    focusRow(currentRow(), true);
  }

  // After an undo the focus goes to the row it brought back (the first, for a bulk undo), once
  // that row is in the queue again (by the undo's own answer or the live update after it).
  var restoreId = null;
  var restoreUntil = 0;
  function undoneIds(form) {
    var token = form && form.querySelector('input[name="token"]');
    if (!token) return [];
    try {
      var payload = token.value.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
      var items = JSON.parse(atob(payload)).items || [];
      return items.map(function (item) { return String(item.id); });
    } catch (err) {
      return [];
    }
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    var form = e.detail.elt && e.detail.elt.closest ? e.detail.elt.closest("#toast form") : null;
    var ids = undoneIds(form);
    if (ids.length) { restoreId = ids[0]; restoreUntil = Date.now() + 8000; }
  });
  function restoreFocus() {
    if (!restoreId) return false;
    if (Date.now() > restoreUntil) { restoreId = null; return false; }
    var row = byId(restoreId);
    if (!row) return false;
    restoreId = null;
    focusRow(row);
    return true;
  }

  function afterSwap() {
    syncSelection();
    if (restoreFocus()) return;
    // A swapped row takes the focus with it; give it back unless someone is typing elsewhere.
    if ((!document.activeElement || document.activeElement === document.body) && currentId && !(dialog() && dialog().open)) {
      // A row that left the queue (triaged, dismissed…) hands the focus to the one now in its place.
      var all = rows();
      focusRow(byId(currentId) || all[Math.min(currentIndex, all.length - 1)], true);
    }
    uncover();
  }

  // The toast floats at the bottom of the viewport: the row being worked on (and its buttons)
  // is scrolled clear of it instead of hiding behind it.
  function uncover() {
    var toast = document.getElementById("toast");
    var row = currentRow();
    if (!toast || !row || toast.innerHTML.trim() === "") return;
    var t = toast.getBoundingClientRect();
    var r = row.getBoundingClientRect();
    if (t.height > 0 && r.bottom > t.top - 8 && r.top < t.bottom) window.scrollBy(0, r.bottom - t.top + 16);
  }

  var toastTimer = null;
  function toastShown() {
    var toast = document.getElementById("toast");
    if (!toast) return;
    if (dialog() && dialog().open) closeDialog();
    clearTimeout(toastTimer);
    // The server honours the undo token for its window (data-undo-ms, from UNDO_MS, plus a
    // little slack); the button goes with it.
    toastTimer = setTimeout(function () { toast.innerHTML = ""; }, Number(toast.getAttribute("data-undo-ms")));
    uncover();
  }

  document.addEventListener("focusin", function (e) {
    var row = rowOf(e.target);
    if (row) {
      currentId = row.getAttribute("data-id");
      currentIndex = Math.max(0, rows().indexOf(row));
    }
  });

  document.addEventListener("click", function (e) {
    if (!board()) return;
    var t = e.target;
    var box = t.closest && t.closest('input[name="sel"]');
    if (box) {
      var row = rowOf(box);
      if (!row) return;
      var from = byId(anchor);
      if (e.shiftKey && from) selectRange(from, row, box.checked); else select(row, box.checked);
      anchor = row.getAttribute("data-id");
      currentId = anchor;
      syncSelection();
      return;
    }
    if (t.closest("[data-clear-selection]")) { selected.clear(); syncSelection(); }
    else if (t.closest("[data-close-dialog]")) closeDialog();
    else if (t.closest("[data-help]")) { var h = help(); if (h && !h.open) h.showModal(); }
  });

  document.addEventListener("keydown", function (e) {
    if (!board() || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    var typing = t.matches && t.matches("input:not([type=checkbox]):not([type=radio]), textarea, select, [contenteditable]");
    var d = dialog();
    if (d && d.open) {
      // Inside a dialog, digits pick the n-th choice; Escape closes it (natively).
      if (!typing && /^[1-9]$/.test(e.key)) {
        var choice = d.querySelector('[data-choice="' + e.key + '"]');
        if (choice) { e.preventDefault(); activate(choice); }
      }
      return;
    }
    if (help() && help().open) return;
    if (typing) {
      // Escape leaves the field and keeps what is in it: a search field's native Escape would
      // clear it (and refilter the queue), so that default is cancelled.
      if (e.key === "Escape") { e.preventDefault(); t.blur(); focusRow(currentRow() || rows()[0]); }
      return;
    }
    var row = currentRow();
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "t": press(row, '[data-act="t"]'); break;
      case "x": press(row, '[data-act="x"]'); break;
      case "d": press(row, '[data-act="d"]'); break;
      case "p": press(row, '[data-act="p"]'); break;
      case "z": var undo = document.querySelector("#toast form"); if (undo && window.htmx) window.htmx.process(undo); activate(document.querySelector("#toast [data-undo]")); break;
      case "/": var q = document.getElementById("q"); if (q) { q.focus(); q.select(); } break;
      case "?": if (help()) help().showModal(); break;
      case " ":
        // Space on a button or checkbox keeps its own meaning.
        if (!row || t !== row) return;
        select(row, !selected.has(row.getAttribute("data-id")));
        anchor = row.getAttribute("data-id");
        syncSelection();
        break;
      default:
        if (!/^[1-9]$/.test(e.key)) return;
        press(row, '[data-key="' + e.key + '"]');
    }
    e.preventDefault();
  });

  document.addEventListener("htmx:afterSwap", function (e) {
    var body = document.getElementById("triage-dialog-body");
    if (body && e.detail.target === body && body.innerHTML.trim() !== "") {
      var d = dialog();
      if (!d.open) d.showModal();
      // The first choice before the search box: digits then pick (their hints show), and Tab
      // reaches the search.
      var first = body.querySelector("[data-choice]") || body.querySelector("input[type=search], input[name=title]");
      if (first) {
        first.focus();
        // A prefilled title is selected, so what is typed replaces it instead of being glued to
        // its start (End keeps it and appends).
        if (first.name === "title" && first.select) first.select();
      }
    }
  });
  document.addEventListener("htmx:afterSettle", afterSwap);
  document.addEventListener("htmx:sseMessage", afterSwap);
  document.addEventListener("htmx:oobAfterSwap", function (e) {
    var target = e.detail.target || e.target;
    if (target && target.id === "toast") toastShown();
    afterSwap();
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.elt && e.detail.elt.id === "triage-bulk" && e.detail.successful) {
      selected.clear();
      syncSelection();
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    syncSelection();
    // However the dialog closes (Escape included), the focus goes back to the row it was for.
    var d = dialog();
    if (d) d.addEventListener("close", function () { focusRow(currentRow(), true); });
  });
})();
