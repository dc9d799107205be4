// IHF's small page script: morph settings, offline honesty, held live updates that keep what
// "Load more" brought, focus after errors, and polite announcements of new feedback.
// No framework; everything else is htmx attributes in the markup.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A morph must never overwrite what someone is typing.
    if (window.Idiomorph && window.Idiomorph.defaults) {
      window.Idiomorph.defaults.ignoreActiveValue = true;
    }
    watchLive();
  });

  // --- Offline honesty. While the live stream is down (static/live.js says "reconnecting" or
  // "closed") or a request found no server, a banner says so at the top of the viewport, and
  // every action (any non-GET request) is refused with a message naming it instead of vanishing.
  // When the server answers again the banner goes; nothing is queued behind the person's back.
  var unreachable = false;
  var probe = null;

  function liveStatus() {
    var live = document.getElementById("live");
    return (live && live.getAttribute("data-live-status")) || "";
  }

  function isDown() {
    return unreachable || liveStatus() === "reconnecting" || liveStatus() === "closed";
  }

  function banner(text) {
    var box = document.getElementById("offline");
    if (!box) return;
    var label = box.querySelector(".offline-text");
    if (text) {
      if (label && label.textContent !== text) label.textContent = text;
      box.hidden = false;
      document.documentElement.classList.add("is-offline");
    } else {
      box.hidden = true;
      document.documentElement.classList.remove("is-offline");
    }
  }

  var DOWN_TEXT = "The server cannot be reached. Actions are paused: nothing you do is sent until it is back.";

  function refresh() {
    banner(isDown() ? DOWN_TEXT : null);
  }

  function watchLive() {
    var live = document.getElementById("live");
    if (!live || !window.MutationObserver) return;
    new MutationObserver(function () {
      if (liveStatus() === "open") unreachable = false;
      refresh();
    }).observe(live, { attributes: true, attributeFilter: ["data-live-status"] });
  }

  function actionName(elt) {
    if (!elt) return "your action";
    var name = elt.getAttribute("aria-label") || elt.getAttribute("title") || "";
    if (!name && elt.tagName === "FORM") {
      var button = elt.querySelector("button[type=submit], button:not([type])");
      name = button ? button.textContent : "";
    }
    if (!name) name = elt.textContent || "";
    name = name.replace(/\s+/g, " ").trim();
    if (!name) return "your action";
    return "\u201c" + (name.length > 40 ? name.slice(0, 39) + "\u2026" : name) + "\u201d";
  }

  function refuse(elt) {
    banner("Not sent: " + actionName(elt) + ". The server cannot be reached; try again when it is back. " +
      "Nothing was changed.");
  }

  function probeUntilBack() {
    if (probe) return;
    probe = setInterval(function () {
      fetch("/healthz", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        if (!r.ok) return;
        clearInterval(probe);
        probe = null;
        unreachable = false;
        refresh();
      }, function () { /* still down */ });
    }, 2000);
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var verb = ((evt.detail.requestConfig && evt.detail.requestConfig.verb) || "get").toLowerCase();
    if (verb === "get" || !isDown()) return;
    evt.preventDefault();
    refuse(evt.detail.elt);
  });

  document.addEventListener("htmx:sendError", function (evt) {
    unreachable = true;
    var verb = ((evt.detail.requestConfig && evt.detail.requestConfig.verb) || "get").toLowerCase();
    if (verb === "get") refresh();
    else refuse(evt.detail.elt);
    probeUntilBack();
  });

  // A plain form (no htmx) while down: refused the same way rather than leaving for an error page.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!isDown() || !form || (form.method || "get").toLowerCase() === "get") return;
    evt.preventDefault();
    refuse(form);
  }, true);

  // --- Held live updates. static/live.js holds a region's update once "Load more" extended it
  // and puts a "New activity: show latest" button before the region. Showing the latest must
  // not take the loaded rows away: the update's first page is merged into the list (new rows
  // on top, changed rows replaced, rows gone from the first page's span removed) and the older
  // rows stay, with their own "Load more".
  document.addEventListener("click", function (evt) {
    var button = evt.target && evt.target.closest && evt.target.closest("button.live-held");
    if (!button) return;
    var region = button.nextElementSibling;
    if (!region || typeof region.heldUpdate !== "string") return;
    var list = region.querySelector("ol");
    var incoming = document.createElement("template");
    incoming.innerHTML = region.heldUpdate;
    var fresh = incoming.content.querySelector("ol");
    if (!list || !fresh || !list.id || fresh.id !== list.id) return; // live.js swaps the region
    evt.stopImmediatePropagation();
    evt.preventDefault();
    merge(list, fresh);
    // The rest of the region (the widget page's charts) is taken whole.
    Array.prototype.forEach.call(incoming.content.children, function (part) {
      if (!part.id || part.id === list.id) return;
      var old = document.getElementById(part.id);
      if (old) old.replaceWith(document.importNode(part, true));
    });
    announceNew(region);
    region.heldUpdate = null;
    button.remove();
    // Still extended: later updates are held again.
    var first = list.querySelector("li[id]");
    if (first) {
      first.setAttribute("tabindex", "-1");
      first.focus({ preventScroll: false });
    }
  }, true);

  function merge(list, fresh) {
    // Rows only: the first page's "Load more" (li.more) and "empty" placeholder stay out, the
    // list keeps its own "Load more" at its end.
    var items = Array.prototype.filter.call(fresh.children, function (li) {
      return li.id && !li.classList.contains("more") && !li.classList.contains("empty");
    });
    if (items.length === 0) return;
    var keep = {};
    items.forEach(function (li) { keep[li.id] = true; });
    // The first page spans from the newest row down to its last one: a row shown above that
    // last row but missing from the page is gone (deleted, or filtered out).
    var lastId = items[items.length - 1].id;
    var current = Array.prototype.slice.call(list.children);
    var lastAt = current.findIndex(function (li) { return li.id === lastId; });
    current.forEach(function (li, i) {
      if (!li.id || keep[li.id]) return;
      if (lastAt < 0 || i < lastAt) li.remove();
    });
    var anchor = list.firstElementChild;
    items.forEach(function (li) {
      var old = document.getElementById(li.id);
      var node = document.importNode(li, true);
      if (old && old.parentNode === list) {
        if (old.outerHTML !== node.outerHTML) old.replaceWith(node);
        else node = old;
      } else if (anchor) {
        list.insertBefore(node, anchor);
      } else {
        list.appendChild(node);
      }
      anchor = node.nextElementSibling;
      if (window.htmx) window.htmx.process(node);
    });
    // An "empty" placeholder has no place next to rows.
    Array.prototype.forEach.call(list.querySelectorAll(":scope > li.empty"), function (li) { li.remove(); });
  }

  // --- Polite announcements. A live update that brings new feedback rows says how many in one
  // status line ("3 new annotations"); morphs that only change counts or text stay silent.
  var ROWS = "li[id^='annotation-'], tr[id^='row-']";
  var seen = new WeakMap();

  function rowIds(region) {
    var ids = {};
    Array.prototype.forEach.call(region.querySelectorAll(ROWS), function (row) { ids[row.id] = true; });
    return ids;
  }

  function announce(text) {
    var status = document.getElementById("announce");
    if (!status) return;
    // Cleared first, so the same sentence twice is read twice.
    status.textContent = "";
    setTimeout(function () { status.textContent = text; }, 50);
  }

  function announceNew(region) {
    var before = seen.get(region);
    var now = rowIds(region);
    seen.set(region, now);
    if (!before) return;
    var added = Object.keys(now).filter(function (id) { return !before[id]; }).length;
    if (added > 0) announce(added === 1 ? "1 new annotation" : added + " new annotations");
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[sse-swap]"), function (region) {
      seen.set(region, rowIds(region));
    });
  });

  // static/live.js triggers htmx:sseMessage on a region after each live swap.
  document.addEventListener("htmx:sseMessage", function (evt) {
    var region = evt.target && evt.target.closest ? evt.target.closest("[sse-swap]") : null;
    if (region) announceNew(region);
  });

  // Rows someone loaded themselves ("Load more", a filter) are not news. Only a request's
  // settle counts: a live swap (htmx.swap from static/live.js, no request) settles at once,
  // before its htmx:sseMessage, and would otherwise leave nothing to announce.
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (!evt.detail || !evt.detail.xhr) return;
    var region = evt.target && evt.target.closest ? evt.target.closest("[sse-swap]") : null;
    if (region) seen.set(region, rowIds(region));
  });

  // --- Dialogs keep the focus. A modal <dialog> makes the page behind it inert, but Tab from
  // its last control (Shift+Tab from its first) leaves the document for the browser's own
  // controls: here it goes round to the dialog's other end instead. Escape closes it natively
  // and the script that opened it gives the focus back (static/triage.js).
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

  function focusables(dialog) {
    return Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      if (el.disabled || el.getAttribute("tabindex") === "-1" || (el.type === "hidden")) return false;
      return el.getClientRects().length > 0 && !el.closest("[inert]");
    });
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Tab" || evt.altKey || evt.ctrlKey || evt.metaKey) return;
    var dialogs = document.querySelectorAll("dialog[open]");
    var dialog = null;
    Array.prototype.forEach.call(dialogs, function (d) { if (d.matches(":modal")) dialog = d; });
    if (!dialog) return;
    var all = focusables(dialog);
    if (all.length === 0) return;
    var first = all[0];
    var last = all[all.length - 1];
    var active = document.activeElement;
    var inside = dialog.contains(active);
    if (evt.shiftKey && (!inside || active === first || active === dialog)) {
      evt.preventDefault();
      last.focus();
    } else if (!evt.shiftKey && (!inside || active === last)) {
      evt.preventDefault();
      first.focus();
    }
  });

  // --- Focus after an error. A refused form (422, 409…) comes back with the field marked
  // aria-invalid, or as an error box in #flash: the focus goes to the field (its message is
  // tied to it by aria-describedby), else to the message, never to the page body.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status < 400) return;
    // Checks while someone types (the composer's live count) leave the caret where it is.
    var trigger = evt.detail.requestConfig && evt.detail.requestConfig.triggeringEvent;
    if (trigger && (trigger.type === "input" || trigger.type === "keyup")) return;
    var target = evt.detail.target || evt.target;
    if (!target || !target.querySelector) return;
    var field = target.querySelector('[aria-invalid="true"]');
    if (field) {
      field.focus();
      return;
    }
    var message = target.querySelector('.error-box, [role="alert"], .field-error');
    if (message) {
      if (!message.hasAttribute("tabindex")) message.setAttribute("tabindex", "-1");
      message.focus();
    }
  });
})();
