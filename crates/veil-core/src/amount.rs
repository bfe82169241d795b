//! nRLC amounts: a `uint256` with checked arithmetic, so that an overflow is an error and never a wrap.

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// nRLC per RLC.
pub const NRLC_PER_RLC: u64 = 1_000_000_000;

/// An amount of nRLC (1 RLC = 10^9 nRLC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nrlc(pub U256);

/// An arithmetic result that does not fit, or a subtraction that would go below zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("amount arithmetic out of range: {op} of {a} and {b}")]
pub struct AmountError {
    pub op: &'static str,
    pub a: Nrlc,
    pub b: U256,
}

impl Nrlc {
    pub const ZERO: Nrlc = Nrlc(U256::ZERO);

    pub fn new(n: u64) -> Self {
        Nrlc(U256::from(n))
    }

    pub fn rlc(n: u64) -> Self {
        Nrlc(U256::from(n) * U256::from(NRLC_PER_RLC))
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn checked_add(self, other: Nrlc) -> Result<Nrlc, AmountError> {
        self.0.checked_add(other.0).map(Nrlc).ok_or(AmountError { op: "addition", a: self, b: other.0 })
    }

    pub fn checked_sub(self, other: Nrlc) -> Result<Nrlc, AmountError> {
        self.0.checked_sub(other.0).map(Nrlc).ok_or(AmountError { op: "subtraction", a: self, b: other.0 })
    }

    pub fn checked_mul(self, factor: U256) -> Result<Nrlc, AmountError> {
        self.0.checked_mul(factor).map(Nrlc).ok_or(AmountError { op: "multiplication", a: self, b: factor })
    }

    /// `self × percent / 100`, flooring, as PoCo's `percentage`.
    pub fn percentage(self, percent: u64) -> Result<Nrlc, AmountError> {
        Ok(Nrlc(self.checked_mul(U256::from(percent))?.0 / U256::from(100u64)))
    }

    /// `self × num / den`, flooring (PoCo's `mulByFraction`). `den` must be non-zero.
    pub fn mul_div(self, num: U256, den: U256) -> Result<Nrlc, AmountError> {
        Ok(Nrlc(self.checked_mul(num)?.0 / den))
    }

    pub fn min(self, other: Nrlc) -> Nrlc {
        if self <= other { self } else { other }
    }

    /// Human form in RLC, e.g. `1.5 RLC`.
    pub fn to_rlc_string(&self) -> String {
        let unit = U256::from(NRLC_PER_RLC);
        let whole = self.0 / unit;
        let frac = (self.0 % unit).to::<u64>();
        if frac == 0 {
            format!("{whole} RLC")
        } else {
            let s = format!("{frac:09}");
            format!("{whole}.{} RLC", s.trim_end_matches('0'))
        }
    }
}

impl fmt::Display for Nrlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Nrlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Nrlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::uint::deserialize(d).map(Nrlc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let max = Nrlc(U256::MAX);
        assert!(max.checked_add(Nrlc::new(1)).is_err());
        assert!(Nrlc::ZERO.checked_sub(Nrlc::new(1)).is_err());
        assert!(max.checked_mul(U256::from(2)).is_err());
        assert_eq!(Nrlc::new(7).checked_sub(Nrlc::new(3)).unwrap(), Nrlc::new(4));
    }

    #[test]
    fn percentage_floors() {
        assert_eq!(Nrlc::new(99).percentage(30).unwrap(), Nrlc::new(29));
        assert_eq!(Nrlc::new(10).mul_div(U256::from(1), U256::from(3)).unwrap(), Nrlc::new(3));
    }

    #[test]
    fn rlc_display() {
        assert_eq!(Nrlc::new(1_500_000_000).to_rlc_string(), "1.5 RLC");
        assert_eq!(Nrlc::rlc(3).to_rlc_string(), "3 RLC");
        assert_eq!(Nrlc::new(1).to_rlc_string(), "0.000000001 RLC");
    }
}
