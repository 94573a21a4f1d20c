//! The efficiency formulas, pure: one window's inputs in, one
//! [`BoilerResult`] out. Sources and confidence of every formula and
//! constant: README "Boiler efficiency" and `config/coefficients/boiler.toml`.

use super::{BoilerResult, BoilerSpec, FuelRecord, WindowInputs};
use crate::pipeline::steam::SteamMargins;

/// Evaluates one boiler window by both methods. `record` is the fuel record
/// in force at the window's start (`None`: none is).
#[must_use]
pub fn evaluate(
    spec: &BoilerSpec,
    record: Option<&FuelRecord>,
    w: &WindowInputs,
    margins: SteamMargins,
) -> BoilerResult {
    let _ = (spec, record, w, margins);
    todo!("issue 14: boiler calc")
}
