// The console's Emails tab and records: while a delivery is in flight (queued, sending,
// deferred), ask the server for its status every two seconds and update the row in place.
// A change of status is also said in the page's polite live region, for screen readers.
(function () {
  var table = document.querySelector("table[data-status-url]");
  if (!table) { return; }
  var url = table.getAttribute("data-status-url");
  var inFlight = ["queued", "sending", "deferred"];
  var announcer = document.getElementById("delivery-announcer");
  function announce(row, status, attempts) {
    if (!announcer) { return; }
    var to = row.querySelector('td[data-label="Recipient"], td[data-label="To"]');
    var who = to ? to.textContent.trim() : "a recipient";
    var tries = attempts === 1 ? "1 attempt" : attempts + " attempts";
    announcer.textContent = "Email to " + who + " is now " + status + " (" + tries + ").";
  }
  function pending() {
    return Array.prototype.filter.call(
      document.querySelectorAll("tr[data-delivery]"),
      function (row) { return inFlight.indexOf(row.getAttribute("data-status")) >= 0; });
  }
  function refresh() {
    var rows = pending();
    if (rows.length === 0) { return; }
    var ids = rows.map(function (r) { return r.getAttribute("data-delivery"); }).join(",");
    fetch(url + "?ids=" + encodeURIComponent(ids), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (list) {
        list.forEach(function (d) {
          var row = document.querySelector('tr[data-delivery="' + d.id + '"]');
          if (!row) { return; }
          var changed = row.getAttribute("data-status") !== d.status;
          row.setAttribute("data-status", d.status);
          var status = row.querySelector('[data-field="status"]');
          if (status) { status.textContent = d.status; status.className = "badge badge-" + d.status; }
          var attempts = row.querySelector('[data-field="attempts"]');
          if (attempts) { attempts.textContent = d.attempts; }
          var error = row.querySelector('[data-field="last_error"]');
          if (error) { error.textContent = d.last_error || ""; }
          if (changed) { announce(row, d.status, d.attempts); }
        });
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, 2000); });
  }
  setTimeout(refresh, 2000);
})();
