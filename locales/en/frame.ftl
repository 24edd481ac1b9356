# The frame's pages: refusals and errors, for the portal (portal-…) and the console (console-…).

form-not-utf8 = The form could not be read: it is not valid UTF-8.
form-malformed = The form could not be read.

portal-too-many-heading = Too many requests
# $seconds: the Retry-After value sent with the page.
portal-too-many = You have made too many requests in a short time. Wait { $seconds ->
    [one] a second
   *[other] { $seconds } seconds
}, then try again.
portal-form-too-large-heading = That was too much
portal-form-too-large = The form you sent is far larger than any of ours. Nothing was changed.
portal-form-unreadable-heading = We could not read that form
portal-form-broken = The form did not arrive whole. Nothing was changed. Please try again.
# The sign-in code on Check your email (SPEC §11): a code of the wrong shape, and one that did not
# sign in (the same words whatever the reason).
portal-code-malformed = The code has 6 digits: type it as the email shows it.
portal-code-wrong = That code did not sign you in. It may be mistyped, used or expired, or from a link asked for in another browser; after 5 wrong codes the link stops working. Check the code, or ask for a new link.
portal-form-unreadable = { $reason } Nothing was changed.
portal-form-expired-heading = This form has expired
portal-form-expired = The form was not sent from this page or has expired. Nothing was changed. Go back, reload the page and try again.
portal-form-expired-back = Back to the portal
portal-unavailable-heading = Please try again in a minute
portal-unavailable = We could not complete that just now. Nothing was changed. Please try again in a minute.
portal-internal-heading = Something went wrong
portal-internal = Something went wrong on our side. Nothing was changed. Please try again.
portal-not-found-heading = Page not found
portal-not-found = There is no page at this address. The link may be mistyped, or the page may have moved.
portal-not-found-back = Back to the portal

console-too-many-heading = Too many requests
console-too-many = Wait { $seconds ->
    [one] a second
   *[other] { $seconds } seconds
}, then try again.
console-form-too-large-heading = That was too much
console-form-too-large = The form is far larger than any of ours. Nothing was changed.
console-form-unreadable-heading = We could not read that form
console-form-broken = Nothing was changed.
console-code-malformed = The code has 6 digits.
console-code-wrong = That code did not sign you in.
console-form-unreadable = { $reason }
console-form-expired-heading = This form has expired
console-form-expired = The form was not sent from this page or has expired. Nothing was changed. Reload the page and try again.
console-unavailable-heading = Please try again in a minute
console-unavailable = We could not complete that just now. Nothing was changed.
console-internal-heading = Something went wrong
console-internal = Something went wrong on our side. Nothing was changed.
console-not-found-heading = Not found
console-not-found = There is nothing here, or it is not yours to see.
console-not-found-back = Back to the console
