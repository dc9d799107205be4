// IHF's small page script: morph settings.
// No framework; everything else is htmx attributes in the markup.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A morph must never overwrite what someone is typing.
    if (window.Idiomorph && window.Idiomorph.defaults) {
      window.Idiomorph.defaults.ignoreActiveValue = true;
    }
  });

  // Live regions, the connection indicator and held updates: static/live.js.
})();
