// The console's script: live updates by polling the page's JSON twin, and POST buttons
// that carry the session's CSRF token. No inline script anywhere (the CSP forbids it).
"use strict";
(function () {
  var POLL_MS = 5000;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var flash = document.getElementById("flash");

  function show(message) {
    if (!flash) { return; }
    flash.textContent = message;
    flash.hidden = !message;
  }

  // Swap the page's content for a fresh render of the same page.
  function refresh() {
    return fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 || r.redirected) { location.assign("/login"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        var main = document.getElementById("content");
        if (fresh && main) { main.innerHTML = fresh.innerHTML; }
      });
  }

  var main = document.getElementById("content");
  var url = main && main.getAttribute("data-poll");
  var last = null;
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { location.assign("/login"); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (text) {
        if (text === null) { return; }
        if (last !== null && text !== last) { refresh(); }
        last = text;
      })
      .catch(function () { /* the next poll tries again */ });
  }
  if (url) { poll(); setInterval(poll, POLL_MS); }

  // POST actions (drain, retry, cancel): sent with the CSRF header, then the page refreshed.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("act")) { return; }
    event.preventDefault();
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      body: new URLSearchParams(new FormData(form))
    }).then(function (r) {
      return r.json().then(function (body) {
        show(r.ok ? "" : (body.detail || body.title || String(r.status)));
        return refresh();
      });
    }).catch(function (err) { show(String(err)); });
  });
})();
