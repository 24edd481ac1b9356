# What the language calls itself, in the footer's switcher and the Account page's select.
language-name = English
# How long a date is written: short, medium (Mar 5, 2026) or long (March 5, 2026).
date-length = medium
# An amount: $amount is already formatted (129.00), $currency is its ISO code.
money = { $currency ->
    [USD] ${ $amount } USD
    [CAD] ${ $amount } CAD
    [AUD] ${ $amount } AUD
    [NZD] ${ $amount } NZD
    [EUR] €{ $amount } EUR
    [GBP] £{ $amount } GBP
   *[other] { $amount } { $currency }
}
minutes = { $count ->
    [one] { $count } minute
   *[other] { $count } minutes
}
