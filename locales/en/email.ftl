# The emails customers receive (HTML and plain text), and their subjects.

email-no-name = there
email-hi = Hi { $name },
email-thanks = Thank you, { $name }
email-sent-by = This email was sent by { $storefront }.
email-paste = Or paste this address into your browser:
# A labelled line of a plain-text email.
email-line = { $label }: { $value }
email-phone = phone
email-email = email

subject-sign-in = Your sign-in link for { $storefront }
subject-booking = Your booking with { $storefront } is confirmed: { $label }
subject-email-changed = Your { $storefront } email address was changed
subject-confirm-email = Confirm your new email address for { $storefront }
subject-receipt = Receipt for invoice { $number } from { $storefront }
subject-payment-failed = Your payment of invoice { $number } to { $storefront } did not go through

sign-in-email-title = Sign in to { $storefront }
sign-in-email-link = Use this link to sign in to your { $storefront } customer portal. It works once and expires in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}:
sign-in-email-button-hint = Use the button below to sign in to your customer portal. The link works once and expires in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
sign-in-email-button = Sign in to your portal
sign-in-email-ignore = If you did not ask for this link, you can ignore this email: nobody can sign in without it.
sign-in-email-code = Reading this on another device? On the "Check your email" page of the browser where you asked for the link, enter this code instead (it works only there):
# A link a staff member sent from the console (the customer did not ask for it on the portal).
sign-in-email-by-staff = The { $storefront } team sent you this link. If you were not expecting it, you can ignore this email: nobody can sign in without it.

booking-title = Your booking is confirmed
booking-confirmed = Your booking is confirmed.
booking-label = Booking
booking-where = Where
booking-when = When
booking-view = View Your Booking
booking-button-hint = The button signs you in to your customer portal. It works once, for { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}; after that, ask for a new link on the portal's sign-in page.
booking-link-hint = View Your Booking (this link signs you in to your customer portal; it works once, for { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}):

confirm-email-title = Confirm your new email address
confirm-email-asked-html = Someone asked to use <strong>{ $email }</strong> as the email address of a { $storefront } customer portal account.
confirm-email-asked = Someone asked to use { $email } as the email address of a { $storefront } customer portal account.
confirm-email-button-hint = Use the button below to confirm this address. The link works once and expires in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
confirm-email-link-hint = To confirm this address, open this link. It works once and expires in { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}:
confirm-email-until = Until you confirm, sign-in links keep going to the account's current address.
confirm-email-ignore = If you did not ask for this, ignore this email: nothing changes without it.

email-changed-title = Your email address was changed
email-changed-from-html = The email address of your { $storefront } customer portal account was changed from <strong>{ $old }</strong> to <strong>{ $new }</strong>. The change was confirmed from the new address.
email-changed-from = The email address of your { $storefront } customer portal account was changed from { $old } to { $new }. The change was confirmed from the new address.
email-changed-from-now = From now on, sign-in links go to the new address, and every browser that was signed in to your account has been signed out.
email-changed-not-you = If you did not make this change, contact us right away:
email-changed-reply = Reply to this email.

receipt-title = Receipt for invoice { $number }
receipt-received = We received your payment.
receipt-paid-on = Paid on
receipt-see-all = You can see all your invoices in the Billing section of your customer portal.

payment-failed-title = Your payment of invoice { $number } did not go through
payment-failed-body = The pre-authorized debit for invoice { $number } did not go through: your bank returned it, so nothing was taken. The invoice is waiting for payment again.
payment-failed-how = To pay it, open Billing in your customer portal and press Pay (with a card or another bank account).
payment-failed-pay = Pay invoice { $number }
payment-failed-contact = If you think your bank made a mistake, or to pay another way, contact your facility.
