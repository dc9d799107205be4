// Live regions of this tab. The page names its regions and the feed position it was rendered at
// in #live's sse-connect (/live?regions=a,b&since=N; htmx's SSE extension is not used here);
// the browser's one live connection
// (static/live-worker.js, a SharedWorker) sends this tab the updates of exactly those regions,
// which are morphed into the element whose sse-swap names the event, as htmx's swap does.
// The page releases its regions on pagehide (the back/forward cache keeps no connection) and
// registers them again on pageshow, catching up; a tab shown again asks for the latest copy of
// each of its regions that it lacks.
(function () {
  "use strict";
  var tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);
  var transport = null;
  var page = null; // { url, keys: [], since }
  var have = {}; // key -> hash of the HTML this tab shows
  var refused = {};

  function liveRoot() { return document.getElementById("live"); }

  // A region shared by many viewers (a widget's thread) comes without anyone's own controls:
  // this page adds its viewer's to the rows before they are shown, from the templates the page
  // renders for its viewer only, exactly as the server renders them in the viewer's own page:
  // the edit and delete buttons on their own rows (data-author, #own-actions-template), the
  // "me too" toggle on the others' (#support-template) and the reply form (#reply-form-template,
  // on their own rows or, for staff, on every row). `root`: an element or a detached fragment.
  function personalize(root) {
    var me = document.querySelector('meta[name="ihf-viewer"]');
    if (!me || !root) return false;
    var viewer = me.getAttribute("content");
    var own = document.getElementById("own-actions-template");
    var support = document.getElementById("support-template");
    var reply = document.getElementById("reply-form-template");
    if (!own && !support && !reply) return false;
    var replyAll = !!reply && reply.getAttribute("data-rows") === "all";
    var rows = Array.prototype.slice.call(root.querySelectorAll("[data-author]"));
    if (root.matches && root.matches("[data-author]")) rows.unshift(root);
    var changed = false;
    rows.forEach(function (row) {
      var body = row.querySelector(":scope > p.body");
      if (!body || !row.id) return;
      var id = row.id.replace("annotation-", "");
      var mine = row.getAttribute("data-author") === viewer;
      if (!mine && support && addSupport(row, id, support)) changed = true;
      if (mine && own && addOwn(row, id, body, own)) changed = true;
      if ((mine || replyAll) && reply && addReplyForm(row, id, reply)) changed = true;
    });
    return changed;
  }

  function filled(template, id) {
    var parsed = document.createElement("template");
    parsed.innerHTML = template.innerHTML.split("__ID__").join(id);
    return parsed.content;
  }

  // The count stays the shared render's; whether the viewer said "me too" is what this page
  // shows now (a new row: not yet).
  function addSupport(row, id, template) {
    var span = row.querySelector(":scope > .support");
    if (!span || span.querySelector(".support-toggle")) return false;
    var next = filled(template, id).querySelector(".support");
    var toggle = next && next.querySelector(".support-toggle");
    if (!toggle) return false;
    var shown = span.querySelector(".support-count");
    var count = (shown && shown.getAttribute("data-count")) || "0";
    var number = toggle.querySelector(".support-count");
    if (number) {
      number.setAttribute("data-count", count);
      number.textContent = count;
    }
    var current = document.getElementById("support-" + id);
    var pressed = current && current.querySelector('.support-toggle[aria-pressed="true"]');
    if (pressed) {
      toggle.className = "support-toggle supported";
      toggle.setAttribute("aria-pressed", "true");
    }
    span.replaceWith(next);
    return true;
  }

  function addOwn(row, id, body, template) {
    if (row.querySelector(":scope > .own-actions")) return false;
    var actions = filled(template, id).firstElementChild;
    if (!actions) return false;
    // Where the server puts them: after the body and its support line.
    var anchor = row.querySelector(":scope > .support") || body;
    anchor.after(document.createTextNode("\n  "), actions);
    return true;
  }

  // The form goes last in the row's replies, after their list, as the server renders it.
  function addReplyForm(row, id, template) {
    var box = row.querySelector(":scope > .replies");
    if (!box || box.querySelector(":scope > form.reply-form")) return false;
    var form = filled(template, id).querySelector("form.reply-form");
    if (!form) return false;
    var space = document.createTextNode("\n  ");
    var list = box.querySelector(":scope > ol.reply-list");
    if (list) list.after(space, form);
    else box.prepend(space, form);
    return true;
  }

  // The HTML of a region's update with this viewer's controls in it.
  function personalizedHtml(html) {
    if (!document.querySelector('meta[name="ihf-viewer"]')) return html;
    var parsed = document.createElement("template");
    parsed.innerHTML = html;
    return personalize(parsed.content) ? parsed.innerHTML : html;
  }

  function readPage() {
    var root = liveRoot();
    var url = root && root.getAttribute("sse-connect");
    if (!url) return null;
    var parsed = new URL(url, location.href);
    var keys = (parsed.searchParams.get("regions") || "").split(",").filter(Boolean);
    var since = parseInt(parsed.searchParams.get("since") || "", 10);
    var hashes = (parsed.searchParams.get("hashes") || "").split(",");
    return { url: url, keys: keys, since: isNaN(since) ? null : since, hashes: hashes };
  }

  // What the page shows of each region, as rendered (its stream's first update can then be
  // the rows that changed).
  function pageHashes(p) {
    var known = {};
    p.keys.forEach(function (key, i) { if (p.hashes[i]) known[key] = p.hashes[i]; });
    return known;
  }

  function setLive(state, text) {
    var live = liveRoot();
    if (!live) return;
    live.setAttribute("data-live-status", state);
    var label = live.querySelector(".live-text");
    if (label) label.textContent = text;
  }

  function send(type) {
    if (!transport || !page) return;
    var keys = page.keys.map(function (key) {
      return { key: key, since: page.since, hash: have[key] || null };
    });
    transport.post({ type: type, tab: tabId, keys: keys, have: have });
  }

  function apply(msg) {
    var root = liveRoot();
    if (!root || !page || page.keys.indexOf(msg.key) < 0) return;
    // The notification bell sits in the header, outside #live.
    var region = root.querySelector('[sse-swap="' + msg.event + '"]') ||
      document.querySelector('header [sse-swap="' + msg.event + '"]');
    if (!region) return;
    region.setAttribute("data-live-key", msg.key);
    var extended = region.hasAttribute("data-extended");
    if (msg.base) {
      // Only the rows that changed since the HTML of hash msg.base: applied when this tab has
      // exactly that, else the whole is asked for. A region that "Load more" extended keeps
      // its first page aside (region.firstPage): the rows go there, and the result is held.
      if (have[msg.key] !== msg.base) {
        have[msg.key] = null;
        resync(msg.key);
        return;
      }
      if (extended) {
        var firstPage = region.firstPage != null ? rowsApplied(region.firstPage, msg.html) : null;
        if (firstPage === null) {
          region.firstPage = null;
          have[msg.key] = null;
          resync(msg.key);
          return;
        }
        region.firstPage = firstPage;
        have[msg.key] = msg.hash;
        hold(region, personalizedHtml(firstPage));
        return;
      }
      if (!applyRows(region, msg.html, false)) {
        have[msg.key] = null;
        resync(msg.key);
        return;
      }
      have[msg.key] = msg.hash;
      htmx.process(region);
      htmx.trigger(region, "htmx:sseMessage", { type: msg.event, rows: true });
      return;
    }
    have[msg.key] = msg.hash;
    if (extended) {
      region.firstPage = msg.html;
      hold(region, personalizedHtml(msg.html));
      return;
    }
    // contextElement: htmx finds the swap extension (morph) from it; without it htmx.swap
    // falls back to a plain innerHTML swap that replaces every node (focus, typing, open edits).
    htmx.swap(region, personalizedHtml(msg.html), { swapStyle: region.getAttribute("hx-swap") || "innerHTML" }, { contextElement: region });
    htmx.process(region);
    // What htmx's SSE extension announced after a swap (static/triage.js listens).
    htmx.trigger(region, "htmx:sseMessage", { type: msg.event });
  }

  // The HTML of a region's first page after a row-level update, or null when it does not apply.
  function rowsApplied(html, rows) {
    var box = document.createElement("template");
    box.innerHTML = html;
    return applyRows(box.content, rows, true) ? box.innerHTML : null;
  }

  // Applies a row-level update (see src/live/delta.rs): each <template> removes rows of a list,
  // or puts one row (new or changed: its HTML inside; else only moved) right after another.
  // False when the page's list does not match (the whole region is asked for then). `detached`:
  // the region is a copy off the page (rows are replaced, not morphed).
  function applyRows(region, html, detached) {
    var steps = document.createElement("template");
    steps.innerHTML = html;
    var ops = steps.content.children;
    var fresh = [];
    for (var i = 0; i < ops.length; i++) {
      var op = ops[i];
      var list = region.querySelector('[data-live-list][id="' + op.getAttribute("data-list") + '"]');
      if (!list) return false;
      var removed = op.getAttribute("data-remove");
      if (removed !== null) {
        removed.split(" ").forEach(function (id) {
          var gone = childById(list, id);
          // The viewer's own just-deleted row (its Undo) is theirs alone: it stays.
          if (gone && !gone.classList.contains("deleted")) gone.remove();
        });
        continue;
      }
      var id = op.getAttribute("data-id");
      var after = op.getAttribute("data-after");
      var row = childById(list, id);
      var next = op.content.firstElementChild;
      if (next && !detached) personalize(next);
      if (next && row && detached) {
        row.replaceWith(document.importNode(next, true));
        row = childById(list, id);
      } else if (next && row) {
        // Morphed in place: focus, typing and open details survive, as in a whole swap.
        htmx.swap(row, next.outerHTML, { swapStyle: "morph:outerHTML" }, { contextElement: region });
        row = childById(list, id);
      } else if (next) {
        row = document.importNode(next, true);
        fresh.push(row);
      }
      if (!row) return false;
      var previous = after ? childById(list, after) : null;
      if (after && !previous) return false;
      var place = previous ? previous.nextElementSibling : list.firstElementChild;
      if (place !== row) list.insertBefore(row, place);
    }
    if (!detached) fresh.forEach(function (row) { htmx.process(row); });
    return true;
  }

  function childById(list, id) {
    for (var child = list.firstElementChild; child; child = child.nextElementSibling) {
      if (child.id === id) return child;
    }
    return null;
  }

  function resync(key) {
    if (transport) transport.post({ type: "resync", tab: tabId, key: key });
  }

  // A live region holds more than its first page once someone used "Load more" in it. A live
  // update (always the first page) would take those rows away, so it is held instead: the
  // latest one waits behind a "Show latest" button placed before the region, which merges it
  // into the list (static/app.js) and keeps the loaded rows.
  function hold(region, html) {
    region.heldUpdate = html;
    var button = region.previousElementSibling;
    if (button && button.classList.contains("live-held")) return;
    button = document.createElement("button");
    button.type = "button";
    button.className = "live-held";
    button.textContent = "New activity: show latest";
    // Reached only when static/app.js could not merge (the update has another list): the whole
    // region is shown then.
    button.addEventListener("click", function () {
      region.removeAttribute("data-extended");
      region.firstPage = null;
      button.remove();
      if (typeof region.heldUpdate !== "string") return;
      htmx.swap(region, region.heldUpdate, { swapStyle: region.getAttribute("hx-swap") || "innerHTML" }, { contextElement: region });
      htmx.process(region);
      region.heldUpdate = null;
    });
    region.parentNode.insertBefore(button, region);
  }

  function onMessage(msg) {
    if (!msg || (msg.to && msg.to !== tabId)) return;
    switch (msg.type) {
      case "frame":
        apply(msg);
        break;
      case "status":
        if (page && page.keys.length > 0 && page.keys.every(function (k) { return refused[k]; })) break;
        setLive(msg.state, msg.text);
        break;
      case "refused":
        refused[msg.key] = true;
        if (page && page.keys.every(function (k) { return refused[k]; })) {
          setLive("closed", "Live updates stopped");
        }
        break;
      case "leader":
        // A new leader tab (fallback without SharedWorker) knows nothing yet.
        send("resume");
        break;
    }
  }

  // --- Transports: a SharedWorker; else one leader tab (Web Locks + BroadcastChannel); else
  // this tab's own connection.
  function workerUrl() {
    var root = liveRoot();
    return (root && root.getAttribute("data-live-worker")) || "/static/live-worker.js";
  }

  function sharedWorker() {
    var worker = new SharedWorker(workerUrl(), { name: "ihf-live" });
    worker.port.onmessage = function (e) { onMessage(e.data); };
    worker.port.start();
    return { post: function (msg) { worker.port.postMessage(msg); } };
  }

  function withCore(then) {
    if (window.IHFLiveCore) return then();
    var script = document.createElement("script");
    script.src = workerUrl();
    script.onload = then;
    document.head.appendChild(script);
  }

  function leaderTab() {
    var channel = new BroadcastChannel("ihf-live");
    var core = null;
    var queue = [];
    channel.onmessage = function (e) {
      var msg = e.data;
      if (msg && msg.toLeader) {
        if (core) core.receive(msg.body, function (reply) { reply.to = msg.body.tab; channel.postMessage(reply); });
      } else {
        onMessage(msg);
      }
    };
    withCore(function () {
      navigator.locks.request("ihf-live-leader", function () {
        core = new window.IHFLiveCore();
        channel.postMessage({ type: "leader" });
        queue.forEach(function (m) { core.receive(m, onMessage); });
        queue = [];
        send("resume");
        return new Promise(function () {}); // held while this tab lives
      });
    });
    return {
      post: function (msg) {
        if (core) core.receive(msg, onMessage);
        else channel.postMessage({ toLeader: true, body: msg });
      }
    };
  }

  function ownConnection() {
    var core = null;
    var queue = [];
    withCore(function () {
      core = new window.IHFLiveCore();
      queue.forEach(function (m) { core.receive(m, onMessage); });
      queue = [];
    });
    return { post: function (msg) { if (core) core.receive(msg, onMessage); else queue.push(msg); } };
  }

  function connect() {
    if (window.SharedWorker) {
      try { return sharedWorker(); } catch (e) { /* fall through */ }
    }
    if (window.BroadcastChannel && navigator.locks) return leaderTab();
    return ownConnection();
  }

  function start() {
    page = readPage();
    if (!page) return;
    have = pageHashes(page);
    if (!transport) transport = connect();
    send("register");
  }

  document.addEventListener("DOMContentLoaded", start);

  // The page's regions changed under the same document (the triage filters swap #live, boosted
  // inbox filters swap the body): release the old ones, register the new.
  document.addEventListener("htmx:load", function () {
    var next = readPage();
    if (!next && !page) return;
    if (next && page && next.url === page.url) return;
    if (transport && page) transport.post({ type: "release", tab: tabId });
    have = next ? pageHashes(next) : {};
    refused = {};
    page = next;
    if (page) {
      if (!transport) transport = connect();
      send("register");
    }
  });

  window.addEventListener("pagehide", function () {
    if (transport) transport.post({ type: "release", tab: tabId });
  });

  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    // Back from the back/forward cache: the regions are registered again with what this page
    // shows, and whatever changed meanwhile is sent at once.
    page = readPage();
    if (page) send("resume");
  });

  // Shown again: anything this tab missed while hidden (a frozen or throttled background tab)
  // comes from the worker's latest copy at once.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) send("sync");
  });

  // Remember which live region a "Load more" belongs to (see hold).
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.hasAttribute("data-load-more")) return;
    var region = elt.closest("[sse-swap]");
    if (!region || region.hasAttribute("data-extended")) return;
    // The first page as shown, which later row-level updates apply to (see apply).
    region.firstPage = region.innerHTML;
    region.setAttribute("data-extended", "");
  });
})();
