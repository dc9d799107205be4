// IHF's small page script: morph settings and the live-connection indicator.
// No framework; everything else is htmx attributes in the markup.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A morph must never overwrite what someone is typing.
    if (window.Idiomorph && window.Idiomorph.defaults) {
      window.Idiomorph.defaults.ignoreActiveValue = true;
    }
  });

  function setLive(state, text) {
    var live = document.getElementById("live");
    if (!live) return;
    live.setAttribute("data-live-status", state);
    var label = live.querySelector(".live-text");
    if (label) label.textContent = text;
  }
  document.addEventListener("htmx:sseOpen", function () { setLive("open", "Live"); });
  document.addEventListener("htmx:sseError", function () { setLive("closed", "Reconnecting…"); });
  document.addEventListener("htmx:sseClose", function () { setLive("closed", "Disconnected"); });
})();
