// IHF embed loader. On the host page:
//   <script src="https://ihf.example/embed.js" data-ihf-widget="EMBED_KEY" async></script>
// Optional: data-ihf-theme="light|dark|auto" (light unless asked; auto follows the visitor's system), data-ihf-token="<HS256 token signed by your server>",
// data-ihf-max-height="640" (pixels; the frame never grows past it and scrolls inside instead).
// It inserts an iframe where the tag stands and sizes it to its content, up to that cap. It injects no inline
// script or style attribute into the host page, so it works under a strict Content-Security-Policy
// (allow this origin in script-src and frame-src).
(function () {
  "use strict";

  function mount(script) {
    if (script.getAttribute("data-ihf-mounted")) return;
    script.setAttribute("data-ihf-mounted", "true");
    var key = script.getAttribute("data-ihf-widget");
    if (!key) return;
    var base = new URL(script.src, document.baseURI).origin;
    var params = new URLSearchParams();
    params.set("parent", window.location.origin);
    var theme = script.getAttribute("data-ihf-theme");
    if (theme) params.set("theme", theme);
    var token = script.getAttribute("data-ihf-token");
    if (token) params.set("token", token);

    var frame = document.createElement("iframe");
    frame.src = base + "/embed/" + encodeURIComponent(key) + "?" + params.toString();
    frame.title = script.getAttribute("data-ihf-title") || "Feedback";
    frame.width = "100%";
    frame.height = script.getAttribute("data-ihf-height") || "360";
    frame.loading = "lazy";
    frame.referrerPolicy = "origin";
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox");
    frame.className = "ihf-embed";
    // CSSOM, not a style attribute: allowed under style-src without 'unsafe-inline'.
    frame.style.border = "0";
    frame.style.display = "block";
    var cap = parseInt(script.getAttribute("data-ihf-max-height") || "", 10);
    if (!(cap >= 120)) cap = 640;
    script.parentNode.insertBefore(frame, script.nextSibling);

    window.addEventListener("message", function (event) {
      // Only this iframe, from IHF's origin, may resize it.
      if (event.origin !== base || event.source !== frame.contentWindow) return;
      var data = event.data;
      if (!data || data.type !== "ihf:resize" || typeof data.height !== "number") return;
      // Up to the cap: a long thread scrolls inside the frame rather than stretching the host page.
      frame.height = String(Math.max(120, Math.min(cap, Math.ceil(data.height))));
    });
  }

  if (document.currentScript && document.currentScript.getAttribute("data-ihf-widget")) {
    mount(document.currentScript);
  }
  var scripts = document.querySelectorAll("script[data-ihf-widget]");
  for (var i = 0; i < scripts.length; i++) {
    if (scripts[i].src && scripts[i].src.indexOf("/embed.js") !== -1) mount(scripts[i]);
  }
})();
