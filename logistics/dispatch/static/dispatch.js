// Check-in and check-out (forms with data-geolocate): the phone's location goes into the
// form's hidden latitude and longitude when the browser gives it within a few seconds.
// The form is sent either way: a refused permission, no signal or no answer only leaves
// the location out.
(function () {
  var forms = document.querySelectorAll("form[data-geolocate]");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-located") || !navigator.geolocation) {
        return;
      }
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      var status = form.querySelector("[data-geo-status]");
      var sent = false;
      if (button) {
        button.disabled = true;
      }
      if (status) {
        status.textContent = "Finding your location…";
      }
      function send() {
        if (sent) {
          return;
        }
        sent = true;
        form.setAttribute("data-located", "1");
        form.submit();
      }
      // Some browsers never answer while their permission prompt stays open.
      var timer = window.setTimeout(send, 8000);
      navigator.geolocation.getCurrentPosition(
        function (position) {
          window.clearTimeout(timer);
          form.querySelector("input[name=latitude]").value = position.coords.latitude.toFixed(6);
          form.querySelector("input[name=longitude]").value = position.coords.longitude.toFixed(6);
          send();
        },
        function () {
          window.clearTimeout(timer);
          send();
        },
        { enableHighAccuracy: true, timeout: 7000, maximumAge: 60000 }
      );
    });
  });
})();

// The board's planning runs (data-runs: the address of their list): while one waits or
// runs, the list is fetched again every five seconds and replaced in place (a live
// region), so that a form being filled in on the page is never reloaded away. When the
// last one finishes, a link offers the new plan.
(function () {
  var box = document.querySelector("[data-runs]");
  if (!box || !window.fetch) {
    return;
  }
  function active() {
    return box.querySelector("[data-active='true']") !== null;
  }
  if (!active()) {
    return;
  }
  function poll() {
    window
      .fetch(box.getAttribute("data-runs"), { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          window.setTimeout(poll, 15000);
          return;
        }
        box.innerHTML = html;
        if (active()) {
          window.setTimeout(poll, 5000);
          return;
        }
        var done = document.querySelector("[data-plan-changed]");
        if (done) {
          done.querySelector("a").setAttribute("href", location.pathname + location.search);
          done.hidden = false;
        }
      })
      .catch(function () {
        window.setTimeout(poll, 15000);
      });
  }
  window.setTimeout(poll, 5000);
})();