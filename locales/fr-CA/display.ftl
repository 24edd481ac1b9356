# Valeurs intégrées aux phrases : périodes, tarifs et libellés d’état (pages et courriels).

period-between = Du { $start } au { $end }
period-from = À partir du { $start }
period-since = Depuis le { $start }
# $amount est déjà formaté ; $period vaut day, week ou month.
rate = { $amount } par { $period ->
    [day] jour
    [week] semaine
   *[month] mois
}

rental-status-upcoming = À venir
rental-status-active = En cours
rental-status-ended = Terminée
rental-status-cancelled = Annulée

delivery-status-scheduled = Planifiée
delivery-status-out_for_delivery = En cours de livraison
delivery-status-delivered = Livrée
delivery-status-pickup_scheduled = Collecte planifiée
delivery-status-returned = Retournée
delivery-status-cancelled = Annulée
delivery-status-in_progress = En cours

invoice-status-pending = À payer
invoice-status-processing = En traitement
invoice-status-paid = Payée
invoice-status-void = Annulée
