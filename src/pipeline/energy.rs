//! STUB (replaced by the `cfg` branch): energy roles and kgce conversion.
#![allow(missing_docs, clippy::missing_panics_doc)]

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnergyRole {
    #[default]
    Consumed,
    Exported,
    Feedstock,
    Renewable,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    None,
    Fixed {
        kgce_per_unit: f64,
    },
    EqualValue {
        by_year: Vec<(i16, f64)>,
        unit_factor: f64,
    },
    Steam {
        pressure: usize,
        temperature: usize,
        reference_kj_per_kg: f64,
        kg_per_unit: f64,
        fallback_kgce_per_unit: f64,
    },
}

impl Conversion {
    pub fn kgce(&self, amount: f64, _year: i16, _g: impl Fn(usize) -> Option<f64>) -> Option<(f64, bool)> {
        match self {
            Conversion::None => None,
            Conversion::Fixed { kgce_per_unit } => Some((amount * kgce_per_unit, false)),
            _ => Some((0.0, true)),
        }
    }
}
