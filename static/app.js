// Submits forms marked data-autosubmit (the magic-link landing page); without script the
// button does the same.
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
  form.submit();
});
