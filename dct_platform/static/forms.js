// A form's error summary (templates/_forms.html). It has autofocus, which moves the focus to
// it without JavaScript; this covers browsers that honour autofocus on form controls only.
// Its links go to the fields in error: the browser would scroll the control itself to the
// top of the window, hiding its label, so the label is brought into view and the control
// focused instead.
(function () {
  var summary = document.querySelector("[data-error-summary]");
  if (!summary) {
    return;
  }
  if (!document.activeElement || document.activeElement === document.body) {
    summary.focus();
  }
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var control = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!control) {
      return;
    }
    event.preventDefault();
    var label = control.labels && control.labels[0];
    (label || control).scrollIntoView({ block: "start" });
    control.focus({ preventScroll: true });
  });
})();
