// jobline dashboard: say when a refresh of #main failed, instead of leaving
// the page silently old. htmx keeps the old content on an error answer or a
// network failure; this shows when that content is from and why it is not
// newer, and hides the notice at the next refresh that works.
(function () {
  "use strict";
  function notice() { return document.getElementById("refresh-status"); }
  function clock() { return new Date().toISOString().slice(11, 19) + " UTC"; }
  function show(why) {
    var n = notice();
    if (!n) { return; }
    var main = document.getElementById("main");
    var from = main ? main.getAttribute("data-rendered") : null;
    n.textContent = "Could not refresh at " + clock() + " (" + why + "). " +
      (from ? "What you see is from " + from + ". " : "") + "Trying again every 5 s.";
    n.hidden = false;
  }
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail && e.detail.xhr;
    show(xhr ? "HTTP " + xhr.status : "an error answer");
  });
  document.addEventListener("htmx:sendError", function () { show("the server did not answer"); });
  document.addEventListener("htmx:timeout", function () { show("it timed out"); });
  document.addEventListener("htmx:afterRequest", function (e) {
    var n = notice();
    if (n && e.detail && e.detail.successful) { n.hidden = true; }
  });
})();
