# Ce que la langue se nomme, dans le sélecteur du pied de page et la page Compte.
language-name = Français
# Longueur des dates : short, medium ou long (1 avril 2026).
date-length = long
# Un montant : $amount est déjà formaté (129,00), $currency est son code ISO.
money = { $currency ->
    [CAD] { $amount } $
    [USD] { $amount } $ US
    [AUD] { $amount } $ AU
    [NZD] { $amount } $ NZ
    [EUR] { $amount } €
    [GBP] { $amount } £
   *[other] { $amount } { $currency }
}
minutes = { $count ->
    [one] { $count } minute
   *[other] { $count } minutes
}
