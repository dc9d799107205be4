// IHF's small page script: morph settings, the live-connection indicator, and live updates
// held while a region shows more than its first page.
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

  // A live region holds more than its first page once someone used "Load more" in it. A live
  // update (always the first page) would take those rows away, so it is held instead: the
  // latest one waits behind a "Show latest" button placed before the region.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.hasAttribute("data-load-more")) return;
    var region = elt.closest("[sse-swap]");
    if (region) region.setAttribute("data-extended", "");
  });

  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var region = evt.target;
    if (!region.hasAttribute("data-extended")) return;
    evt.preventDefault();
    region.heldUpdate = evt.detail.data;
    var button = region.previousElementSibling;
    if (button && button.classList.contains("live-held")) return;
    button = document.createElement("button");
    button.type = "button";
    button.className = "live-held";
    button.textContent = "New activity: show latest";
    button.addEventListener("click", function () {
      region.removeAttribute("data-extended");
      button.remove();
      htmx.swap(region, region.heldUpdate, { swapStyle: region.getAttribute("hx-swap") || "innerHTML" });
      region.heldUpdate = null;
    });
    region.parentNode.insertBefore(button, region);
  });
})();
