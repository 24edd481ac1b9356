# The customer portal's pages.

skip-to-content = Skip to content
nav-label = Portal
nav-dashboard = Dashboard
nav-billing = Billing
nav-account = Account
nav-sign-out = Sign out
footer = { $storefront } customer portal
language-switcher = Language
back-to-dashboard = Back to the dashboard
back-to-account = Back to your account

## Dashboard, rentals, history

dashboard-title = Dashboard
dashboard-greeting = Hi, { $name }
dashboard-rentals = Your rentals
dashboard-no-rentals = You have no active rentals right now.
rent-a-unit = Rent a unit
fact-facility = Facility
fact-dates = Dates
fact-rate = Rate
fact-delivery = Delivery
track-delivery = Track your delivery
download-agreement = Download the rental agreement (PDF)
contact-us = Contact us
contact-phone = Phone:
contact-email = Email:
rental-booking = Your booking
rental-all = All your rentals
history-title = Rental history
history-none = No past rentals.
history-no-invoices = No invoices for this rental.
history-invoices = Invoices and receipts
history-receipt = Receipt
history-back = Back to your rentals

## Billing

billing-title = Billing
billing-back = Back to Billing
billing-invoices = Invoices
billing-filter = Filter invoices
billing-filter-all = All
billing-filter-pending = Pending
billing-filter-paid = Paid
billing-none = No invoices here.
invoice-number = Invoice
invoice-description = Description
invoice-due = Due
invoice-amount = Amount
invoice-status = Status
invoice-action = Action
billing-pay = Pay { $amount }
# Said on the button (and to screen readers) the moment Pay or Add a payment method is pressed,
# while the server waits for Stripe.
billing-opening-checkout = Opening Stripe's secure checkout…
billing-removing = Removing…
billing-on-its-way = Payment on its way
billing-view-receipt = View receipt
billing-method = Payment method
billing-no-method = No payment method on file.
billing-remove = Remove
billing-remove-label = Remove { $method }
billing-add-method = Add a payment method
billing-confirming = Confirming payment
billing-unknown-filter-heading = Unknown filter
billing-unknown-filter = Invoices can be filtered by All, Pending or Paid.
billing-show-all = Show all invoices
billing-paid-notice = Thank you: your payment is being confirmed. The invoice shows Paid as soon as Stripe confirms it.
billing-pay-cancelled = Payment cancelled: nothing was charged.
billing-method-added = Your payment method was added.
billing-method-not-added = No payment method was added.
billing-method-removed = The payment method was removed.
billing-payments-off-heading = Online payment is not available
billing-payments-off = Online payment is not available right now. To pay an invoice, contact your facility.
billing-processing-heading = Payment on its way
billing-processing = The payment of this invoice is being processed: a pre-authorized debit takes a few business days. The invoice shows Paid once your bank confirms it; nothing more to do.
billing-not-payable-heading = Nothing to pay
billing-not-payable = This invoice is not waiting for payment.
billing-provider-down-heading = Payment provider unavailable
billing-provider-down = We could not reach our payment provider. Nothing was charged and nothing was changed. Please try again in a few minutes.
method-debit = Pre-authorized debit, { $bank } account ending in { $last4 }
method-card = { $brand } ending in { $last4 }
method-card-expires = { $brand } ending in { $last4 }, expires { $expires }
# The line of a Stripe Checkout.
checkout-description = Invoice { $number }: { $description }
receipt-heading = Receipt for invoice
receipt-invoice-heading = Invoice
receipt-for = For
receipt-issued = Issued
receipt-status-on = { $status } on { $date }

## Account

account-title = Account
account-full-name = Full name
account-email = Email
account-phone = Phone
account-language = Language
# $language: the name of the storefront's language.
account-language-default = The storefront's language ({ $language })
account-language-hint = Pages and the emails we send you use this language.
account-save = Save changes
account-pending-heading = Confirm your new address.
account-pending = We sent a link to { $email }. Until you open it, your email stays as shown below and sign-in links keep going there.
account-not-saved = Nothing was saved. Check the fields marked below.
account-email-hint = Sign-in links go to the email address above. A new address is used once you confirm it from the email we send to it.
account-browsers = Signed-in browsers
account-browsers-hint = Signed in on a computer or phone you no longer use? Sign out everywhere, this browser included.
account-sign-out-everywhere = Sign out everywhere
account-email-confirmed = Your new email address is confirmed. Every other browser was signed out.
account-saved = Your details were saved.
account-name-empty = Enter your full name.
account-name-control = A name cannot contain line breaks or control characters.
field-too-long = Use at most { $max } characters.
account-phone-invalid = Enter a phone number with digits, spaces, +, - or brackets.
account-email-taken = Another account already uses this email address. Use a different address, or sign in with that one.
account-email-too-many = You have asked to change your address too many times in a short while. Wait a few minutes, then try again.
email-empty = Enter your email address.
email-control-character = An email address cannot contain line breaks or control characters.
email-too-long = That email address is too long.
email-malformed = Enter an email address like name@example.com.

## Confirming a new address, switching accounts

confirm-title = Confirm your new address
confirm-question = Use <strong>{ $email }</strong> as the email address of your { $storefront } account? Sign-in links will go there, and every other browser signed in to the account will be signed out.
confirm-button = Confirm this address
confirmed-other-heading = Your new address is confirmed
confirmed-other = Sign-in links for that account now go to { $email }. This browser is still signed in as { $name }.
confirm-taken-heading = That address is taken
confirm-taken = Another account now uses { $email }. Nothing was changed: your account keeps its current address. Choose a different address on your Account page.
switch-title = Switch accounts?
switch-current = This browser is signed in as <strong>{ $name }</strong> ({ $email }).
switch-link = The sign-in link you opened is for <strong>{ $name }</strong> ({ $email }).
switch-continuing = Continuing signs { $name } out of this browser.
switch-continue = Continue as { $name }
switch-stay = Stay signed in as { $name }

## Signing in

sign-in-title = Customer portal
sign-in-intro = Enter the email address you used when you rented with us. We will email you a link that signs you in: no password needed.
sign-in-send = Send sign-in link
signed-out = You are signed out.
# The server's root page, outside any storefront (markup allowed: the text is ours).
index-intro = Each storefront's customer portal lives at <code>/s/&lt;storefront&gt;/</code>. Use the Customer portal link on your rental company's website.
check-email-title = Check your email
check-email-sent = If <strong>{ $email }</strong> belongs to an account, we have sent it a sign-in link. The link works once and expires in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
check-email-nothing = Nothing arrived after a few minutes? Check your spam folder, make sure the address is the one you rented with, or <a href="{ $base }/sign-in">ask for a new link</a>.
check-email-code-title = Have a code?
check-email-code-hint = Reading the email on another device? Enter the 6-digit code from the email here, in this browser.
check-email-code-label = Sign-in code
check-email-code-submit = Sign in with the code
link-expired-title = Link expired
link-expired = This sign-in link has expired or has already been used. Links work once and only for { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}. Enter your email to get a new one.
landing-title = Signing you in
landing-heading = Signing you in…
landing-hint = If nothing happens, press the button.
landing-button = Sign in
