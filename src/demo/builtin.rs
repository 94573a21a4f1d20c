//! The demo's built-in configuration: four enterprises with about fifty
//! meters, the buses they sit on (Modbus TCP gateways, one serial server
//! carrying Modbus RTU meters and the cement works' DL/T 645 incomers, one
//! dial-in DTU), the optional MQTT meters and the injected faults, as TOML
//! text loaded through the same checks as a user's files.
//!
//! Why a file of its own: the tables are long and change for reasons of
//! their own (a new profile, a new transport); `demo` runs them.

use std::fmt::Write as _;

use super::DemoError;
use crate::config::{self, Config};

/// One demo enterprise: id, name, and its meters as (id, energy, level, profile, interval s, pt, ct).
pub(super) type DemoMeter = (
    &'static str,
    &'static str,
    u8,
    &'static str,
    u32,
    Option<(f64, f64)>,
);

/// The built-in enterprises. Ids look like the institute's enterprise codes.
pub(super) const SITES: [(&str, &str, &[DemoMeter]); 4] = [
    (
        "E3501020001",
        "Minjiang Textile Printing & Dyeing Co.",
        &[
            (
                "tx-e-main",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((10.0, 2.0)),
            ),
            ("tx-e-dye1", "electricity", 2, "eastron_sdm630", 1, None),
            ("tx-e-dye2", "electricity", 2, "eastron_sdm630", 1, None),
            (
                "tx-e-spin",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("tx-e-comp", "electricity", 3, "eastron_sdm630", 1, None),
            (
                "tx-e-boil",
                "electricity",
                3,
                "acrel_dtsd1352",
                1,
                Some((1.0, 5.0)),
            ),
            ("tx-s-main", "steam", 1, "steam_flow_computer", 5, None),
            ("tx-s-dye", "steam", 2, "steam_flow_computer", 5, None),
            ("tx-g-boil", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("tx-w-main", "water", 1, "water_meter", 5, None),
            ("tx-w-dye", "water", 2, "water_meter", 5, None),
            ("tx-h-office", "heat", 3, "heat_meter", 5, None),
        ],
    ),
    (
        "E3505830002",
        "Quanzhou Petrochemical Additives Ltd.",
        &[
            (
                "pc-e-main1",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((1.0, 10.0)),
            ),
            (
                "pc-e-main2",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((1.0, 10.0)),
            ),
            (
                "pc-e-react",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("pc-e-pump1", "electricity", 3, "eastron_sdm630", 1, None),
            ("pc-e-pump2", "electricity", 3, "eastron_sdm630", 1, None),
            ("pc-g-main", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("pc-g-furn", "natural_gas", 2, "gas_flow_computer", 5, None),
            ("pc-s-in", "steam", 1, "steam_flow_computer", 5, None),
            ("pc-s-react", "steam", 2, "steam_flow_computer", 5, None),
            ("pc-h-main", "heat", 1, "heat_meter", 5, None),
            ("pc-w-main", "water", 1, "water_meter", 5, None),
            ("pc-w-cool", "water", 2, "water_meter", 5, None),
        ],
    ),
    (
        "E3508020003",
        "Longyan Cement Works",
        &[
            // The grid incomers: DL/T 645 meters, as at most Chinese plants
            // (see `DLT645_METERS`), on the serial-server bus.
            (
                "cm-e-in1",
                "electricity",
                1,
                DLT645_PROFILE,
                5,
                Some((1.0, 10.0)),
            ),
            (
                "cm-e-in2",
                "electricity",
                1,
                DLT645_PROFILE,
                5,
                Some((1.0, 10.0)),
            ),
            (
                "cm-e-kiln",
                "electricity",
                2,
                "acrel_dtsd1352",
                1,
                Some((10.0, 2.0)),
            ),
            (
                "cm-e-mill1",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            (
                "cm-e-mill2",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("cm-e-fan", "electricity", 3, "eastron_sdm630", 1, None),
            ("cm-c-kiln", "coal", 1, "belt_scale", 5, None),
            ("cm-c-dryer", "coal", 2, "belt_scale", 5, None),
            ("cm-w-main", "water", 1, "water_meter", 5, None),
            ("cm-g-ign", "natural_gas", 2, "gas_flow_computer", 5, None),
            ("cm-h-office", "heat", 3, "heat_meter", 5, None),
            ("cm-s-waste", "steam", 3, "steam_flow_computer", 5, None),
            ("cm-e-light", "electricity", 3, "eastron_sdm630", 1, None),
        ],
    ),
    (
        "E3501110004",
        "Fuzhou Central Hospital Energy Centre",
        &[
            (
                "hs-e-main",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((1.0, 20.0)),
            ),
            (
                "hs-e-chill",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("hs-e-ward", "electricity", 3, "eastron_sdm630", 1, None),
            ("hs-e-lab", "electricity", 3, "eastron_sdm630", 1, None),
            ("hs-g-main", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("hs-g-kitch", "natural_gas", 3, "gas_flow_computer", 5, None),
            ("hs-s-laund", "steam", 2, "steam_flow_computer", 5, None),
            ("hs-h-main", "heat", 1, "heat_meter", 5, None),
            ("hs-h-ward", "heat", 2, "heat_meter", 5, None),
            ("hs-w-main", "water", 1, "water_meter", 5, None),
            ("hs-w-hot", "water", 2, "water_meter", 5, None),
            ("hs-e-ups", "electricity", 3, "eastron_sdm630", 1, None),
        ],
    ),
];

/// A field bus of the demo: which site's meters it carries.
#[derive(Debug, Clone, Copy)]
pub struct DemoBus {
    /// Index of the site in the built-in enterprises.
    pub site: usize,
    /// Endpoint id.
    pub id: &'static str,
    /// The meters on it; the site's other meters stay on its Modbus TCP gateway.
    pub meters: &'static [&'static str],
}

/// The serial server: the cement works' 5 s meters on one RS-485 bus at
/// 9600 baud, reached as RTU over TCP: its two DL/T 645 incomers (one
/// request per DI, 17 each) and six Modbus RTU meters (one or two reads
/// each), about two seconds of wire time, inside their 5 s interval.
pub const SERIAL_BUS: DemoBus = DemoBus {
    site: 2,
    id: "rtu-2",
    meters: &[
        "cm-e-in1",
        "cm-e-in2",
        "cm-c-kiln",
        "cm-c-dryer",
        "cm-w-main",
        "cm-g-ign",
        "cm-h-office",
        "cm-s-waste",
    ],
};

/// The dial-in DTU: the hospital's 5 s meters behind a 4G DTU.
pub const DTU_BUS: DemoBus = DemoBus {
    site: 3,
    id: "dtu-3",
    meters: &[
        "hs-g-main",
        "hs-g-kitch",
        "hs-s-laund",
        "hs-h-main",
        "hs-h-ward",
        "hs-w-main",
        "hs-w-hot",
    ],
};

/// The DL/T 645 meters of the demo and their addresses (the 12 digits on
/// the nameplate): the cement works' two low-voltage incomers, behind
/// 50/5 A current transformers (CT 10), on [`SERIAL_BUS`].
pub const DLT645_METERS: [(&str, &str); 2] =
    [("cm-e-in1", "220811000157"), ("cm-e-in2", "220811000158")];

/// The profile of the DL/T 645 incomers: the shipped three-phase
/// multi-function meter, or `DLT645_PROFILE_TEXT` while none is shipped.
pub const DLT645_PROFILE: &str = "dlt645_3phase";

/// A three-phase multi-function DL/T 645-2007 meter with the DIs of the
/// standard's appendix, used by the demo only when no profile
/// [`DLT645_PROFILE`] is shipped (`config/profiles/dlt645_3phase.toml`
/// replaces it). Secondary values × PT/CT.
const DLT645_PROFILE_TEXT: &str = r#"
protocol = "dlt645"
description = "DL/T 645-2007 three-phase multi-function meter (demo's own), secondary values x PT/CT"
consumption = "import_kwh"

[[points]]
name = "import_kwh"
di = "00010000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "import_t1_kwh"
di = "00010100"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "import_t2_kwh"
di = "00010200"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "import_t3_kwh"
di = "00010300"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "import_t4_kwh"
di = "00010400"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "export_kwh"
di = "00020000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"
min = 0

[[points]]
name = "import_kvarh"
di = "00030000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kvarh"
min = 0

[[points]]
name = "export_kvarh"
di = "00040000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kvarh"
min = 0

[[points]]
name = "voltage_l1_v"
di = "02010100"
format = "XXX.X"
ratio = "pt"
unit = "v"

[[points]]
name = "voltage_l2_v"
di = "02010200"
format = "XXX.X"
ratio = "pt"
unit = "v"

[[points]]
name = "voltage_l3_v"
di = "02010300"
format = "XXX.X"
ratio = "pt"
unit = "v"

[[points]]
name = "current_l1_a"
di = "02020100"
format = "XXX.XXX"
signed = true
ratio = "ct"
unit = "a"

[[points]]
name = "current_l2_a"
di = "02020200"
format = "XXX.XXX"
signed = true
ratio = "ct"
unit = "a"

[[points]]
name = "current_l3_a"
di = "02020300"
format = "XXX.XXX"
signed = true
ratio = "ct"
unit = "a"

[[points]]
name = "power_kw"
di = "02030000"
format = "XX.XXXX"
signed = true
ratio = "pt_ct"
unit = "kw"

[[points]]
name = "power_factor"
di = "02060000"
format = "X.XXX"
signed = true
unit = "1"
min = -1
max = 1

[[points]]
name = "frequency_hz"
di = "02800002"
format = "XX.XX"
unit = "hz"
min = 45
max = 65
"#;

/// The profiles the demo loads: the shipped ones, and
/// [`DLT645_PROFILE_TEXT`] as [`DLT645_PROFILE`] when that is not shipped.
fn demo_profiles() -> Vec<(&'static str, &'static str)> {
    let mut profiles = crate::profiles::load::builtin().to_vec();
    if !profiles.iter().any(|(id, _)| *id == DLT645_PROFILE) {
        profiles.push((DLT645_PROFILE, DLT645_PROFILE_TEXT));
    }
    profiles
}

/// Whether profile `id` scales values by the PT and by the CT ratio, so
/// that a meter gives exactly the ratios its profile needs (giving one it
/// does not use is a configuration error).
fn ratios_used(profiles: &[(&str, &str)], id: &str) -> (bool, bool) {
    use crate::profiles::RatioScaling::{Ct, Pt, PtCt};
    let Some((_, text)) = profiles.iter().find(|(p, _)| *p == id) else {
        return (false, false);
    };
    let Ok(profile) = crate::profiles::load::load_profile(id, std::path::Path::new(id), text)
    else {
        // Loading the configuration reports it.
        return (false, false);
    };
    let uses =
        |r: &[crate::profiles::RatioScaling]| profile.points.iter().any(|p| r.contains(&p.ratio));
    (uses(&[Pt, PtCt]), uses(&[Ct, PtCt]))
}

/// The DTU's registration packet (an IMEI, as USR DTUs send with `REGTP=IMEI`).
pub const DTU_REGISTRATION: &str = "865123456789012";

/// The DTU's heartbeat, hex of "www.usr.cn" (the USR factory content).
const DTU_HEARTBEAT_HEX: &str = "7777772E7573722E636E";

/// Idle time before the simulated DTU beats: shorter than the 5 s poll
/// interval of its meters, so heartbeats arrive between polls and the
/// gateway is seen to strip them.
pub const DTU_HEARTBEAT_MS: u64 = 2000;

/// The endpoint id of meter `id` of site `n`.
fn endpoint_of(n: usize, id: &str) -> String {
    for bus in [SERIAL_BUS, DTU_BUS] {
        if bus.site == n && bus.meters.contains(&id) {
            return bus.id.to_owned();
        }
    }
    format!("tcp-{n}")
}

/// Where the demo looks for an MQTT broker.
pub const MQTT_BROKER: (&str, u16) = ("127.0.0.1", 1883);

/// MQTT meters added when a broker answers: (site index in `SITES`, id,
/// energy, level, profile, interval s). The k-th publishes through the
/// (k mod 3)-th subscription (see `sim::mqtt`): JSON, line protocol, CSV, JSON.
pub const MQTT_METERS: [(usize, &str, &str, u8, &str, u32); 4] = [
    (0, "tx-e-roof", "electricity", 3, "eastron_sdm630", 1),
    (0, "tx-w-roof", "water", 3, "water_meter", 5),
    (1, "pc-e-lab", "electricity", 3, "eastron_sdm630", 1),
    (1, "pc-h-lab", "heat", 3, "heat_meter", 5),
];

/// The `[[mqtt]]` section of the demo: broker `local` and its three subscriptions.
fn mqtt_section() -> String {
    let (host, port) = MQTT_BROKER;
    format!(
        "\n[[mqtt]]\nid = \"local\"\nhost = \"{host}\"\nport = {port}\n\
         # A fresh session per run: nothing queued from an earlier demo.\n\
         clean_session = true\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo/{{site}}/{{meter}}\"\nformat = \"json\"\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo-lp/{{site}}/{{meter}}\"\nformat = \"line_protocol\"\n\
         timestamp_unit = \"ns\"\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo-csv/{{meter}}\"\nformat = \"csv\"\n"
    )
}

/// Meters the demo breaks on purpose, to show quality flags.
const FAULTS: [(&str, &str); 2] = [("tx-e-comp", "sentinel"), ("pc-w-cool", "exception")];

/// MQTT meters the demo breaks on purpose (with a broker): their messages are
/// malformed, so the gateway's rejection counters move.
const MQTT_FAULTS: [(&str, &str); 1] = [("pc-h-lab", "sentinel")];

/// The injected faults of a demo with or without MQTT meters.
pub(super) fn faults(mqtt: bool) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    FAULTS
        .iter()
        .chain(MQTT_FAULTS.iter().filter(move |_| mqtt))
}

fn free_port() -> Result<u16, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DemoError::Io(format!("cannot bind a loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DemoError::Io(e.to_string()))
}

/// Builds the demo configuration; endpoints listen on free loopback ports.
/// With `mqtt`, it also has broker `local` ([`MQTT_BROKER`]) and the
/// [`MQTT_METERS`].
///
/// # Errors
/// When no port can be bound or the built-in configuration does not validate.
pub fn demo_config(
    data_dir: &std::path::Path,
    lines_file: &std::path::Path,
    mqtt: bool,
) -> Result<Config, DemoError> {
    let mut main = String::new();
    let _ = write!(
        main,
        "[gateway]\nid = \"demo\"\ntimezone = \"Asia/Shanghai\"\ndata_dir = {:?}\n\n\
         [file_sink]\npath = {:?}\nbatch_size = 1000\nflush_interval_ms = 500\n\n\
         [aggregation]\nwindows = [\"1m\", \"15m\", \"1h\", \"1d\", \"1mo\"]\n\
         # Nothing arrives late on loopback: windows are final 2 s after they end,\n\
         # so a one-minute demo has its site totals.\n\
         allowed_lateness_secs = 2\n\n\
         [api]\nlisten = \"127.0.0.1:{}\"\n\n\
         [dtu]\nlisten = \"127.0.0.1:{}\"\n\n\
         [simulator]\ntime_step_ms = 1000\ndtu_heartbeat_ms = {DTU_HEARTBEAT_MS}\nfaults = [",
        data_dir.display().to_string(),
        lines_file.display().to_string(),
        free_port()?,
        free_port()?
    );
    for (i, (meter, fault)) in faults(mqtt).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(main, "{sep}{{ meter = \"{meter}\", fault = \"{fault}\" }}");
    }
    main.push_str("]\n");
    if mqtt {
        main.push_str(&mqtt_section());
    }
    let profiles = demo_profiles();
    let mut sites = Vec::new();
    for (n, (site, name, meters)) in SITES.iter().enumerate() {
        let port = free_port()?;
        let _ = write!(
            main,
            "\n[[endpoints]]\nid = \"tcp-{n}\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_ms = 500\n"
        );
        if SERIAL_BUS.site == n {
            let _ = write!(
                main,
                "\n[[endpoints]]\nid = \"{}\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\n\
                 port = {}\nbaud = 9600\ntimeout_ms = 500\n",
                SERIAL_BUS.id,
                free_port()?
            );
        }
        if DTU_BUS.site == n {
            let _ = write!(
                main,
                "\n[[endpoints]]\nid = \"{}\"\ntransport = \"dtu\"\n\
                 registration = \"{DTU_REGISTRATION}\"\nheartbeat_hex = \"{DTU_HEARTBEAT_HEX}\"\n\
                 timeout_ms = 1000\n",
                DTU_BUS.id
            );
        }
        let mut text = format!("[site]\nid = \"{site}\"\nname = \"{name}\"\n");
        // Unit ids are numbered per site, so they stay unique on every bus.
        for (unit, (id, energy, level, profile, interval, ratios)) in meters.iter().enumerate() {
            let _ = write!(
                text,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = {level}\nprofile = \"{profile}\"\n\
                 endpoint = \"{}\"\npoll_interval_secs = {interval}\n",
                endpoint_of(n, id),
            );
            match DLT645_METERS.iter().find(|(m, _)| m == id) {
                Some((_, address)) => {
                    let _ = writeln!(text, "address = \"{address}\"");
                }
                None => {
                    let _ = writeln!(text, "unit_id = {}", unit + 1);
                }
            }
            if let Some((pt, ct)) = ratios {
                let (uses_pt, uses_ct) = ratios_used(&profiles, profile);
                if uses_pt {
                    let _ = writeln!(text, "pt = {pt:.1}");
                }
                if uses_ct {
                    let _ = writeln!(text, "ct = {ct:.1}");
                }
            }
        }
        super::boilers::append_site(&mut text, n, &format!("tcp-{n}"), meters.len() + 1);
        for (_, id, energy, level, profile, interval) in
            MQTT_METERS.iter().filter(|m| mqtt && m.0 == n)
        {
            let _ = write!(
                text,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = {level}\nprofile = \"{profile}\"\n\
                 broker = \"local\"\npoll_interval_secs = {interval}\n"
            );
        }
        sites.push((format!("site{n}.toml"), text));
    }
    let site_refs: Vec<(&str, &str)> = sites
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    Ok(config::load::from_parts(&main, &site_refs, &profiles)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn config_without_mqtt_has_polled_meters_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), false).expect("loads");
        assert!(c.mqtt.is_empty());
        // 49 meters of the enterprises and 8 of their boilers.
        assert_eq!(super::super::boilers::meter_count(), 8);
        assert_eq!(c.meters.len(), 57);
        assert!(c.meters.iter().all(|m| m.endpoint().is_some()));
        assert_eq!(c.meters.iter().filter(|m| m.modbus().is_some()).count(), 55);
        assert!(c.api.listen.is_some_and(|a| a.ip().is_loopback()));
    }

    #[test]
    fn the_cement_works_has_dlt645_incomers_on_the_serial_server() {
        use crate::model::Level;
        use crate::profiles::Protocol;
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), false).expect("loads");
        let rtu = c
            .endpoints
            .iter()
            .position(|e| e.id == SERIAL_BUS.id)
            .expect("rtu-2");
        let incomers: Vec<(&str, String, usize)> = c
            .meters
            .iter()
            .filter_map(|m| {
                let (ep, address) = m.dlt645()?;
                assert_eq!(m.level, Level(1), "{}", m.id);
                assert_eq!(c.sites[m.site.index()].id, SITES[SERIAL_BUS.site].0);
                let profile = &c.profiles[m.profile.index()];
                assert_eq!(
                    (profile.id.as_str(), profile.protocol),
                    (DLT645_PROFILE, Protocol::Dlt645)
                );
                Some((m.id.as_str(), address.nameplate(), ep.index()))
            })
            .collect();
        assert_eq!(
            incomers,
            [
                ("cm-e-in1", "220811000157".to_owned(), rtu),
                ("cm-e-in2", "220811000158".to_owned(), rtu)
            ]
        );
        // The profile has the DIs of a three-phase multi-function meter.
        let profile = &c.profiles[c
            .meters
            .iter()
            .find(|m| m.id == "cm-e-in1")
            .expect("in1")
            .profile
            .index()];
        let dis: Vec<String> = profile
            .points
            .iter()
            .filter_map(|p| p.dlt645.map(|d| d.di.to_string()))
            .collect();
        for di in [
            "00010000", "00010100", "00010400", "00020000", "00030000", "00040000", "02010100",
            "02010300", "02020100", "02020300", "02030000", "02060000", "02800002",
        ] {
            assert!(dis.iter().any(|d| d == di), "{di} missing from {dis:?}");
        }
    }

    #[test]
    fn one_serial_server_and_one_dtu_among_the_enterprises() {
        use crate::config::{RegistrationMode, Transport};
        use crate::model::EndpointId;
        use crate::sources::modbus::timing::BusTiming;
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), false).expect("loads");
        let ids: Vec<&str> = c.endpoints.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["tcp-0", "tcp-1", "tcp-2", "rtu-2", "tcp-3", "dtu-3"]);
        let rtu = &c.endpoints[3];
        assert!(matches!(rtu.transport, Transport::RtuOverTcp { .. }));
        assert_eq!(rtu.line.map(|l| l.baud), Some(9600));
        let Transport::Dtu(dtu) = &c.endpoints[5].transport else {
            panic!("dtu-3 is a DTU: {:?}", c.endpoints[5].transport);
        };
        assert_eq!(dtu.registration, DTU_REGISTRATION.as_bytes());
        assert_eq!(dtu.mode, RegistrationMode::Connect);
        assert_eq!(dtu.heartbeat.as_deref(), Some(&b"www.usr.cn"[..]));
        assert_eq!(
            c.simulator.dtu_heartbeat,
            Duration::from_millis(DTU_HEARTBEAT_MS)
        );
        assert!(c.dtu.listen.ip().is_loopback());
        for (bus, e) in [(SERIAL_BUS, 3), (DTU_BUS, 5)] {
            let on: Vec<&str> = c
                .meters
                .iter()
                .filter(|m| m.endpoint().is_some_and(|ep| ep.index() == e))
                .map(|m| m.id.as_str())
                .collect();
            assert_eq!(on, bus.meters, "{}", bus.id);
            // The round fits its interval on the wire, as check-config computes it.
            let timing = BusTiming::of(&c, EndpointId(e as u32)).expect("a serial-framed bus");
            assert!(timing.fits(), "{}", timing.line(&c));
            // Heartbeats fit between the polls of the bus.
            for m in c
                .meters
                .iter()
                .filter(|m| bus.meters.contains(&m.id.as_str()))
            {
                assert!(m.poll_interval > Duration::from_millis(DTU_HEARTBEAT_MS));
            }
        }
    }

    #[test]
    fn config_with_mqtt_publishes_every_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), true).expect("loads");
        assert_eq!(c.mqtt.len(), 1);
        assert_eq!(c.mqtt[0].id, "local");
        assert_eq!((c.mqtt[0].host.as_str(), c.mqtt[0].port), MQTT_BROKER);
        assert_eq!(c.meters.len(), 61);
        let (plans, skipped) = crate::sim::mqtt::plan(&c);
        assert!(skipped.is_empty(), "{skipped:?}");
        let topics: Vec<(&str, &str)> = plans
            .iter()
            .map(|p| (c.meter(p.meter).id.as_str(), p.topic.as_str()))
            .collect();
        assert_eq!(
            topics,
            [
                ("tx-e-roof", "demo/E3501020001/tx-e-roof"),
                ("tx-w-roof", "demo-lp/E3501020001/tx-w-roof"),
                ("pc-e-lab", "demo-csv/pc-e-lab"),
                ("pc-h-lab", "demo/E3505830002/pc-h-lab"),
            ]
        );
    }
}
