# Values built into phrases: periods, rates and status labels (pages and emails).

period-between = { $start } to { $end }
period-from = From { $start }
period-since = Since { $start }
# $amount is formatted already; $period is day, week or month.
rate = { $amount } per { $period ->
    [day] day
    [week] week
   *[month] month
}

rental-status-upcoming = Upcoming
rental-status-active = Active
rental-status-ended = Ended
rental-status-cancelled = Cancelled

delivery-status-scheduled = Scheduled
delivery-status-out_for_delivery = Out for delivery
delivery-status-delivered = Delivered
delivery-status-pickup_scheduled = Pickup scheduled
delivery-status-returned = Returned
delivery-status-cancelled = Cancelled
delivery-status-in_progress = In progress

invoice-status-pending = Pending
invoice-status-processing = Processing
invoice-status-paid = Paid
invoice-status-void = Void
