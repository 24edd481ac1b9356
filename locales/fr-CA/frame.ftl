# Les pages du cadre : refus et erreurs, du portail (portal-…) et de la console (console-…).

form-not-utf8 = Le formulaire n’a pas pu être lu : il n’est pas en UTF-8 valide.
form-malformed = Le formulaire n’a pas pu être lu.

portal-too-many-heading = Trop de demandes
# $seconds : la valeur de Retry-After envoyée avec la page.
portal-too-many = Vous avez fait trop de demandes en peu de temps. Attendez { $seconds ->
    [one] { $seconds } seconde
   *[other] { $seconds } secondes
}, puis réessayez.
portal-form-too-large-heading = C’était trop
portal-form-too-large = Le formulaire envoyé est bien plus gros que tous les nôtres. Rien n’a été modifié.
portal-form-unreadable-heading = Nous n’avons pas pu lire ce formulaire
portal-form-broken = Le formulaire n’est pas arrivé en entier. Rien n’a été modifié. Veuillez réessayer.
portal-code-malformed = Le code compte 6 chiffres : tapez-le tel qu’il figure dans le courriel.
portal-code-wrong = Ce code ne vous a pas connecté. Il est peut-être mal tapé, déjà utilisé ou expiré, ou vient d’un lien demandé dans un autre navigateur; après 5 codes erronés, le lien cesse de fonctionner. Vérifiez le code ou demandez un nouveau lien.
portal-form-unreadable = { $reason } Rien n’a été modifié.
portal-form-expired-heading = Ce formulaire a expiré
portal-form-expired = Le formulaire n’a pas été envoyé depuis cette page ou a expiré. Rien n’a été modifié. Revenez en arrière, rechargez la page et réessayez.
portal-form-expired-back = Retour au portail
portal-unavailable-heading = Veuillez réessayer dans une minute
portal-unavailable = Nous n’avons pas pu terminer cette opération. Rien n’a été modifié. Veuillez réessayer dans une minute.
portal-internal-heading = Une erreur s’est produite
portal-internal = Une erreur s’est produite de notre côté. Rien n’a été modifié. Veuillez réessayer.
portal-not-found-heading = Page introuvable
portal-not-found = Il n’y a aucune page à cette adresse. Le lien est peut-être mal saisi, ou la page a été déplacée.
portal-not-found-back = Retour au portail

console-too-many-heading = Trop de demandes
console-too-many = Attendez { $seconds ->
    [one] { $seconds } seconde
   *[other] { $seconds } secondes
}, puis réessayez.
console-form-too-large-heading = C’était trop
console-form-too-large = Le formulaire est bien plus gros que tous les nôtres. Rien n’a été modifié.
console-form-unreadable-heading = Nous n’avons pas pu lire ce formulaire
console-form-broken = Rien n’a été modifié.
console-code-malformed = Le code compte 6 chiffres.
console-code-wrong = Ce code ne vous a pas connecté.
console-form-unreadable = { $reason }
console-form-expired-heading = Ce formulaire a expiré
console-form-expired = Le formulaire n’a pas été envoyé depuis cette page ou a expiré. Rien n’a été modifié. Rechargez la page et réessayez.
console-unavailable-heading = Veuillez réessayer dans une minute
console-unavailable = Nous n’avons pas pu terminer cette opération. Rien n’a été modifié.
console-internal-heading = Une erreur s’est produite
console-internal = Une erreur s’est produite de notre côté. Rien n’a été modifié.
console-not-found-heading = Introuvable
console-not-found = Il n’y a rien ici, ou ce n’est pas à vous de le voir.
console-not-found-back = Retour à la console
