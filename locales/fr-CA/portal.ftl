# Les pages du portail client.

skip-to-content = Aller au contenu
nav-label = Portail
nav-dashboard = Tableau de bord
nav-billing = Facturation
nav-account = Compte
nav-sign-out = Se déconnecter
footer = Portail client de { $storefront }
language-switcher = Langue
back-to-dashboard = Retour au tableau de bord
back-to-account = Retour à votre compte

## Tableau de bord, locations, historique

dashboard-title = Tableau de bord
dashboard-greeting = Bonjour, { $name }
dashboard-rentals = Vos locations
dashboard-no-rentals = Vous n’avez aucune location en cours.
rent-a-unit = Louer un espace
fact-facility = Établissement
fact-dates = Dates
fact-rate = Tarif
fact-delivery = Livraison
track-delivery = Suivre votre livraison
download-agreement = Télécharger le contrat de location (PDF)
contact-us = Nous joindre
contact-phone = Téléphone :
contact-email = Courriel :
rental-booking = Votre réservation
rental-all = Toutes vos locations
history-title = Historique des locations
history-none = Aucune location passée.
history-no-invoices = Aucune facture pour cette location.
history-invoices = Factures et reçus
history-receipt = Reçu
history-back = Retour à vos locations

## Facturation

billing-title = Facturation
billing-back = Retour à la facturation
billing-invoices = Factures
billing-filter = Filtrer les factures
billing-filter-all = Toutes
billing-filter-pending = À payer
billing-filter-paid = Payées
billing-none = Aucune facture ici.
invoice-number = Facture
invoice-description = Description
invoice-due = Échéance
invoice-amount = Montant
invoice-status = État
invoice-action = Action
billing-pay = Payer { $amount }
billing-opening-checkout = Ouverture du paiement sécurisé Stripe…
billing-removing = Suppression…
billing-on-its-way = Paiement en cours
billing-view-receipt = Voir le reçu
billing-method = Mode de paiement
billing-no-method = Aucun mode de paiement enregistré.
billing-remove = Retirer
billing-remove-label = Retirer { $method }
billing-add-method = Ajouter un mode de paiement
billing-confirming = Paiement en confirmation
billing-unknown-filter-heading = Filtre inconnu
billing-unknown-filter = Les factures peuvent être filtrées par Toutes, À payer ou Payées.
billing-show-all = Afficher toutes les factures
billing-paid-notice = Merci : votre paiement est en cours de confirmation. La facture indiquera Payée dès que Stripe l’aura confirmé.
billing-pay-cancelled = Paiement annulé : rien n’a été débité.
billing-method-added = Votre mode de paiement a été ajouté.
billing-method-not-added = Aucun mode de paiement n’a été ajouté.
billing-method-removed = Le mode de paiement a été retiré.
billing-payments-off-heading = Le paiement en ligne n’est pas disponible
billing-payments-off = Le paiement en ligne n’est pas disponible pour le moment. Pour payer une facture, communiquez avec votre établissement.
billing-processing-heading = Paiement en cours
billing-processing = Le paiement de cette facture est en traitement : un débit préautorisé prend quelques jours ouvrables. La facture indiquera Payée dès que votre banque l’aura confirmé; vous n’avez rien d’autre à faire.
billing-not-payable-heading = Rien à payer
billing-not-payable = Cette facture n’est pas en attente de paiement.
billing-provider-down-heading = Fournisseur de paiement indisponible
billing-provider-down = Nous n’avons pas pu joindre notre fournisseur de paiement. Rien n’a été débité ni modifié. Veuillez réessayer dans quelques minutes.
method-debit = Débit préautorisé, compte { $bank } se terminant par { $last4 }
method-card = { $brand } se terminant par { $last4 }
method-card-expires = { $brand } se terminant par { $last4 }, expire { $expires }
# La ligne d’un paiement Stripe Checkout.
checkout-description = Facture { $number } : { $description }
receipt-heading = Reçu de la facture
receipt-invoice-heading = Facture
receipt-for = Objet
receipt-issued = Émise le
receipt-status-on = { $status } le { $date }

## Compte

account-title = Compte
account-full-name = Nom complet
account-email = Courriel
account-phone = Téléphone
account-language = Langue
# $language : le nom de la langue de la vitrine.
account-language-default = Langue de la vitrine ({ $language })
account-language-hint = Les pages et les courriels que nous vous envoyons utilisent cette langue.
account-save = Enregistrer
account-pending-heading = Confirmez votre nouvelle adresse.
account-pending = Nous avons envoyé un lien à { $email }. Tant que vous ne l’ouvrez pas, votre courriel reste celui indiqué ci-dessous et les liens de connexion continuent d’y être envoyés.
account-not-saved = Rien n’a été enregistré. Vérifiez les champs indiqués ci-dessous.
account-email-hint = Les liens de connexion sont envoyés à l’adresse ci-dessus. Une nouvelle adresse est utilisée dès que vous la confirmez à partir du courriel que nous y envoyons.
account-browsers = Navigateurs connectés
account-browsers-hint = Connecté sur un ordinateur ou un téléphone que vous n’utilisez plus? Déconnectez-vous partout, y compris dans ce navigateur.
account-sign-out-everywhere = Se déconnecter partout
account-email-confirmed = Votre nouvelle adresse courriel est confirmée. Tous les autres navigateurs ont été déconnectés.
account-saved = Vos renseignements ont été enregistrés.
account-name-empty = Entrez votre nom complet.
account-name-control = Un nom ne peut pas contenir de saut de ligne ni de caractère de contrôle.
field-too-long = { $max ->
    [one] Utilisez au plus { $max } caractère.
   *[other] Utilisez au plus { $max } caractères.
}
account-phone-invalid = Entrez un numéro de téléphone composé de chiffres, d’espaces, de +, de - ou de parenthèses.
account-email-taken = Un autre compte utilise déjà cette adresse courriel. Utilisez une autre adresse, ou connectez-vous avec celle-ci.
account-email-too-many = Vous avez demandé à changer d’adresse trop de fois en peu de temps. Attendez quelques minutes, puis réessayez.
email-empty = Entrez votre adresse courriel.
email-control-character = Une adresse courriel ne peut pas contenir de saut de ligne ni de caractère de contrôle.
email-too-long = Cette adresse courriel est trop longue.
email-malformed = Entrez une adresse courriel comme nom@exemple.com.

## Confirmation d’une nouvelle adresse, changement de compte

confirm-title = Confirmez votre nouvelle adresse
confirm-question = Utiliser <strong>{ $email }</strong> comme adresse courriel de votre compte { $storefront }? Les liens de connexion y seront envoyés, et tous les autres navigateurs connectés au compte seront déconnectés.
confirm-button = Confirmer cette adresse
confirmed-other-heading = Votre nouvelle adresse est confirmée
confirmed-other = Les liens de connexion de ce compte sont maintenant envoyés à { $email }. Ce navigateur reste connecté au nom de { $name }.
confirm-taken-heading = Cette adresse est déjà utilisée
confirm-taken = Un autre compte utilise maintenant { $email }. Rien n’a été modifié : votre compte garde son adresse actuelle. Choisissez une autre adresse dans la page Compte.
switch-title = Changer de compte?
switch-current = Ce navigateur est connecté au nom de <strong>{ $name }</strong> ({ $email }).
switch-link = Le lien de connexion que vous avez ouvert est pour <strong>{ $name }</strong> ({ $email }).
switch-continuing = Continuer déconnecte { $name } de ce navigateur.
switch-continue = Continuer en tant que { $name }
switch-stay = Rester connecté en tant que { $name }

## Connexion

sign-in-title = Portail client
sign-in-intro = Entrez l’adresse courriel utilisée lors de votre location. Nous vous enverrons par courriel un lien qui vous connecte : aucun mot de passe requis.
sign-in-send = Recevoir un lien de connexion
signed-out = Vous êtes déconnecté.
index-intro = Le portail client de chaque vitrine se trouve à <code>/s/&lt;vitrine&gt;/</code>. Utilisez le lien « Portail client » du site Web de votre entreprise de location.
check-email-title = Consultez vos courriels
check-email-sent = Si <strong>{ $email }</strong> correspond à un compte, nous lui avons envoyé un lien de connexion. Le lien fonctionne une seule fois et expire dans { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}.
check-email-nothing = Rien reçu après quelques minutes? Vérifiez vos courriels indésirables, assurez-vous que l’adresse est celle utilisée lors de votre location, ou <a href="{ $base }/sign-in">demandez un nouveau lien</a>.
check-email-code-title = Vous avez un code?
check-email-code-hint = Vous lisez le courriel sur un autre appareil? Entrez ici, dans ce navigateur, le code à 6 chiffres du courriel.
check-email-code-label = Code de connexion
check-email-code-submit = Me connecter avec le code
link-expired-title = Lien expiré
link-expired = Ce lien de connexion a expiré ou a déjà été utilisé. Les liens fonctionnent une seule fois et seulement pendant { $minutes ->
    [one] { $minutes } minute
   *[other] { $minutes } minutes
}. Entrez votre courriel pour en recevoir un nouveau.
landing-title = Connexion en cours
landing-heading = Connexion en cours…
landing-hint = Si rien ne se passe, appuyez sur le bouton.
landing-button = Se connecter
