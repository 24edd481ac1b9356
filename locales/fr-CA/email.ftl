# Les courriels que reçoivent les clients (HTML et texte brut), et leurs objets.

email-no-name = à vous
email-hi = Bonjour { $name },
email-thanks = Merci, { $name }
email-sent-by = Ce courriel vous a été envoyé par { $storefront }.
email-paste = Ou collez cette adresse dans votre navigateur :
# Une ligne avec libellé d’un courriel en texte brut.
email-line = { $label } : { $value }
email-phone = téléphone
email-email = courriel

subject-sign-in = Votre lien de connexion à { $storefront }
subject-booking = Votre réservation chez { $storefront } est confirmée : { $label }
subject-email-changed = Votre adresse courriel chez { $storefront } a été modifiée
subject-confirm-email = Confirmez votre nouvelle adresse courriel chez { $storefront }
subject-receipt = Reçu de la facture { $number } de { $storefront }
subject-payment-failed = Le paiement de la facture { $number } à { $storefront } n’a pas abouti

sign-in-email-title = Connexion à { $storefront }
sign-in-email-link = Utilisez ce lien pour vous connecter à votre portail client { $storefront }. Il fonctionne une seule fois et expire dans { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
} :
sign-in-email-button-hint = Utilisez le bouton ci-dessous pour vous connecter à votre portail client. Le lien fonctionne une seule fois et expire dans { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
sign-in-email-button = Me connecter au portail
sign-in-email-ignore = Si vous n’avez pas demandé ce lien, vous pouvez ignorer ce courriel : personne ne peut se connecter sans lui.
sign-in-email-code = Vous lisez ceci sur un autre appareil? Sur la page « Consultez vos courriels » du navigateur où vous avez demandé le lien, entrez plutôt ce code (il ne fonctionne que là) :
# Un lien envoyé par un membre du personnel depuis la console (le client ne l’a pas demandé).
sign-in-email-by-staff = L’équipe de { $storefront } vous a envoyé ce lien. Si vous ne l’attendiez pas, vous pouvez ignorer ce courriel : personne ne peut se connecter sans lui.

booking-title = Votre réservation est confirmée
booking-confirmed = Votre réservation est confirmée.
booking-label = Réservation
booking-where = Lieu
booking-when = Dates
booking-view = Voir votre réservation
booking-button-hint = Le bouton vous connecte à votre portail client. Il fonctionne une seule fois, pendant { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}; ensuite, demandez un nouveau lien sur la page de connexion du portail.
booking-link-hint = Voir votre réservation (ce lien vous connecte à votre portail client; il fonctionne une seule fois, pendant { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}) :

confirm-email-title = Confirmez votre nouvelle adresse courriel
confirm-email-asked-html = Quelqu’un a demandé à utiliser <strong>{ $email }</strong> comme adresse courriel d’un compte du portail client { $storefront }.
confirm-email-asked = Quelqu’un a demandé à utiliser { $email } comme adresse courriel d’un compte du portail client { $storefront }.
confirm-email-button-hint = Utilisez le bouton ci-dessous pour confirmer cette adresse. Le lien fonctionne une seule fois et expire dans { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
confirm-email-link-hint = Pour confirmer cette adresse, ouvrez ce lien. Il fonctionne une seule fois et expire dans { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
} :
confirm-email-until = Tant que vous ne confirmez pas, les liens de connexion continuent d’être envoyés à l’adresse actuelle du compte.
confirm-email-ignore = Si vous n’avez pas fait cette demande, ignorez ce courriel : rien ne change sans lui.

email-changed-title = Votre adresse courriel a été modifiée
email-changed-from-html = L’adresse courriel de votre compte du portail client { $storefront } a été changée de <strong>{ $old }</strong> à <strong>{ $new }</strong>. Le changement a été confirmé à partir de la nouvelle adresse.
email-changed-from = L’adresse courriel de votre compte du portail client { $storefront } a été changée de { $old } à { $new }. Le changement a été confirmé à partir de la nouvelle adresse.
email-changed-from-now = Dorénavant, les liens de connexion sont envoyés à la nouvelle adresse, et tous les navigateurs connectés à votre compte ont été déconnectés.
email-changed-not-you = Si vous n’avez pas fait ce changement, communiquez avec nous sans tarder :
email-changed-reply = Répondez à ce courriel.

receipt-title = Reçu de la facture { $number }
receipt-received = Nous avons bien reçu votre paiement.
receipt-paid-on = Payée le
receipt-see-all = Vous pouvez consulter toutes vos factures dans la section Facturation de votre portail client.

payment-failed-title = Le paiement de la facture { $number } n’a pas abouti
payment-failed-body = Le débit préautorisé de la facture { $number } n’a pas abouti : votre banque l’a retourné, donc rien n’a été prélevé. La facture est de nouveau en attente de paiement.
payment-failed-how = Pour la payer, ouvrez Facturation dans votre portail client et appuyez sur Payer (avec une carte ou un autre compte bancaire).
payment-failed-pay = Payer la facture { $number }
payment-failed-contact = Si vous pensez que votre banque a fait une erreur, ou pour payer autrement, communiquez avec votre établissement.
