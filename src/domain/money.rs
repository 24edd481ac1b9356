//! Amounts of money in minor units with their currency.

use std::fmt;

/// An amount in the currency's minor unit (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    minor: i64,
    currency: [u8; 3],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidMoney {
    #[error("a currency is three letters, like USD")]
    Currency,
    #[error("an amount cannot be negative")]
    Negative,
}

impl Money {
    pub fn new(minor: i64, currency: &str) -> Result<Self, InvalidMoney> {
        if minor < 0 {
            return Err(InvalidMoney::Negative);
        }
        let bytes = currency.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(|b| b.is_ascii_alphabetic()) {
            return Err(InvalidMoney::Currency);
        }
        let mut code = [0u8; 3];
        for (i, b) in bytes.iter().enumerate() {
            code[i] = b.to_ascii_uppercase();
        }
        Ok(Self {
            minor,
            currency: code,
        })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> &str {
        std::str::from_utf8(&self.currency).unwrap_or("XXX")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = match self.currency() {
            "USD" | "CAD" | "AUD" | "NZD" => "$",
            "EUR" => "€",
            "GBP" => "£",
            _ => "",
        };
        let units = self.minor / 100;
        let cents = self.minor % 100;
        let mut grouped = String::new();
        let digits = units.to_string();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if symbol.is_empty() {
            write!(f, "{grouped}.{cents:02} {}", self.currency())
        } else {
            write!(f, "{symbol}{grouped}.{cents:02} {}", self.currency())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts() {
        assert_eq!(Money::new(12950, "usd").unwrap().to_string(), "$129.50 USD");
        assert_eq!(
            Money::new(123456789, "EUR").unwrap().to_string(),
            "€1,234,567.89 EUR"
        );
        assert_eq!(Money::new(5, "JPY").unwrap().to_string(), "0.05 JPY");
        assert_eq!(Money::new(-1, "USD"), Err(InvalidMoney::Negative));
        assert_eq!(Money::new(1, "US"), Err(InvalidMoney::Currency));
    }
}
