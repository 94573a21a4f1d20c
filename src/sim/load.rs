//! The load shape of a simulated meter: a consumption rate over time and its
//! integral in closed form.
//!
//! Counters are never accumulated step by step: the counter at time `t` is
//! `initial + ∫ r dt` from [`EPOCH`] to `t`, evaluated from the antiderivative
//! of the rate. The true consumption between any two instants is therefore a
//! pure function of the two instants, which is what lets tests check window
//! sums and counter differences exactly, whatever order requests arrive in.
//!
//! The rate is `base × (1 + a·sin(ω_d·τ + φ_d) + b·sin(ω_r·τ + φ_r))` with a
//! daily period for `ω_d`, a faster ripple for `ω_r` and `a + b < 1`, so it
//! never goes negative. `τ` is seconds since [`EPOCH`] (not since 1970), which
//! keeps the sine arguments small enough for full `f64` precision.

use std::f64::consts::TAU;

use crate::model::EnergyType;

/// Reference instant of every load shape, Unix seconds (2024-01-01T00:00:00Z):
/// counters hold their `initial` value here.
pub const EPOCH: f64 = 1_704_067_200.0;

/// Seconds in a day: the period of the slow sinusoid.
const DAY: f64 = 86_400.0;

/// A meter's consumption rate over time, in the unit of its main counter per
/// hour (kWh/h = kW for electricity, m³/h, t/h, GJ/h).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadShape {
    /// Mean rate, main unit per hour (≥ 0).
    pub base: f64,
    /// Relative amplitude of the daily sinusoid (`a`).
    pub daily_amplitude: f64,
    /// Phase of the daily sinusoid, radians.
    pub daily_phase: f64,
    /// Relative amplitude of the ripple (`b`); `a + b` must stay below 1.
    pub ripple_amplitude: f64,
    /// Period of the ripple, seconds (> 0).
    pub ripple_period_s: f64,
    /// Phase of the ripple, radians.
    pub ripple_phase: f64,
    /// Main counter at [`EPOCH`], main unit.
    pub initial: f64,
}

impl LoadShape {
    /// A constant rate: the counter grows by exactly `rate / 3600` per second
    /// from `initial` at [`EPOCH`]. Meant for tests that compute by hand.
    #[must_use]
    pub fn constant(rate: f64, initial: f64) -> LoadShape {
        LoadShape {
            base: rate,
            daily_amplitude: 0.0,
            daily_phase: 0.0,
            ripple_amplitude: 0.0,
            ripple_period_s: 1.0,
            ripple_phase: 0.0,
            initial,
        }
    }

    /// The deterministic shape of meter `id` measuring `energy`: every
    /// parameter comes from a stable hash (FNV-1a) of both, so the same meter
    /// behaves the same in every run and on every machine.
    #[must_use]
    pub fn for_meter(id: &str, energy: EnergyType) -> LoadShape {
        let mut h = Fnv::new();
        h.write(id.as_bytes());
        h.write(&[0]);
        h.write(energy.as_str().as_bytes());
        let mut unit = || h.next_unit();
        // Typical mean rates of one metered unit, main unit per hour.
        let (lo, hi) = match energy {
            EnergyType::Electricity => (5.0, 60.0),
            EnergyType::NaturalGas => (10.0, 120.0),
            EnergyType::Steam => (0.5, 8.0),
            EnergyType::Water => (1.0, 20.0),
            EnergyType::Heat => (0.5, 5.0),
            EnergyType::Coal => (0.2, 3.0),
            EnergyType::CompressedAir => (50.0, 600.0),
        };
        let base = lo + (hi - lo) * unit();
        LoadShape {
            base,
            daily_amplitude: 0.2 + 0.3 * unit(),
            daily_phase: TAU * unit(),
            ripple_amplitude: 0.05 + 0.1 * unit(),
            ripple_period_s: 600.0 + 1200.0 * unit(),
            ripple_phase: TAU * unit(),
            // Between about a week and half a year of consumption already on the meter.
            initial: base * (100.0 + 4000.0 * unit()),
        }
    }

    /// The output load of simulated boiler `id` rated at `rated` (main unit
    /// per hour): a base of 84-90 % of rated, a daily swing of 4-6 % and a
    /// ripple of 2-4 % (hashed from the id), so the load stays within
    /// 75.6-99 % of rated, where q₅ is its rated value (see `super::boiler`).
    #[must_use]
    pub fn for_boiler(id: &str, rated: f64) -> LoadShape {
        let mut h = Fnv::new();
        h.write(id.as_bytes());
        h.write(b"\0boiler");
        let mut unit = || h.next_unit();
        let base = rated * (0.84 + 0.06 * unit());
        LoadShape {
            base,
            daily_amplitude: 0.04 + 0.02 * unit(),
            daily_phase: TAU * unit(),
            ripple_amplitude: 0.02 + 0.02 * unit(),
            ripple_period_s: 600.0 + 1200.0 * unit(),
            ripple_phase: TAU * unit(),
            initial: base * (100.0 + 4000.0 * unit()),
        }
    }

    /// Checks the invariants the closed form relies on.
    ///
    /// # Errors
    /// The invariant that does not hold, in words.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(self.base.is_finite() && self.base >= 0.0) {
            return Err("base rate must be finite and not negative");
        }
        if !(self.daily_amplitude >= 0.0 && self.ripple_amplitude >= 0.0) {
            return Err("amplitudes must not be negative");
        }
        if self.daily_amplitude + self.ripple_amplitude >= 1.0 {
            return Err(
                "daily_amplitude + ripple_amplitude must stay below 1 (the rate would go negative)",
            );
        }
        if !(self.ripple_period_s.is_finite() && self.ripple_period_s > 0.0) {
            return Err("ripple period must be positive");
        }
        if !(self.initial.is_finite()
            && self.daily_phase.is_finite()
            && self.ripple_phase.is_finite())
        {
            return Err("initial and phases must be finite");
        }
        Ok(())
    }

    /// Rate at Unix time `t`, main unit per hour.
    #[must_use]
    pub fn rate(&self, t: f64) -> f64 {
        let tau = t - EPOCH;
        let daily = self.daily_amplitude * (TAU * tau / DAY + self.daily_phase).sin();
        let ripple =
            self.ripple_amplitude * (TAU * tau / self.ripple_period_s + self.ripple_phase).sin();
        self.base * (1.0 + daily + ripple)
    }

    /// `∫ r dt` from [`EPOCH`] to `t`, main unit (negative before the epoch).
    fn antiderivative(&self, t: f64) -> f64 {
        let tau = t - EPOCH;
        let daily = self.daily_amplitude * DAY / TAU
            * ((TAU * tau / DAY + self.daily_phase).cos() - self.daily_phase.cos());
        let ripple = self.ripple_amplitude * self.ripple_period_s / TAU
            * ((TAU * tau / self.ripple_period_s + self.ripple_phase).cos()
                - self.ripple_phase.cos());
        // Multiply before dividing: a constant rate then counts exactly in whole seconds.
        self.base * (tau - daily - ripple) / 3600.0
    }

    /// Exact consumption between Unix times `t0` and `t1`, main unit.
    #[must_use]
    pub fn consumption(&self, t0: f64, t1: f64) -> f64 {
        self.antiderivative(t1) - self.antiderivative(t0)
    }

    /// Main counter at Unix time `t`: `initial + ∫ r dt` since [`EPOCH`],
    /// floored at zero (only reached long before the epoch).
    #[must_use]
    pub fn counter(&self, t: f64) -> f64 {
        (self.initial + self.antiderivative(t)).max(0.0)
    }
}

/// FNV-1a, 64 bit: tiny, and stable across Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A number in `[0, 1)`; each call stirs the state (splitmix64 finaliser)
    /// so successive parameters are independent.
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_counts_by_hand() {
        let l = LoadShape::constant(36.0, 1000.0);
        assert_eq!(l.counter(EPOCH), 1000.0);
        assert_eq!(l.counter(EPOCH + 3600.0), 1036.0);
        assert_eq!(l.consumption(EPOCH + 100.0, EPOCH + 200.0), 1.0);
        assert_eq!(l.rate(EPOCH + 12_345.0), 36.0);
    }

    #[test]
    fn shape_is_stable_and_distinct_per_meter() {
        let a = LoadShape::for_meter("m1", EnergyType::Electricity);
        assert_eq!(a, LoadShape::for_meter("m1", EnergyType::Electricity));
        assert_ne!(a, LoadShape::for_meter("m2", EnergyType::Electricity));
        assert_ne!(a, LoadShape::for_meter("m1", EnergyType::Water));
        for e in EnergyType::ALL {
            for id in ["a", "b", "meter-17", "fz01-main"] {
                LoadShape::for_meter(id, e).validate().expect("valid shape");
            }
        }
    }

    #[test]
    fn closed_form_matches_numeric_integral_and_rate_is_positive() {
        let l = LoadShape::for_meter("boiler-gas", EnergyType::NaturalGas);
        let t0 = 1_764_000_000.0;
        let span = 7200.0;
        // Simpson's rule with 1 s panels: exact enough to check the antiderivative.
        let panels = 7200;
        let width = span / f64::from(panels);
        let mut sum = l.rate(t0) + l.rate(t0 + span);
        for i in 1..panels {
            let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
            let rate = l.rate(t0 + f64::from(i) * width);
            assert!(rate > 0.0);
            sum += weight * rate;
        }
        let numeric = sum * width / 3.0 / 3600.0;
        let closed = l.consumption(t0, t0 + span);
        assert!(
            (numeric - closed).abs() < 1e-9 * closed,
            "{numeric} vs {closed}"
        );
        let diff = l.counter(t0 + span) - l.counter(t0);
        assert!((diff - closed).abs() < 1e-9 * closed);
    }
}
