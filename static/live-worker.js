// IHF's live connection, one per browser: a SharedWorker owning the only EventSource to /live,
// shared by every tab of the origin. Tabs tell it which regions they show (register, release,
// resume, sync); it adds and removes them on the open stream (POST /live/{stream}), and hands
// each region update to exactly the tabs showing that region. Where SharedWorker is missing,
// static/live.js runs the same core in one leader tab (Web Locks + BroadcastChannel).
(function (global) {
  "use strict";

  var TEXT = {
    connecting: "Connecting…",
    open: "Live",
    reconnecting: "Reconnecting…",
    closed: "Disconnected",
    "signed-out": "Signed out: live updates stopped"
  };
  // After the last region goes, the stream stays a little (a page being replaced by the next).
  var IDLE_CLOSE_MS = 10000;
  var RETRY_MS = 3000;

  // Row-level updates kept after a region's last whole HTML, for tabs that catch up; beyond
  // this many, a tab that needs the region asks the server for the whole again.
  var MAX_DELTAS = 64;

  function Core() {
    // key -> { tabs: Set<tabId>, hash, since, event, html (the last whole HTML, of hash
    // fullHash), deltas: [{ base, hash, html }] (row updates since) }
    this.regions = new Map();
    this.tabs = new Map(); // tabId -> { post, keys: Set }
    this.source = null;
    this.stream = null;
    this.state = "connecting";
    this.csrf = "";
    this.adds = new Map();
    this.removes = new Set();
    this.flushTimer = null;
    this.idleTimer = null;
    this.retryTimer = null;
    this.flushing = false; // a change of the stream is being answered
  }

  Core.prototype.receive = function (msg, post) {
    if (!msg || !msg.tab) return;
    var tab = this.tabs.get(msg.tab);
    if (!tab) {
      tab = { post: post, keys: new Set() };
      this.tabs.set(msg.tab, tab);
    }
    tab.post = post;
    switch (msg.type) {
      case "register":
      case "resume":
        this.join(msg.tab, tab, msg.keys || [], msg.type === "resume");
        post({ type: "status", state: this.state, text: TEXT[this.state] });
        break;
      case "release":
        this.release(msg.tab, tab);
        this.tabs.delete(msg.tab);
        break;
      case "sync":
        this.sync(tab, msg.have || {});
        break;
      case "resync":
        // A tab could not apply rows: it gets the whole region (then the rows after it).
        var have = {};
        have[msg.key] = null;
        this.sync(tab, have, msg.key);
        break;
    }
  };

  Core.prototype.join = function (tabId, tab, keys, resume) {
    var have = {};
    for (var i = 0; i < keys.length; i++) {
      var k = keys[i];
      tab.keys.add(k.key);
      have[k.key] = k.hash;
      var region = this.regions.get(k.key);
      if (!region) {
        region = { tabs: new Set(), hash: k.hash || null, since: k.since, event: null, html: null, fullHash: null, deltas: [] };
        this.regions.set(k.key, region);
        this.removes.delete(k.key);
        this.adds.set(k.key, { key: k.key, since: k.since, hash: k.hash || null });
      }
      region.tabs.add(tabId);
    }
    if (resume) this.sync(tab, have);
    this.connect();
    this.schedule();
  };

  Core.prototype.release = function (tabId, tab) {
    var self = this;
    tab.keys.forEach(function (key) {
      var region = self.regions.get(key);
      if (!region) return;
      region.tabs.delete(tabId);
      if (region.tabs.size === 0) {
        self.regions.delete(key);
        if (self.adds.has(key)) self.adds.delete(key);
        else self.removes.add(key);
      }
    });
    tab.keys.clear();
    this.schedule();
  };

  // Sends a tab the latest HTML of each of its regions (or only `only`) that it does not have:
  // the last whole HTML and the row updates since; when the worker has no whole HTML of it, the
  // server is asked for it (the region is taken off the stream and added again knowing nothing).
  Core.prototype.sync = function (tab, have, only) {
    var self = this;
    tab.keys.forEach(function (key) {
      if (only && key !== only) return;
      var region = self.regions.get(key);
      if (!region || region.hash === have[key]) return;
      if (region.html === null) {
        if (region.hash === null && !only) return; // nothing known yet: the stream sends it
        region.hash = null;
        self.removes.add(key);
        self.adds.set(key, { key: key, since: null, hash: null });
        self.schedule();
        return;
      }
      tab.post({ type: "frame", key: key, event: region.event, hash: region.fullHash, html: region.html });
      region.deltas.forEach(function (d) {
        tab.post({ type: "frame", key: key, event: region.event, hash: d.hash, base: d.base, html: d.html });
      });
    });
  };

  // Tells the tabs with live regions (not those that stopped: signed out, refused).
  Core.prototype.setState = function (state) {
    this.state = state;
    var msg = { type: "status", state: state, text: TEXT[state] };
    this.tabs.forEach(function (tab) { if (tab.keys.size > 0) tab.post(msg); });
  };

  Core.prototype.connect = function () {
    var self = this;
    if (this.idleTimer) { clearTimeout(this.idleTimer); this.idleTimer = null; }
    if (this.source || this.regions.size === 0) return;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
    var source = new EventSource("/live");
    this.source = source;
    if (this.state !== "reconnecting") this.state = "connecting";
    var onRegion = function (e) {
      var data = e.data;
      var nl = data.indexOf("\n");
      var head = (nl < 0 ? data : data.slice(0, nl)).split(" ");
      var html = nl < 0 ? "" : data.slice(nl + 1);
      var region = self.regions.get(head[0]);
      if (!region) return;
      region.event = e.type;
      var base = head[2] || null;
      if (base) {
        // Rows since `base`: kept after the whole HTML they apply to, while they chain.
        if (region.html !== null && region.hash === base && region.deltas.length < MAX_DELTAS) {
          region.deltas.push({ base: base, hash: head[1], html: html });
        } else {
          region.html = null;
          region.fullHash = null;
          region.deltas = [];
        }
      } else {
        region.html = html;
        region.fullHash = head[1];
        region.deltas = [];
      }
      region.hash = head[1];
      var msg = { type: "frame", key: head[0], event: e.type, hash: head[1], base: base, html: html };
      region.tabs.forEach(function (tabId) {
        var tab = self.tabs.get(tabId);
        if (tab) tab.post(msg);
      });
    };
    var listening = {};
    source.addEventListener("hello", function (e) {
      var hello = JSON.parse(e.data);
      self.stream = hello.stream;
      // Changes to the stream carry its own session's CSRF token (a tab's may be stale).
      self.csrf = hello.csrf || "";
      // Each region's updates come as the event its container's sse-swap names.
      (hello.events || []).forEach(function (name) {
        if (!listening[name]) { listening[name] = true; source.addEventListener(name, onRegion); }
      });
      // A new stream has no regions: add them all, each with what the tabs have of it.
      self.adds.clear();
      self.removes.clear();
      self.regions.forEach(function (region, key) {
        self.adds.set(key, { key: key, since: region.since, hash: region.hash });
      });
      self.setState("open");
      self.flush();
    });
    // The server took a region off the stream (its viewer lost access to it).
    source.addEventListener("refused", function (e) {
      var key = e.data;
      var region = self.regions.get(key);
      if (!region) return;
      self.regions.delete(key);
      region.tabs.forEach(function (tabId) {
        var tab = self.tabs.get(tabId);
        if (tab) { tab.keys.delete(key); tab.post({ type: "refused", key: key }); }
      });
    });
    source.addEventListener("session", function (e) {
      self.close();
      if (e.data === "changed") {
        // The person's rights changed: a new stream authorizes every region again.
        self.connect();
        return;
      }
      // The session ended: every page open now stops (a page loaded later, signed in again or
      // not, registers anew and opens a new stream).
      var msg = { type: "status", state: "signed-out", text: TEXT["signed-out"] };
      self.tabs.forEach(function (tab) {
        if (tab.keys.size > 0) tab.post(msg);
        tab.keys.clear();
      });
      self.regions.clear();
      self.adds.clear();
      self.removes.clear();
    });
    source.onerror = function () {
      if (self.source !== source) return;
      self.stream = null;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, overloaded, server gone): try again later, from scratch.
        self.source = null;
        self.setState("closed");
        self.retryTimer = setTimeout(function () { self.retryTimer = null; self.connect(); }, RETRY_MS);
      } else {
        self.setState("reconnecting");
      }
    };
  };

  Core.prototype.close = function () {
    if (this.source) this.source.close();
    this.source = null;
    this.stream = null;
  };

  Core.prototype.schedule = function () {
    var self = this;
    if (this.regions.size === 0 && !this.idleTimer) {
      this.idleTimer = setTimeout(function () {
        self.idleTimer = null;
        if (self.regions.size === 0) { self.close(); self.setState("connecting"); }
      }, IDLE_CLOSE_MS);
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(function () { self.flushTimer = null; self.flush(); }, 0);
  };

  // One change of the stream at a time: a remove sent while an add is still being answered
  // (its region rendering) could otherwise overtake it, leaving a region on the stream that no
  // tab shows. What changes meanwhile goes in the next request, when this one is answered.
  Core.prototype.flush = function () {
    var self = this;
    if (this.flushing) return;
    if (!this.stream || (this.adds.size === 0 && this.removes.size === 0)) return;
    var stream = this.stream;
    var body = { add: Array.from(this.adds.values()), remove: Array.from(this.removes) };
    this.adds.clear();
    this.removes.clear();
    this.flushing = true;
    var done = function () {
      self.flushing = false;
      self.flush();
    };
    fetch("/live/" + encodeURIComponent(stream), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 404 && self.stream === stream) {
        // The stream is gone: a new one adds everything again.
        self.close();
        self.connect();
        return null;
      }
      return response.ok ? response.json() : null;
    }).then(function (answer) {
      if (!answer || !answer.refused) return;
      answer.refused.forEach(function (key) {
        var region = self.regions.get(key);
        if (!region) return;
        self.regions.delete(key);
        region.tabs.forEach(function (tabId) {
          var tab = self.tabs.get(tabId);
          if (tab) { tab.keys.delete(key); tab.post({ type: "refused", key: key }); }
        });
      });
    }).catch(function () {
      // The stream's own error handling reconnects, and the new stream adds everything.
    }).then(done, done);
  };

  global.IHFLiveCore = Core;

  if (typeof SharedWorkerGlobalScope !== "undefined" && global instanceof SharedWorkerGlobalScope) {
    var core = new Core();
    global.onconnect = function (event) {
      var port = event.ports[0];
      var post = function (msg) { port.postMessage(msg); };
      port.onmessage = function (e) { core.receive(e.data, post); };
      port.start();
    };
  }
})(self);
