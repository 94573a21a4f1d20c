//! A small builder for gateway configurations. A test names what it needs
//! (the `[influxdb]` output, the endpoints, its sites and meters, any other
//! section as TOML text) and [`GatewayToml::write`] lays the files out in a
//! temporary directory the way an operator does: `emgate.toml`, `sites/`,
//! `profiles/` (the shipped profiles and the test's own) and `data/`. The
//! same files then serve the simulator, the gateway in this process and the
//! `emgate run` process, so all three see one configuration.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use emgate::config::Config;

use super::gateway::Gateway;

/// TOML for a string (quoted and escaped).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The main file, the sites and the extra profiles of one test gateway.
#[derive(Debug, Clone)]
pub struct GatewayToml {
    id: String,
    gateway_keys: String,
    sections: String,
    endpoints: Vec<Endpoint>,
    sites: Vec<(String, String)>,
    profiles: Vec<(String, String)>,
}

/// One `[[endpoints]]` table.
#[derive(Debug, Clone)]
struct Endpoint {
    id: String,
    /// `None`: a free port, chosen when the files are first written.
    port: Option<u16>,
    keys: String,
}

impl GatewayToml {
    /// A gateway called `id`, with nothing else yet.
    pub fn new(id: &str) -> GatewayToml {
        GatewayToml {
            id: id.to_owned(),
            gateway_keys: String::new(),
            sections: String::new(),
            endpoints: Vec::new(),
            sites: Vec::new(),
            profiles: Vec::new(),
        }
    }

    /// `[aggregation] windows = []`: the output holds readings only, so
    /// tests can count lines exactly.
    #[must_use]
    pub fn readings_only(self) -> GatewayToml {
        self.section("aggregation", "windows = []")
    }

    /// More `[gateway]` keys (`id`, `data_dir` and `profiles_dir` are set).
    #[must_use]
    pub fn gateway_keys(mut self, keys: &str) -> GatewayToml {
        self.gateway_keys.push_str(keys);
        self.gateway_keys.push('\n');
        self
    }

    /// `[influxdb]` with the 1.x API at `url`, database `database`, and
    /// `keys` (batching, retries, ...).
    #[must_use]
    pub fn influx_v1(self, url: &str, database: &str, keys: &str) -> GatewayToml {
        let body = format!(
            "api = \"v1\"\nurl = {}\ndatabase = {}\n{keys}",
            quoted(url),
            quoted(database)
        );
        self.section("influxdb", &body)
    }

    /// A table `[name]` with `keys`.
    #[must_use]
    pub fn section(self, name: &str, keys: &str) -> GatewayToml {
        self.toml(&format!("[{name}]\n{keys}"))
    }

    /// TOML as it is, e.g. `[[mqtt]]` tables.
    #[must_use]
    pub fn toml(mut self, text: &str) -> GatewayToml {
        self.sections.push('\n');
        self.sections.push_str(text.trim_matches('\n'));
        self.sections.push('\n');
        self
    }

    /// An `[[endpoints]]` table on 127.0.0.1 at a free port (chosen when
    /// the files are first written), with `keys` (timeouts, ...).
    #[must_use]
    pub fn endpoint(mut self, id: &str, keys: &str) -> GatewayToml {
        self.endpoints.push(Endpoint {
            id: id.to_owned(),
            port: None,
            keys: keys.to_owned(),
        });
        self
    }

    /// [`GatewayToml::endpoint`] at a given `port` (a device of the test's own).
    #[must_use]
    pub fn endpoint_at(mut self, id: &str, port: u16, keys: &str) -> GatewayToml {
        self.endpoints.push(Endpoint {
            id: id.to_owned(),
            port: Some(port),
            keys: keys.to_owned(),
        });
        self
    }

    /// A site file `sites/<file>` (sites load in file-name order).
    #[must_use]
    pub fn site(mut self, file: &str, text: impl fmt::Display) -> GatewayToml {
        self.sites.push((file.to_owned(), text.to_string()));
        self
    }

    /// A profile `profiles/<id>.toml` besides the shipped ones.
    #[must_use]
    pub fn profile(mut self, id: &str, text: &str) -> GatewayToml {
        self.profiles.push((id.to_owned(), text.to_owned()));
        self
    }

    /// Writes the files into a fresh temporary directory.
    pub fn write(&self) -> ConfigFiles {
        let mut files = ConfigFiles {
            dir: tempfile::tempdir().expect("temporary directory"),
            ports: BTreeMap::new(),
        };
        for sub in ["sites", "profiles", "data"] {
            std::fs::create_dir(files.path().join(sub)).expect("config directory");
        }
        for (id, text) in emgate::profiles::load::builtin() {
            std::fs::write(files.path().join(format!("profiles/{id}.toml")), text)
                .expect("profile file");
        }
        files.rewrite(self);
        files
    }

    fn main_file(&self, dir: &Path, ports: &BTreeMap<String, u16>) -> String {
        let mut main = format!(
            "[gateway]\nid = {}\ndata_dir = {}\nprofiles_dir = {}\n{}",
            quoted(&self.id),
            quoted(&dir.join("data").display().to_string()),
            quoted(&dir.join("profiles").display().to_string()),
            self.gateway_keys
        );
        main.push_str(&self.sections);
        for e in &self.endpoints {
            let _ = write!(
                main,
                "\n[[endpoints]]\nid = {}\nhost = \"127.0.0.1\"\nport = {}\n{}\n",
                quoted(&e.id),
                ports[&e.id],
                e.keys
            );
        }
        main
    }
}

/// A gateway's configuration files in a temporary directory (deleted when
/// dropped, data directory included).
pub struct ConfigFiles {
    dir: tempfile::TempDir,
    /// Endpoint id → port, fixed at the first write so rewrites keep them.
    ports: BTreeMap<String, u16>,
}

impl ConfigFiles {
    /// Writes `toml` over the files (main file, its sites and profiles).
    /// Endpoints keep the ports they got when first written, so a test can
    /// change the output or the spool of a gateway the simulator serves.
    pub fn rewrite(&mut self, toml: &GatewayToml) {
        for e in &toml.endpoints {
            let port = e.port.unwrap_or_else(super::free_port);
            self.ports.entry(e.id.clone()).or_insert(port);
        }
        let main = toml.main_file(self.path(), &self.ports);
        std::fs::write(self.main_file(), main).expect("main file");
        for (file, text) in &toml.sites {
            self.write_site(file, text);
        }
        for (id, text) in &toml.profiles {
            std::fs::write(self.path().join(format!("profiles/{id}.toml")), text)
                .expect("profile file");
        }
    }

    /// Rewrites one site file (for a reload).
    pub fn write_site(&self, file: &str, text: impl fmt::Display) {
        std::fs::write(self.site_file(file), text.to_string()).expect("site file");
    }

    /// The configuration as the gateway loads it (no environment
    /// overrides, so the test's process environment cannot change it).
    pub fn load(&self) -> Config {
        emgate::config::load_with_env(&self.main_file(), &[])
            .unwrap_or_else(|e| panic!("test configuration: {e}"))
    }

    /// Starts `emgate run` on these files, with its JSON log in
    /// `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str) -> Gateway {
        Gateway::run(&self.main_file(), self.path().join(format!("{name}.log")))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `emgate.toml`.
    pub fn main_file(&self) -> PathBuf {
        self.path().join("emgate.toml")
    }

    /// `sites/<file>`.
    pub fn site_file(&self, file: &str) -> PathBuf {
        self.path().join("sites").join(file)
    }

    /// The gateway's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The spool's directory (in the data directory).
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir().join("spool")
    }
}

/// A site file: `[site]` and its `[[meters]]`.
#[derive(Debug, Clone)]
pub struct Site {
    head: String,
    meters: Vec<Meter>,
}

impl Site {
    /// `[site]` with `id` and `name`.
    pub fn new(id: &str, name: &str) -> Site {
        Site {
            head: format!("[site]\nid = {}\nname = {}\n", quoted(id), quoted(name)),
            meters: Vec::new(),
        }
    }

    /// The site's time zone.
    #[must_use]
    pub fn timezone(mut self, zone: &str) -> Site {
        let _ = writeln!(self.head, "timezone = {}", quoted(zone));
        self
    }

    /// One more meter.
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Site {
        self.meters.push(meter);
        self
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.head)?;
        for meter in &self.meters {
            write!(f, "\n{meter}")?;
        }
        Ok(())
    }
}

/// One `[[meters]]` table: level 1 and polled every second unless changed.
#[derive(Debug, Clone)]
pub struct Meter {
    id: String,
    energy: String,
    level: u8,
    profile: String,
    source: String,
    poll_interval_secs: u32,
    keys: String,
}

/// A Modbus meter at `unit_id` on endpoint `endpoint`.
pub fn modbus(id: &str, energy: &str, profile: &str, endpoint: &str, unit_id: usize) -> Meter {
    Meter {
        id: id.to_owned(),
        energy: energy.to_owned(),
        level: 1,
        profile: profile.to_owned(),
        source: format!("endpoint = {}\nunit_id = {unit_id}", quoted(endpoint)),
        poll_interval_secs: 1,
        keys: String::new(),
    }
}

/// A meter whose readings come from MQTT broker `broker`.
pub fn mqtt(id: &str, energy: &str, profile: &str, broker: &str) -> Meter {
    Meter {
        source: format!("broker = {}", quoted(broker)),
        ..modbus(id, energy, profile, "", 0)
    }
}

impl Meter {
    /// Its level (1: a site's main meter, 2: a sub-meter).
    #[must_use]
    pub fn level(mut self, level: u8) -> Meter {
        self.level = level;
        self
    }

    /// How often it is polled (or expected to publish).
    #[must_use]
    pub fn every_secs(mut self, secs: u32) -> Meter {
        self.poll_interval_secs = secs;
        self
    }

    /// More keys (`pt`, `ct`, `role`, ...).
    #[must_use]
    pub fn keys(mut self, keys: &str) -> Meter {
        self.keys.push_str(keys);
        self.keys.push('\n');
        self
    }
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[[meters]]\nid = {}\nenergy = {}\nlevel = {}\nprofile = {}\n{}\npoll_interval_secs = {}\n{}",
            quoted(&self.id),
            quoted(&self.energy),
            self.level,
            quoted(&self.profile),
            self.source,
            self.poll_interval_secs,
            self.keys
        )
    }
}
