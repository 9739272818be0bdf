//! Money without floating point: how many minor-unit digits a currency has, and decimal text
//! read exactly into integer minor units. Shared by the consumer (reading vendors' amounts) and
//! the dashboard (showing them). Pure: no I/O.

/// Digits after the decimal point of a currency's minor unit (ISO 4217): 0 for JPY, KRW, …,
/// 3 for KWD, BHD, …, else 2.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Whether `code` has the form of an ISO 4217 code: three ASCII capital letters.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Why decimal text could not be read as an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not of the form `[-+]digits[.digits][e[-+]digits]`.
    #[error("is not a decimal number")]
    NotANumber,
    /// More non-zero digits after the point than the scale allows.
    #[error("has more decimals than allowed")]
    TooManyDecimals,
    /// Does not fit in a signed 64-bit integer once scaled.
    #[error("is out of range")]
    OutOfRange,
}

/// Reads decimal text exactly as an integer count of `10^-scale` units: with scale 2,
/// `"12.34"` is 1234, `"12.5"` is 1250, `"12"` is 1200, `"1.2e1"` is 1200, `"12.340"` is 1234,
/// and `"12.345"` is [`DecimalError::TooManyDecimals`]. No floating point is involved.
pub fn parse_decimal(text: &str, scale: u32) -> Result<i64, DecimalError> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent = &unsigned[at + 1..];
            let digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DecimalError::NotANumber);
            }
            let exponent: i64 = exponent.parse().map_err(|_| DecimalError::NotANumber)?;
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return Err(DecimalError::NotANumber);
    }
    // The value is digits × 10^shift.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let shift = exponent + i64::from(scale) - fraction.len() as i64;
    let (kept, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits
            .len()
            .saturating_sub(usize::try_from(-shift).unwrap_or(usize::MAX));
        digits.split_at(cut)
    };
    if dropped.bytes().any(|b| b != b'0') {
        return Err(DecimalError::TooManyDecimals);
    }
    if kept.is_empty() {
        return Ok(0);
    }
    let mut value: i128 = if kept.len() > 20 {
        return Err(DecimalError::OutOfRange);
    } else {
        kept.parse().map_err(|_| DecimalError::NotANumber)?
    };
    for _ in 0..shift.max(0) {
        value = value.checked_mul(10).ok_or(DecimalError::OutOfRange)?;
        if value > i128::from(i64::MAX) + 1 {
            return Err(DecimalError::OutOfRange);
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| DecimalError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_have_their_iso_minor_digits() {
        assert_eq!(minor_digits("EUR"), 2);
        assert_eq!(minor_digits("USD"), 2);
        assert_eq!(minor_digits("JPY"), 0);
        assert_eq!(minor_digits("KRW"), 0);
        assert_eq!(minor_digits("KWD"), 3);
        assert_eq!(minor_digits("BHD"), 3);
        assert_eq!(minor_digits("XYZ"), 2);
    }

    #[test]
    fn currency_codes_are_three_capital_letters() {
        assert!(is_currency_code("EUR"));
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(!is_currency_code(bad), "{bad}");
        }
    }

    #[test]
    fn decimals_are_read_exactly_into_minor_units() {
        let cases: [(&str, u32, i64); 14] = [
            ("12.34", 2, 1234),
            ("12.5", 2, 1250),
            ("12", 2, 1200),
            ("12.340", 2, 1234),
            ("0.1", 2, 10),
            ("0.07", 2, 7),
            (".5", 2, 50),
            ("5.", 2, 500),
            ("-3.21", 2, -321),
            ("+3", 0, 3),
            ("1.2e1", 2, 1200),
            ("1234E-2", 2, 1234),
            ("1.234", 3, 1234),
            ("000", 2, 0),
        ];
        for (text, scale, expected) in cases {
            assert_eq!(parse_decimal(text, scale), Ok(expected), "{text} at scale {scale}");
        }
        assert_eq!(parse_decimal("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(parse_decimal("-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(parse_decimal("0e999999", 2), Ok(0));
    }

    #[test]
    fn extra_decimals_are_refused_unless_they_are_zeros() {
        assert_eq!(parse_decimal("12.345", 2), Err(DecimalError::TooManyDecimals));
        assert_eq!(parse_decimal("1.5", 0), Err(DecimalError::TooManyDecimals));
        assert_eq!(parse_decimal("1e-3", 2), Err(DecimalError::TooManyDecimals));
        assert_eq!(parse_decimal("1.50", 1), Ok(15));
    }

    #[test]
    fn nonsense_and_huge_values_are_refused() {
        for bad in [
            "", "-", ".", "1,5", "1.2.3", "12 ", " 12", "0x10", "1e", "1e+", "e5", "NaN", "--1", "1_000",
        ] {
            assert_eq!(parse_decimal(bad, 2), Err(DecimalError::NotANumber), "{bad:?}");
        }
        assert_eq!(parse_decimal("92233720368547758.08", 2), Err(DecimalError::OutOfRange));
        assert_eq!(parse_decimal("1e30", 0), Err(DecimalError::OutOfRange));
        assert_eq!(
            parse_decimal("123456789012345678901234567890", 0),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(parse_decimal("1e9999999", 0), Err(DecimalError::NotANumber));
    }
}
