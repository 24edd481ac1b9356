// Submits forms marked data-autosubmit (the magic-link landing page); without script the
// button does the same.
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
  form.submit();
});

// A form marked data-busy (Pay, Add a payment method: the server waits for Stripe, up to
// `stripe_timeout_seconds`) answers the click at once: its button is disabled, so a second click
// makes no second Checkout, and reads the form's data-busy text, which the page's polite live
// region (#live-status) announces. Coming back from Stripe with the browser's Back button may
// show the page from the back-forward cache: the buttons are then given back.
document.querySelectorAll("form[data-busy]").forEach(function (form) {
  form.addEventListener("submit", function () {
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.dataset.idle = button.textContent;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = form.dataset.busy;
    }
    var live = document.getElementById("live-status");
    if (live) {
      live.textContent = form.dataset.busy;
    }
  });
});
window.addEventListener("pageshow", function (event) {
  if (!event.persisted) {
    return;
  }
  document.querySelectorAll("form[data-busy] button[aria-busy]").forEach(function (button) {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = button.dataset.idle;
  });
  var live = document.getElementById("live-status");
  if (live) {
    live.textContent = "";
  }
});
