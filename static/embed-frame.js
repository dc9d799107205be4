// IHF embed, inside the iframe: tells the host page its height, keeps the visitor recognised
// where third-party cookies are blocked, and takes a theme from the host page. Every message is
// sent to, and accepted from, the host's origin only (which the server checked against the
// widget's allowed origins).
(function () {
  "use strict";
  var body = document.body;
  var parentOrigin = body.getAttribute("data-parent-origin") || "";
  var key = body.getAttribute("data-embed-key") || "";
  var storeKey = "ihf:visitor:" + key;

  // 1. The visitor token. A fresh anonymous visitor means the cookie did not come back (a
  // browser that blocks third-party cookies): use the token this iframe kept last time instead.
  if (key) {
    try {
      var token = body.getAttribute("data-visitor-token") || "";
      var kept = window.localStorage.getItem(storeKey);
      var carried = new URLSearchParams(window.location.search).has("vt");
      if (body.getAttribute("data-fresh-visitor") === "true" && kept && kept !== token && !carried) {
        var url = new URL(window.location.href);
        url.searchParams.set("vt", kept);
        window.location.replace(url.toString());
        return;
      }
      if (token) window.localStorage.setItem(storeKey, token);
    } catch (e) {
      // Storage blocked too: the cookie or the form's hidden field carries the token.
    }
  }

  // 2. The height, whenever it changes.
  function report() {
    if (!parentOrigin || window.parent === window) return;
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ type: "ihf:resize", key: key, height: height }, parentOrigin);
  }
  if (window.ResizeObserver) new ResizeObserver(report).observe(body);
  window.addEventListener("load", report);
  document.addEventListener("htmx:afterSettle", report);

  // 3. Messages from the host page: its origin only.
  window.addEventListener("message", function (event) {
    if (!parentOrigin || event.origin !== parentOrigin || event.source !== window.parent) return;
    var data = event.data;
    if (data && data.type === "ihf:theme" && (data.theme === "light" || data.theme === "dark")) {
      document.documentElement.setAttribute("data-theme", data.theme);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    // A live update must never overwrite what the visitor is typing.
    if (window.Idiomorph && window.Idiomorph.defaults) {
      window.Idiomorph.defaults.ignoreActiveValue = true;
      // Nor close a reply the visitor is editing (`data-editing`).
      var callbacks = window.Idiomorph.defaults.callbacks || (window.Idiomorph.defaults.callbacks = {});
      var previous = callbacks.beforeNodeMorphed;
      callbacks.beforeNodeMorphed = function (oldNode, newNode) {
        if (oldNode instanceof Element && oldNode.hasAttribute("data-editing")) return false;
        return previous ? previous(oldNode, newNode) : true;
      };
    }
  });
})();
