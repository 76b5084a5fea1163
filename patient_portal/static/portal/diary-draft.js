// The diary form (patient_portal/templates/portal/diary_form.html), kinder with JavaScript;
// everything also works without it.
//
// - Skip logic, live: a question that the answers so far do not ask is hidden (the server
//   ignores its answer either way).
// - A draft per diary in this browser's localStorage, saved as the patient answers and put
//   back when the page is opened again, with the form's client id, so that sending it again
//   stores the diary once. Pages that show a diary saved (or over) remove its draft.
// - Sending: the browser's clock goes with the answers (device_time). The form is sent with
//   fetch, so that a dropped connection leaves the patient on the page with their answers
//   and a message; any answer of the server other than "saved" (errors, a closed window) is
//   then shown as a page by sending the form the ordinary way.
(function () {
  "use strict";
  var PREFIX = "dct-diary-draft:";
  var KEEP_MS = 14 * 24 * 3600 * 1000;

  function store() {
    try {
      return window.localStorage;
    } catch (e) {
      return null; // storage switched off: the form works without drafts
    }
  }

  function forget(id) {
    var s = store();
    if (s) {
      s.removeItem(PREFIX + id);
    }
  }

  function read(id) {
    var s = store();
    try {
      return s ? JSON.parse(s.getItem(PREFIX + id) || "null") : null;
    } catch (e) {
      return null;
    }
  }

  // Saved or over: the draft has done its work. Old drafts go too.
  Array.prototype.forEach.call(document.querySelectorAll("[data-diary-forget]"), function (el) {
    forget(el.getAttribute("data-diary-forget"));
  });
  (function prune() {
    var s = store();
    if (!s) {
      return;
    }
    for (var i = s.length - 1; i >= 0; i--) {
      var key = s.key(i);
      if (key && key.indexOf(PREFIX) === 0) {
        var draft = read(key.slice(PREFIX.length));
        if (!draft || !(Date.now() - draft.saved < KEEP_MS)) {
          s.removeItem(key);
        }
      }
    }
  })();

  var form = document.querySelector("form[data-diary-form]");
  if (!form) {
    return;
  }
  var id = form.getAttribute("data-occurrence");
  var questions = form.querySelectorAll("[data-question]");
  var offline = form.querySelector("[data-offline-message]");
  var button = form.querySelector("button[type=submit]");
  form.classList.add("is-live");

  function answerFields() {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name.indexOf("q-") === 0;
    });
  }

  function values() {
    var found = {};
    answerFields().forEach(function (el) {
      found[el.name] = found[el.name] || [];
      if ((el.type !== "radio" && el.type !== "checkbox") || el.checked) {
        found[el.name].push(el.value);
      }
    });
    return found;
  }

  function save() {
    var s = store();
    if (!s) {
      return;
    }
    var draft = { saved: Date.now(), clientId: form.elements.client_id.value, answers: values() };
    try {
      s.setItem(PREFIX + id, JSON.stringify(draft));
    } catch (e) {
      // storage full: the answers are still on the page
    }
  }

  function restore() {
    var draft = read(id);
    if (!draft || !draft.answers) {
      return false;
    }
    answerFields().forEach(function (el) {
      var kept = draft.answers[el.name];
      if (!kept) {
        return;
      }
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = kept.indexOf(el.value) !== -1;
      } else {
        el.value = kept[0] || "";
      }
    });
    if (draft.clientId) {
      form.elements.client_id.value = draft.clientId;
    }
    return true;
  }

  // A question shows when the question it depends on shows and has the answer it asks for.
  function applySkipLogic() {
    var current = values();
    var shown = {};
    Array.prototype.forEach.call(questions, function (q) {
      var on = q.getAttribute("data-show-if");
      var visible =
        !on || (shown[on] === true && (current[on] || []).indexOf(q.getAttribute("data-show-value")) !== -1);
      shown[q.getAttribute("data-question")] = visible;
      q.hidden = !visible;
    });
  }

  // The device's own clock, as ISO 8601 with its offset: 2026-03-10T19:00:02+01:00.
  function deviceTime(d) {
    function two(n) {
      return (n < 10 ? "0" : "") + n;
    }
    var offset = -d.getTimezoneOffset();
    var sign = offset < 0 ? "-" : "+";
    offset = Math.abs(offset);
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) +
      "T" + two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) +
      sign + two(Math.floor(offset / 60)) + ":" + two(offset % 60);
  }

  if (!form.hasAttribute("data-submitted") && restore()) {
    var note = document.querySelector("[data-draft-restored]");
    if (note) {
      note.textContent = note.getAttribute("data-text");
    }
  }
  applySkipLogic();
  form.addEventListener("input", save);
  form.addEventListener("change", function () {
    applySkipLogic();
    save();
  });

  var native = false;
  var sending = false;
  form.addEventListener("submit", function (event) {
    form.elements.device_time.value = deviceTime(new Date());
    if (native || !window.fetch || !window.FormData) {
      return;
    }
    event.preventDefault();
    if (sending) {
      return; // a second tap while the first is on its way
    }
    sending = true;
    save();
    offline.textContent = "";
    var label = button.textContent;
    button.textContent = form.getAttribute("data-sending-text") || label;
    button.setAttribute("aria-busy", "true");
    var savedUrl = new URL(form.getAttribute("data-saved-url"), window.location.href).href;
    window
      .fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(
        function (response) {
          if (response.ok && response.url === savedUrl) {
            forget(id);
            window.location.assign(response.url);
            return;
          }
          // Errors to correct, a closed window, a sign-in: the server's page says what to do.
          native = true;
          form.submit();
        },
        function () {
          sending = false;
          button.textContent = label;
          button.removeAttribute("aria-busy");
          offline.textContent = form.getAttribute("data-offline-text");
        }
      );
  });
})();
