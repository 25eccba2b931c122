/* The duty officer's live console (served from our origin: the CSP allows no inline script).
 *
 * Polls the small JSON endpoint /triage/live every second while a staff page is open:
 * unread counts in the header; on the inbox, new tips inserted at the top with an unread
 * marker; for a new urgent tip, a sound and a browser notification once the officer turned
 * them on. Each poll keeps the session alive; without input for the idle timeout, an officer
 * who is not on duty stops polling, so an abandoned screen still logs out.
 * Nothing here reads tip content: the endpoint returns metadata only.
 */
(function () {
  "use strict";
  var badge = document.getElementById("unread-count");
  if (!badge || !window.fetch) { return; }
  var liveUrl = badge.getAttribute("data-live");
  var idleSeconds = parseInt(badge.getAttribute("data-idle") || "1800", 10);
  var notices = document.getElementById("notification-count");
  var table = document.getElementById("inbox-tips");
  var body = table ? table.tBodies[0] : null;
  var total = document.getElementById("unread-total");
  var sound = document.getElementById("alert-sound");
  var button = document.getElementById("alerts-on");
  var current = document.getElementById("tip-main");
  var updated = document.getElementById("tip-updated");
  var since = "";
  var known = {};
  var first = true;
  var lastInput = Date.now();
  var onDuty = false;
  var alertsOn = false;

  function stored(key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } }
  function store(key, value) { try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ } }

  if (body) {
    Array.prototype.forEach.call(body.rows, function (row) {
      var id = row.getAttribute("data-tip");
      if (id) { known[id] = true; }
    });
  }

  ["keydown", "pointerdown", "scroll", "touchstart"].forEach(function (name) {
    window.addEventListener(name, function () { lastInput = Date.now(); }, { passive: true });
  });

  function setCount(element, count) {
    if (!element) { return; }
    element.textContent = count > 0 ? String(count) : "";
    element.classList.toggle("on", count > 0);
  }

  function marker(label) {
    var dot = document.createElement("span");
    dot.className = "unread-dot";
    dot.setAttribute("role", "img");
    dot.setAttribute("aria-label", label);
    dot.textContent = "●";
    return dot;
  }

  function markUnread(row) {
    if (row.classList.contains("unread")) { return; }
    row.classList.add("unread");
    var cell = row.cells[0];
    if (cell) {
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(marker(table.getAttribute("data-unread-label") || ""));
    }
  }

  function newRow(tip) {
    var labels = JSON.parse(table.getAttribute("data-labels") || "[]");
    var row = document.createElement("tr");
    row.className = "p-" + tip.priority + " live-new";
    row.setAttribute("data-tip", tip.id);
    var values = [null, tip.priority_label, tip.status_label, tip.category_label, tip.unit, "—",
      tip.received, ""];
    values.forEach(function (value, index) {
      var cell = document.createElement("td");
      cell.setAttribute("data-label", labels[index] || "");
      if (index === 0) {
        var link = document.createElement("a");
        link.className = "tip-link";
        link.href = tip.url;
        link.textContent = tip.code;
        cell.appendChild(link);
      } else {
        cell.textContent = value;
      }
      row.appendChild(cell);
    });
    var empty = body.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    body.insertBefore(row, body.firstChild);
    return row;
  }

  function alert(tip) {
    if (!alertsOn) { return; }
    if (sound) {
      sound.currentTime = 0;
      var played = sound.play();
      var done = function () {
        document.body.setAttribute("data-alert-played",
          String(parseInt(document.body.getAttribute("data-alert-played") || "0", 10) + 1));
        document.dispatchEvent(new CustomEvent("tipline:alert", { detail: tip.code }));
      };
      if (played && played.then) { played.then(done, function () { /* blocked: no gesture yet */ }); }
      else { done(); }
    }
    if (window.Notification && Notification.permission === "granted") {
      // The receipt code only: a notification can show on a locked screen.
      new Notification((table && table.getAttribute("data-urgent-title")) || "Tipline",
        { body: tip.code, tag: tip.id });
    }
  }

  function apply(data) {
    since = data.now;
    onDuty = !!data.on_duty;
    setCount(badge, data.unread);
    setCount(notices, data.notifications);
    if (total) {
      total.textContent = (total.getAttribute("data-pattern") || "{n}").replace("{n}", data.unread);
    }
    (data.tips || []).forEach(function (tip) {
      var row = body ? body.querySelector('tr[data-tip="' + tip.id + '"]') : null;
      var isNew = !known[tip.id];
      known[tip.id] = true;
      if (body && !row && table.getAttribute("data-live-insert") === "1") { row = newRow(tip); }
      if (row && tip.unread) { markUnread(row); }
      // The tip on screen got a new message since it was drawn: offer to show it.
      if (current && updated && tip.unread && current.getAttribute("data-tip") === tip.id) {
        updated.hidden = false;
      }
      if (isNew && !first && tip.urgent) { alert(tip); }
    });
    first = false;
  }

  function poll() {
    if (!onDuty && Date.now() - lastInput > idleSeconds * 1000) { return; }  // let it expire
    var url = liveUrl + (since ? "?since=" + encodeURIComponent(since) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(apply)
      .catch(function () { /* logged out or offline: try again */ })
      .then(function () { window.setTimeout(poll, 1000); });
  }

  function turnOn() {
    alertsOn = true;
    store("tipline.alerts", "on");
    if (button) { button.classList.add("on"); button.setAttribute("aria-pressed", "true"); }
  }

  if (button) {
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", function () {
      // The click is the gesture browsers need before a page may play a sound.
      if (sound) {
        sound.muted = true;
        var primed = sound.play();
        var unmute = function () { sound.pause(); sound.muted = false; sound.currentTime = 0; };
        if (primed && primed.then) { primed.then(unmute, unmute); } else { unmute(); }
      }
      if (window.Notification && Notification.permission === "default") {
        Notification.requestPermission();
      }
      turnOn();
    });
    if (stored("tipline.alerts") === "on") { turnOn(); }
  }

  // Canned replies: choosing one fills the reply box, to be edited before sending.
  var canned = document.getElementById("canned");
  var reply = document.getElementById("reply-text");
  if (canned && reply) {
    canned.addEventListener("change", function () {
      if (canned.value) { reply.value = canned.value; reply.focus(); }
    });
  }

  poll();
}());

/* Related tips (issue 18): the "find" button loads the suggestions into the tip page. The
 * fragment is HTML from our own server (escaped by its templates); without script the button
 * opens it as a page of its own. Asked for, not automatic: each list is audited. */
(function () {
  "use strict";
  var form = document.getElementById("form-related");
  var results = document.getElementById("related-results");
  if (!form || !results || !window.fetch) { return; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = document.getElementById("related-find");
    if (button) { button.disabled = true; }
    results.setAttribute("aria-busy", "true");
    fetch(form.action + "?fragment=1", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) { results.innerHTML = html; })
      .catch(function () { form.submit(); })  // logged out or failed: the page of its own
      .then(function () {
        results.removeAttribute("aria-busy");
        if (button) { button.disabled = false; }
      });
  });
}());

/* Keyboard shortcuts on the inbox and the tip page, listed on the page (templates/triage/
 * _shortcuts.html): j/k next/previous tip, t take, r reply, n note, l related tips, / search,
 * ? the list. Never while typing in a field, nor with Ctrl, Alt or Meta held. */
(function () {
  "use strict";
  var help = document.getElementById("shortcuts");
  if (!help) { return; }
  var onTip = document.getElementById("tip-main");

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName.toUpperCase();
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function links() {
    var selector = onTip ? ".side-list a" : "#inbox-tips a.tip-link";
    return Array.prototype.slice.call(document.querySelectorAll(selector));
  }

  function move(step) {
    var all = links();
    if (!all.length) { return; }
    if (onTip) {  // the tip page: open the next or previous tip of the list beside it
      var here = all.findIndex(function (a) { return a.getAttribute("aria-current") === "page"; });
      // A tip not in the list (closed, say): j opens the first, k the last.
      var next = here < 0 ? all[step > 0 ? 0 : all.length - 1] : all[here + step];
      if (next) { window.location.href = next.href; }
      return;
    }
    var at = all.indexOf(document.activeElement);  // the inbox: move the focus along the rows
    var target = all[at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(Math.max(at + step, 0), all.length - 1)];
    all.forEach(function (a) { a.classList.remove("kbd-focus"); });
    target.classList.add("kbd-focus");
    target.focus();
  }

  function focus(id) {
    var field = document.getElementById(id);
    if (!field) { return false; }
    field.scrollIntoView({ block: "center" });
    field.focus();
    return true;
  }

  function click(id) {
    var button = document.getElementById(id);
    if (!button) { return false; }
    button.click();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) { return; }
    var done = true;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "t": done = click("take"); break;
      case "r": done = focus("reply-text"); break;
      case "n": done = focus("note-text"); break;
      case "l": done = click("related-find"); break;
      case "/": {
        var search = document.querySelector('header a[href*="/triage/search/"]');
        if (search) { window.location.href = search.href; } else { done = false; }
        break;
      }
      case "?":
        help.open = !help.open;
        if (help.open) { help.querySelector("summary").focus(); }
        break;
      default: done = false;
    }
    if (done) { event.preventDefault(); }
  });
}());
