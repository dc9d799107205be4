// "Consistent with the last checkpoint you saw", on the governance ledger page.
//
// This browser keeps the last checkpoint it saw of each log (origin, size, root) in
// localStorage. When the page shows a newer one, it asks the server for the RFC 9162
// consistency proof between the two sizes and checks it here (SubtleCrypto SHA-256) against
// the root *it* kept, not the one the server sends: a log that rewrote or dropped entries
// since cannot produce a proof that verifies. Only a consistent checkpoint replaces the kept
// one, so a bad verdict stays until someone looks.
(function () {
  "use strict";
  var out = document.getElementById("log-consistency");
  if (!out || !window.crypto || !window.crypto.subtle || !window.localStorage) return;

  function bytes(b64) {
    var s = atob(b64), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }
  function same(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  async function node(left, right) {
    var buf = new Uint8Array(65);
    buf[0] = 1;
    buf.set(left, 1);
    buf.set(right, 33);
    return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  }
  // RFC 9162, section 2.1.4.2.
  async function verifyConsistency(first, second, proof, firstHash, secondHash) {
    if (first > second) return false;
    if (first === second) return proof.length === 0 && same(firstHash, secondHash);
    if (first === 0) return proof.length === 0;
    if (proof.length === 0) return false;
    if ((first & (first - 1)) === 0) proof = [firstHash].concat(proof);
    var fn = first - 1, sn = second - 1;
    while (fn & 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    var fr = proof[0], sr = proof[0];
    for (var i = 1; i < proof.length; i++) {
      var c = proof[i];
      if (sn === 0) return false;
      if ((fn & 1) || fn === sn) {
        fr = await node(c, fr);
        sr = await node(c, sr);
        if (!(fn & 1)) {
          while (!(fn & 1) && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        sr = await node(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(fr, firstHash) && same(sr, secondHash);
  }

  function say(state, text) {
    out.dataset.state = state;
    out.className = "log-consistency verdict " + (state === "bad" ? "verdict-broken" : "verdict-ok");
    out.textContent = text;
  }

  var checking = null, shown = null;
  async function check() {
    var verdict = document.getElementById("ledger-verdict");
    if (!verdict || !verdict.dataset.treeSize || !verdict.dataset.origin) return;
    var size = Number(verdict.dataset.treeSize), root = verdict.dataset.root, origin = verdict.dataset.origin;
    if (!size || !root) return;
    // The live list re-renders with the same checkpoint often (the stream's first state, other
    // changes): keep the verdict already given for it.
    if (shown === size + " " + root) return;
    shown = size + " " + root;
    var key = "ihf-checkpoint:" + origin, seen = null;
    try { seen = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { seen = null; }
    var remember = function () { localStorage.setItem(key, JSON.stringify({ size: size, root: root })); };
    if (!seen || typeof seen.size !== "number" || typeof seen.root !== "string") {
      remember();
      say("first", "This browser now keeps this checkpoint (" + size + " entries) and will check that the log only grows from it.");
      return;
    }
    if (seen.size === size && seen.root === root) {
      say("ok", "Same checkpoint as the last one you saw (" + size + " entries).");
      return;
    }
    if (seen.size >= size) {
      say("bad", "NOT consistent with the last checkpoint you saw (" + seen.size + " entries, root " + seen.root.slice(0, 12) +
        "…): the log now shows " + size + ". Entries were removed or rewritten.");
      return;
    }
    var url = "/hubs/" + encodeURIComponent(out.dataset.hub) + "/ledger/proof/consistency?from=" + seen.size + "&to=" + size;
    var response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      say("bad", "NOT consistent with the last checkpoint you saw (" + seen.size + " entries): the log gives no proof (" + response.status + ").");
      return;
    }
    var answer = await response.json();
    var ok = answer.from === seen.size && answer.to === size && answer.new_root === root &&
      await verifyConsistency(seen.size, size, answer.proof.map(bytes), bytes(seen.root), bytes(root));
    if (ok) {
      remember();
      say("ok", "Consistent with the last checkpoint you saw (" + seen.size + " entries, now " + size + "): proof checked in this browser.");
    } else {
      say("bad", "NOT consistent with the last checkpoint you saw (" + seen.size + " entries, root " + seen.root.slice(0, 12) +
        "…): the history was rewritten.");
    }
  }
  function run() {
    if (checking) return;
    checking = check().catch(function (e) {
      say("error", "Could not check consistency: " + e);
    }).finally(function () { checking = null; });
  }
  run();
  // The verdict is part of the live list: check again when it is re-rendered.
  document.body.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "region-ledger") run();
  });
})();
