//! Site files: one `[site]` and its `[[meters]]` per file.
//!
//! Why: meters are where every other part of the configuration meets (a
//! profile, an endpoint or a broker, the site's time zone, the aggregation
//! settings), so [`SiteState`] reads the site files in order, resolves each
//! meter's references against everything declared (valid or not, so one
//! broken file causes no cascade of "unknown" errors), and interns the ids
//! of sites, meters and used profiles. A meter's validation and energy keys
//! are checked in [`super::meter`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Value;

use super::boilers::PendingBoilers;
use super::files::SourceText;
use super::main_state::Main;
use super::meter::{EnergyKeys, meter_energy, meter_validation};
use super::raw::{MeterRaw, SiteFile, SiteRaw};
use super::{EndpointConfig, MeterConfig, MeterSource, SiteConfig};
use crate::check::{
    self, Float, Int, Problems, Text, choice, int, ratio, required_id, required_text, timezone,
    unknown_ref,
};
use crate::model::{BrokerId, EndpointId, EnergyType, Level, MeterId, ProfileId, SiteId};
use crate::profiles::{Profile, Protocol, RatioScaling};

/// A profile file's outcome: valid, or broken (its problems are reported already).
pub(super) enum Loaded {
    /// The profile, checked.
    Valid(Profile),
    /// The profile has problems.
    Broken,
}

/// Where a meter was declared: file and key of its `id`.
pub(super) struct Declared {
    /// The site file.
    pub(super) file: PathBuf,
    /// Key of the meter's `id`, e.g. `meters[3].id`.
    pub(super) key: String,
}

/// Sites and meters being read, with the indexes that intern their ids.
pub(super) struct SiteState<'a> {
    main: &'a Main,
    loaded: &'a HashMap<String, Loaded>,
    profile_names: &'a [String],
    /// Sites read so far, indexed by [`SiteId`].
    pub(super) sites: Vec<SiteConfig>,
    /// Complete meters so far, indexed by [`MeterId`].
    pub(super) meters: Vec<MeterConfig>,
    /// Profiles used by meters so far, indexed by [`ProfileId`].
    pub(super) profiles: Vec<Profile>,
    profile_ids: HashMap<String, ProfileId>,
    /// Every declared meter id (complete meter or not), for `[simulator]` faults.
    pub(super) meter_ids: HashMap<String, (MeterId, Declared)>,
    site_ids: HashMap<String, PathBuf>,
    /// `(endpoint, unit id)` → meter id and where it was declared.
    units: HashMap<(usize, u8), (String, Declared)>,
    /// Counter unit of the first level-1 meter per (site, energy): site
    /// roll-ups add their amounts, so the units must agree.
    level1_units: HashMap<(SiteId, EnergyType), (String, String)>,
    /// Each file's `[[boilers]]`, checked once every meter is known.
    pub(super) boilers: Vec<PendingBoilers>,
    /// Every site file's `[[targets]]`, checked.
    pub(super) targets: Vec<super::targets::TargetConfig>,
}

impl<'a> SiteState<'a> {
    /// Nothing read yet; meters resolve against the main file `main` and
    /// the profiles `loaded` (whose ids, sorted, are `profile_names`).
    pub(super) fn new(
        main: &'a Main,
        loaded: &'a HashMap<String, Loaded>,
        profile_names: &'a [String],
    ) -> SiteState<'a> {
        SiteState {
            main,
            loaded,
            profile_names,
            sites: Vec::new(),
            meters: Vec::new(),
            profiles: Vec::new(),
            profile_ids: HashMap::new(),
            meter_ids: HashMap::new(),
            site_ids: HashMap::new(),
            units: HashMap::new(),
            level1_units: HashMap::new(),
            boilers: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// One site file: its `[site]`, then each of its `[[meters]]`.
    pub(super) fn site_file(&mut self, f: &SourceText, p: &mut Problems) {
        let Some(root) = check::parse_toml(&f.text, p) else {
            return;
        };
        let Some(top) = check::table::<SiteFile>(root, "", "a table", p) else {
            return;
        };
        let site = if let Some(v) = top.site {
            check::table::<SiteRaw>(v, "site", "a table ([site])", p)
        } else {
            p.push(
                "site",
                "missing required section; add a [site] table with `id` and `name`",
            );
            None
        };
        let site_id = SiteId(u32::try_from(self.sites.len()).unwrap_or(u32::MAX));
        let mut timezone_of_site = self.main.gateway.timezone.clone();
        if let Some(s) = site {
            let id = required_id(s.id, "site.id", "site id", p);
            if let Some(id) = &id {
                if let Some(first) = self.site_ids.get(id) {
                    p.push(
                        "site.id",
                        format!(
                            "duplicate site id \"{id}\"; already used in {}",
                            first.display()
                        ),
                    );
                } else {
                    self.site_ids.insert(id.clone(), f.path.clone());
                }
            }
            let name = required_text(
                s.name,
                "site.name",
                "give the enterprise's name (free text)",
                p,
            );
            if let Some(Text(tz)) = s.timezone
                && let Some(tz) = timezone(&tz, "site.timezone", p)
            {
                timezone_of_site = tz;
            }
            self.sites.push(SiteConfig {
                id: id.unwrap_or_default(),
                name: name.unwrap_or_default(),
                timezone: timezone_of_site,
                file: f.path.clone(),
            });
        }
        if let Some(v) = top.meters {
            let items = check::array(v, "meters", "an array of tables ([[meters]])", p);
            for (i, item) in items.into_iter().enumerate() {
                self.meter(item, i, site_id, &f.path, p);
            }
        }
        if let Some(value) = top.targets {
            super::targets::site_targets(value, site_id, &mut self.targets, p);
        }
        if let Some(value) = top.boilers {
            self.boilers.push(PendingBoilers {
                site: site_id,
                file: f.path.clone(),
                value,
            });
        }
    }

    /// One `[[meters]]` element; kept only when complete, but its id is
    /// recorded either way (faults and duplicates refer to it).
    fn meter(&mut self, value: Value, index: usize, site: SiteId, file: &Path, p: &mut Problems) {
        let key = format!("meters[{index}]");
        let k = |sub: &str| format!("{key}.{sub}");
        let Some(mut r) = check::table::<MeterRaw>(value, &key, "a table", p) else {
            return;
        };
        let (cal_raw, repl_raw, rules_raw) =
            (r.calibration.take(), r.replacements.take(), r.rules.take());
        let energy_keys = EnergyKeys {
            consumption: r.consumption.take(),
            role: r.role.take(),
            coefficient: r.coefficient.take(),
            lhv_kj_per_m3: r.lhv_kj_per_m3.take(),
            steam_state: r.steam_state.take(),
            steam_dryness: r.steam_dryness.take(),
        };
        let lhv_kj_per_m3 = energy_keys.lhv_kj_per_m3.map(|Float(x)| x);
        let id = required_id(r.id, &k("id"), "meter id", p);
        let energy_options: Vec<(&str, EnergyType)> =
            EnergyType::ALL.iter().map(|e| (e.as_str(), *e)).collect();
        let energy = choice(
            r.energy,
            &k("energy"),
            "energy type",
            &energy_options,
            None,
            p,
        );
        let level = match r.level {
            None => {
                p.push(k("level"), "missing required key; use 1 (enterprise boundary), 2 (main sub-unit) or 3 (main equipment)");
                None
            }
            Some(Int(level @ 1..=3)) => Some(Level(level as u8)),
            Some(Int(other)) => {
                p.push(
                    k("level"),
                    format!("{other} is not a metering level; use 1 (enterprise boundary), 2 (main sub-unit) or 3 (main equipment)"),
                );
                None
            }
        };
        let profile = self.profile_ref(r.profile, &k("profile"), p);
        // A meter is polled over Modbus (`endpoint` + `unit_id`) or
        // publishes to an MQTT broker (`broker`), never both.
        let modbus_given = r.endpoint.is_some()
            || r.unit_id.is_some()
            || r.address.is_some()
            || p.bad_keys.contains(&k("endpoint"))
            || p.bad_keys.contains(&k("unit_id"));
        let mqtt_given = r.broker.is_some() || p.bad_keys.contains(&k("broker"));
        let mut source = None;
        if mqtt_given {
            match r.broker.take() {
                _ if modbus_given => p.push(
                    k("broker"),
                    "cannot be used together with `endpoint` and `unit_id`; a Modbus meter has `endpoint` and `unit_id`, an MQTT meter only `broker`",
                ),
                None => {}
                Some(Text(name)) => {
                    if let Some(idx) = self.main.brokers.iter().position(|(id, _)| *id == name) {
                        source = Some(MeterSource::Mqtt {
                            broker: BrokerId(u32::try_from(idx).unwrap_or(u32::MAX)),
                        });
                    } else {
                        let known = self.main.brokers.iter().map(|(id, _)| id.as_str());
                        p.push(k("broker"), unknown_ref("broker", &name, known));
                    }
                }
            }
        } else if !modbus_given {
            p.push(
                key.clone(),
                "has no source; give `endpoint` and `unit_id` (a meter polled over Modbus) or `broker` (a meter that publishes over MQTT)",
            );
        }
        let dlt645 = profile
            .as_deref()
            .and_then(|name| self.valid_profile(name))
            .is_some_and(|prof| prof.protocol == Protocol::Dlt645);
        let (endpoint, unit_id) = if mqtt_given || !modbus_given {
            (None, None)
        } else if dlt645 {
            let (e, address) = super::meter::dlt645_keys(
                &self.main.endpoints,
                r.endpoint.take(),
                r.address.take(),
                r.unit_id.is_some(),
                &key,
                p,
            );
            if let (Some(e), Some(address)) = (e, address) {
                source = Some(MeterSource::Dlt645 {
                    endpoint: EndpointId(u32::try_from(e).unwrap_or(u32::MAX)),
                    address,
                });
            }
            (None, None)
        } else {
            if r.address.is_some() {
                p.push(
                    k("address"),
                    "only for DL/T 645 meters (a profile with protocol = \"dlt645\"); a Modbus meter has `unit_id`",
                );
            }
            Self::modbus_keys(&self.main.endpoints, r.endpoint.take(), r.unit_id, &key, p)
        };
        if let (Some(e), Some(u)) = (endpoint, unit_id) {
            source = Some(MeterSource::Modbus {
                endpoint: EndpointId(u32::try_from(e).unwrap_or(u32::MAX)),
                unit_id: u,
            });
        }
        let poll = int(
            r.poll_interval_secs,
            &k("poll_interval_secs"),
            60,
            1,
            i64::from(u32::MAX),
            p,
        );
        let pt = ratio(r.pt, &k("pt"), p);
        let ct = ratio(r.ct, &k("ct"), p);
        if mqtt_given {
            for (given, name) in [(r.pt.is_some(), "pt"), (r.ct.is_some(), "ct")] {
                if given {
                    p.push(
                        k(name),
                        "only used for Modbus meters (an MQTT payload carries values in the point's unit; see `scale` of the subscription); remove this key",
                    );
                }
            }
        } else if let Some(prof) = profile.as_deref().and_then(|name| self.valid_profile(name)) {
            let needs_pt = prof
                .points
                .iter()
                .any(|x| matches!(x.ratio, RatioScaling::Pt | RatioScaling::PtCt));
            let needs_ct = prof
                .points
                .iter()
                .any(|x| matches!(x.ratio, RatioScaling::Ct | RatioScaling::PtCt));
            let uses = match (needs_pt, needs_ct) {
                (false, false) => "PT/CT",
                (true, false) => "CT",
                _ => "PT",
            };
            let pid = &prof.id;
            for (given, needed, name, what) in [
                (
                    r.pt.is_some(),
                    needs_pt,
                    "pt",
                    "voltage-transformer ratio (1 when there is no PT)",
                ),
                (
                    r.ct.is_some(),
                    needs_ct,
                    "ct",
                    "current-transformer ratio (e.g. 40 for a 200/5 A CT, 1 when there is none)",
                ),
            ] {
                if needed && !given {
                    p.push(
                        k(name),
                        format!(
                            "missing; profile \"{pid}\" scales values by {}, so give the {what}",
                            name.to_ascii_uppercase()
                        ),
                    );
                } else if given && !needed {
                    p.push(
                        k(name),
                        format!("profile \"{pid}\" does not scale by {uses}; remove this key"),
                    );
                }
            }
        }
        if let Some(id) = &id
            && let Some((_, first)) = self.meter_ids.get(id)
        {
            p.push(
                k("id"),
                format!(
                    "duplicate meter id \"{id}\"; already used at {}: {}",
                    first.file.display(),
                    first.key
                ),
            );
        }
        if let (Some(id), Some(e), Some(u)) = (&id, endpoint, unit_id) {
            if let Some((other, at)) = self.units.get(&(e, u)) {
                if other != id {
                    p.push(
                        k("unit_id"),
                        format!(
                            "unit {u} on endpoint \"{}\" is already used by meter \"{other}\" ({}: {}); each device needs its own unit id",
                            self.main.endpoints[e].0,
                            at.file.display(),
                            at.key
                        ),
                    );
                }
            } else {
                self.units.insert(
                    (e, u),
                    (
                        id.clone(),
                        Declared {
                            file: file.to_path_buf(),
                            key: k("id"),
                        },
                    ),
                );
            }
        }
        let Some(id) = id else {
            return;
        };
        let meter_id = MeterId(u32::try_from(self.meters.len()).unwrap_or(u32::MAX));
        if !self.meter_ids.contains_key(&id) {
            self.meter_ids.insert(
                id.clone(),
                (
                    meter_id,
                    Declared {
                        file: file.to_path_buf(),
                        key: k("id"),
                    },
                ),
            );
        }
        let tz = self.sites.get(site.index()).map_or_else(
            || self.main.gateway.timezone.clone(),
            |s| s.timezone.clone(),
        );
        let prof = profile
            .as_deref()
            .and_then(|name| self.valid_profile(name))
            .cloned();
        let (calibration, replacements, overrides) =
            meter_validation(cal_raw, repl_raw, rules_raw, &key, prof.as_ref(), &tz, p);
        let (consumption, role, conversion) = meter_energy(
            energy_keys,
            &key,
            energy,
            prof.as_ref(),
            self.main.aggregation.as_ref(),
            p,
        );
        // Only complete meters are kept; any gap has been reported above.
        let interned = profile.and_then(|name| self.intern_profile(name));
        if let (
            Some(energy),
            Some(level),
            Some(profile),
            Some(source),
            Some(poll),
            Some(consumption),
            Some(role),
            Some((conversion, conversion_source)),
        ) = (
            energy,
            level,
            interned,
            source,
            poll,
            consumption,
            role,
            conversion,
        ) {
            let unit = consumption
                .and_then(|i| prof.as_ref()?.points.get(i))
                .map(|pt| pt.unit.clone());
            if level.0 == 1
                && let Some(unit) = unit
            {
                match self.level1_units.get(&(site, energy)) {
                    Some((first_unit, first)) if *first_unit != unit => p.push(
                        k("consumption"),
                        format!(
                            "counts {energy} in \"{unit}\" but level-1 meter \"{first}\" of this site counts it in \"{first_unit}\"; \
                             the site total adds them, so choose counters in one unit"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        self.level1_units.insert((site, energy), (unit, id.clone()));
                    }
                }
            }
            self.meters.push(MeterConfig {
                id,
                site,
                energy,
                level,
                profile,
                source,
                poll_interval: Duration::from_secs(poll as u64),
                pt: pt.unwrap_or(1.0),
                ct: ct.unwrap_or(1.0),
                calibration,
                replacements,
                overrides,
                consumption,
                role,
                conversion,
                conversion_source,
                lhv_kj_per_m3,
            });
        }
    }

    /// A Modbus meter's `endpoint` (index) and `unit_id`, each checked.
    fn modbus_keys(
        endpoints: &[(String, Option<EndpointConfig>)],
        endpoint: Option<Text>,
        unit_id: Option<Int>,
        key: &str,
        p: &mut Problems,
    ) -> (Option<usize>, Option<u8>) {
        let k = |sub: &str| format!("{key}.{sub}");
        let endpoint = match endpoint {
            None => {
                p.push(
                    k("endpoint"),
                    "missing required key; give the id of one of the [[endpoints]]",
                );
                None
            }
            Some(Text(name)) => {
                if let Some(idx) = endpoints.iter().position(|(id, _)| *id == name) {
                    Some(idx)
                } else {
                    let known = endpoints.iter().map(|(id, _)| id.as_str());
                    p.push(k("endpoint"), unknown_ref("endpoint", &name, known));
                    None
                }
            }
        };
        let unit_id = match unit_id {
            None => {
                p.push(
                    k("unit_id"),
                    "missing required key; give the Modbus unit id (slave address), 1..=247",
                );
                None
            }
            Some(Int(unit @ 1..=247)) => Some(unit as u8),
            Some(Int(other)) => {
                p.push(
                    k("unit_id"),
                    format!("{other} is out of range; Modbus unit ids are 1..=247"),
                );
                None
            }
        };
        (endpoint, unit_id)
    }

    /// Resolves a meter's `profile` key to a declared profile name.
    fn profile_ref(&self, v: Option<Text>, key: &str, p: &mut Problems) -> Option<String> {
        let Some(Text(name)) = v else {
            p.push(key, "missing required key; give a profile id (a file name in the profiles directory, without \".toml\")");
            return None;
        };
        if self.loaded.contains_key(&name) {
            Some(name)
        } else {
            p.push(
                key,
                unknown_ref(
                    "profile",
                    &name,
                    self.profile_names.iter().map(String::as_str),
                ),
            );
            None
        }
    }

    /// The profile `name` when it loaded without problems.
    fn valid_profile(&self, name: &str) -> Option<&Profile> {
        match self.loaded.get(name) {
            Some(Loaded::Valid(p)) => Some(p),
            _ => None,
        }
    }

    /// The [`ProfileId`] of a valid profile, adding it to the used profiles on first use.
    fn intern_profile(&mut self, name: String) -> Option<ProfileId> {
        if let Some(id) = self.profile_ids.get(&name) {
            return Some(*id);
        }
        let Some(Loaded::Valid(p)) = self.loaded.get(&name) else {
            return None;
        };
        let id = ProfileId(u32::try_from(self.profiles.len()).unwrap_or(u32::MAX));
        self.profiles.push(p.clone());
        self.profile_ids.insert(name, id);
        Some(id)
    }
}
