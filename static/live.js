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

  function readPage() {
    var root = liveRoot();
    var url = root && root.getAttribute("sse-connect");
    if (!url) return null;
    var parsed = new URL(url, location.href);
    var keys = (parsed.searchParams.get("regions") || "").split(",").filter(Boolean);
    var since = parseInt(parsed.searchParams.get("since") || "", 10);
    return { url: url, keys: keys, since: isNaN(since) ? null : since };
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
    have[msg.key] = msg.hash;
    if (region.hasAttribute("data-extended")) {
      hold(region, msg.html);
      return;
    }
    // contextElement: htmx finds the swap extension (morph) from it; without it htmx.swap
    // falls back to a plain innerHTML swap that replaces every node (focus, typing, open edits).
    htmx.swap(region, msg.html, { swapStyle: region.getAttribute("hx-swap") || "innerHTML" }, { contextElement: region });
    // What htmx's SSE extension announced after a swap (static/triage.js listens).
    htmx.trigger(region, "htmx:sseMessage", { type: msg.event });
  }

  // A live region holds more than its first page once someone used "Load more" in it. A live
  // update (always the first page) would take those rows away, so it is held instead: the
  // latest one waits behind a "Show latest" button placed before the region.
  function hold(region, html) {
    region.heldUpdate = html;
    var button = region.previousElementSibling;
    if (button && button.classList.contains("live-held")) return;
    button = document.createElement("button");
    button.type = "button";
    button.className = "live-held";
    button.textContent = "New activity: show latest";
    button.addEventListener("click", function () {
      region.removeAttribute("data-extended");
      button.remove();
      htmx.swap(region, region.heldUpdate, { swapStyle: region.getAttribute("hx-swap") || "innerHTML" }, { contextElement: region });
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
    have = {};
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
    if (region) region.setAttribute("data-extended", "");
  });
})();
