//! Reference steam properties from `iapws` (Python, IAPWS-IF97), an
//! implementation we did not write: the gateway computes with `seuif97`, so a
//! test that compares the two checks the formulation, not our own copy.

use std::process::{Command, Stdio};

use super::pymodbus::python;

/// One property to look up.
#[derive(Debug, Clone, Copy)]
pub enum Ask {
    /// h (kJ/kg) at absolute pressure (MPa) and temperature (°C).
    H { p_abs: f64, t_c: f64 },
    /// h (kJ/kg) of saturated steam of quality `x` at absolute pressure (MPa).
    Hx { p_abs: f64, x: f64 },
    /// Saturation temperature (°C) at absolute pressure (MPa).
    Tsat { p_abs: f64 },
}

/// The answers to `asks`, in order, from `iapws` 1.5.5 (installed by scripts/test).
pub fn iapws(asks: &[Ask]) -> Vec<f64> {
    let mut script = String::from(
        "import iapws\nfrom iapws import IAPWS97\nassert iapws.__version__ == '1.5.5', iapws.__version__\n",
    );
    for a in asks {
        let line = match *a {
            Ask::H { p_abs, t_c } => {
                format!("print(repr(float(IAPWS97(P={p_abs:?}, T={t_c:?} + 273.15).h)))")
            }
            Ask::Hx { p_abs, x } => format!("print(repr(float(IAPWS97(P={p_abs:?}, x={x:?}).h)))"),
            Ask::Tsat { p_abs } => {
                format!("print(repr(float(IAPWS97(P={p_abs:?}, x=1).T) - 273.15))")
            }
        };
        script.push_str(&line);
        script.push('\n');
    }
    let py = python();
    let out = Command::new(&py)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", py.display()));
    assert!(
        out.status.success(),
        "iapws 1.5.5 is needed for the steam reference values: run scripts/test (it installs it into .venv)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|e| panic!("iapws printed {l:?}: {e}"))
        })
        .collect();
    assert_eq!(v.len(), asks.len(), "iapws output: {text}");
    v
}
