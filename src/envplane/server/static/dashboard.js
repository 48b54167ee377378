// envplane dashboard: keeps a streamed log readable. htmx appends the lines; this drops the
// oldest beyond a cap (a chatty service must not slow the page down) and follows the end
// unless the reader scrolled up.
(function () {
  "use strict";
  var MAX_LINES = 2000;
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var log = event.target.closest(".log");
    if (log) { log.dataset.follow = (log.scrollTop + log.clientHeight >= log.scrollHeight - 24) ? "1" : "0"; }
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    var log = event.target.closest(".log");
    if (!log) { return; }
    var lines = log.querySelectorAll(".line");
    for (var i = 0; i < lines.length - MAX_LINES; i++) { lines[i].remove(); }
    if (log.dataset.follow !== "0") { log.scrollTop = log.scrollHeight; }
  });
})();
