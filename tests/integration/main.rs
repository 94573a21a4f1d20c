//! Every integration test of emgate, in one test binary: the crate is linked
//! once, and libtest spreads all tests over the machine's cores instead of
//! running one binary after the other. Tests are named `module::test`, so
//! `scripts/test --test integration -- sim::` runs one area.
//!
//! The real peers (`influxd`, VictoriaMetrics, Mosquitto, pymodbus,
//! Chromium), the gateway in-process or as a process, the configuration
//! builder and the one `wait_for` live in `tests/support/`.
//!
//! Modules, one area each:
//! - `aggregate`: the aggregation stage on hand-made streams, plus lateness and checkpoint properties;
//! - `aggregate_restart`: `emgate run` SIGKILLed mid-window neither loses nor double-counts a minute;
//! - `archive`: the local archive: written by `emgate run` and `emgate enter`, rotated by age, exported (csv exactly; lp refills a fresh `influxd` with the same points);
//! - `api`: the HTTP API over a status board fed in a known order, and `emgate status`;
//! - `bad_devices`: devices that answer garbage or close mid-frame never stop the other meters;
//! - `boiler_config`: `[[boilers]]` and `[boiler]`: what they become, exact errors and warnings, check-config, gauges kept for boilers;
//! - `boiler_e2e`: simulated boilers through the gateway into `influxd`: both efficiency methods against a hand computation of the model, and bad input with its exact fields and reasons;
//! - `boiler_stage`: the boiler stage's join and emission rules on hand-made aggregation output; the `boiler` line protocol; `/api/boilers`, metrics and `emgate status`; readings through the gateway's stages against a hand computation (`iapws` for steam);
//! - `browser`: the status page in headless Chromium, against a mock API and the real gateway;
//! - `cli`: the `emgate` binary: `check-config`, `demo`, and `run` until SIGTERM;
//! - `coefficients`: the shipped standard-coal coefficient table;
//! - `config`: configuration loading, exact error messages, environment overrides, secrets;
//! - `config_validation`: the validation keys in profiles, sites and `[validation]`;
//! - `crash`: SIGKILL at random moments and damaged spool segments, against a real `influxd`;
//! - `decode_vectors`: register decoding against independently computed vectors;
//! - `dlt645_adversarial`: our own misbehaving DL/T 645 meter on every serial-framed transport: exact quality and detail, never a value;
//! - `dlt645_frames`: DL/T 645 frames and BCD formats against hand-worked vectors; adversarial frames; scanner properties;
//! - `dlt645_interop`: the `dlt645` PyPI meter server (a peer we did not write) over TCP and a pty: hand-worked frames, exact values in `influxd`, error answers;
//! - `dlt645_mixed_bus`: Modbus RTU and DL/T 645 meters on one pty (pymodbus and dlt645 answering): exact values, requests never interleaved;
//! - `e2e_aggregate`: a simulated day through validation, aggregation and encoding into `influxd`;
//! - `e2e_faults`: the simulator's `frozen` and `spike` faults through the gateway into `influxd`;
//! - `e2e_influx_v1`: simulator, whole gateway and `influxd`: one exact point per polled slot;
//! - `e2e_mqtt`: MQTT ingestion through Mosquitto into `influxd`: formats, credentials, TLS, bad payloads;
//! - `e2e_quality`: simulator faults carry the right quality bits into `influxd`; a restart keeps a rollover;
//! - `entries`: manual entries into a real `influxd`: `emgate enter` (an entry and its correction both stored, each refusal's exact message with nothing written) and `POST /api/entries` (through the spool, behind the token, against the configuration in force after a reload);
//! - `entries_fuel`: fuel lab analyses as entries through `emgate enter` into `influxd`: the line with its `boiler` tag, each refusal's exact message;
//! - `energy`: standard-coal conversion of window amounts;
//! - `fieldbus_adversarial`: our own misbehaving device on every transport: exact quality bit and detail, never a value;
//! - `fieldbus_common`: what the field-bus tests share (reading lines, metrics, profiles);
//! - `fieldbus_config`: the field-bus keys of `[[endpoints]]` and `[dtu]`: what they become, line timing by hand, error messages;
//! - `fieldbus_frames`: the RTU and MBAP frame scanners on random bytes (proptest): never panic, found means fitting;
//! - `fieldbus_interop`: RTU over TCP, a serial pty and dial-in DTUs against pymodbus: exact values, DTU replacement, refusal, not_connected;
//! - `fieldbus_timing`: a bus's poll round on the wire by hand, in `check-config` and in a running gateway's status;
//! - `influx_errors`: writer and uploader error paths against a fake HTTP server;
//! - `influx_v1`: the v1 writer against a real `influxd`;
//! - `influx_v2`: the v2 writer against a real VictoriaMetrics;
//! - `interop_pymodbus`: the poller against a pymodbus server (a Modbus stack we did not write);
//! - `lineproto`: line-protocol escaping against hand-written bytes;
//! - `mqtt_delivery`: QoS 1 through a broker restart and a SIGKILLed gateway, nothing lost or doubled;
//! - `mqtt_payload`: the MQTT payload decoder alone: formats, time stamps, rejections;
//! - `ops_e2e`: a running gateway's API: token, meter views, reload, exact metrics, readiness;
//! - `outage`: an `influxd` outage while the gateway runs loses no slot;
//! - `plan`: the Modbus request planner against hand-worked plans;
//! - `reports_compliance`: `emgate report completeness|consistency|verification` against `influxd` filled with known windows: exact figures by hand;
//! - `reports_core`: `emgate report consumption|targets` and `GET /api/reports/{kind}` against a real `influxd` filled with known windows and entries (hand-worked figures, worst-first order, CSV and table, exact refusals), and end to end from the simulator through `emgate run`;
//! - `reload`: SIGHUP adds and removes meters without losing a slot; a bad reload is refused;
//! - `scoped_tokens`: site-scoped API tokens on a real `emgate run`: every route 401 without a valid token, 403 for another site, only its own data for a site token; exact configuration errors; tokens never logged;
//! - `shards`: `[gateway] shard`: pinned errors, what a shard keeps, `emgate shards` and `check-config` exactly, three `emgate run` shards into one `influxd` (every meter slot exactly once; a killed shard stops only its own sites); resharding 3 -> 4 moves only the listed sites;
//! - `shards_e2e`: three aggregating `emgate run` shards, then four on the same data directories: every site total is the sum of its level-1 meters' windows (from the simulator's counters), each (meter, window) and (meter, slot) once, each site totalled by its owner only; the sites that change hands are exactly those `emgate shards` lists;
//! - `shutdown`: SIGTERM with the output down exits in time and loses nothing;
//! - `sim`: the simulator seen from the wire, and the pymodbus peer itself;
//! - `sim_fieldbus`: the simulator over RTU over TCP (read by pymodbus) and as a dial-in DTU;
//! - `sim_dlt645`: the simulator's DL/T 645 meters read by the `dlt645` package, by hand-written frames, on a mixed bus and behind a DTU, and stored exactly by the gateway;
//! - `sim_mqtt`: the simulator's MQTT publisher through a real Mosquitto;
//! - `spool_full`: a full spool under `block` and `drop_oldest`, drained into `influxd`;
//! - `spool_model`: the spool against an in-memory model (proptest);
//! - `spool_recovery`: hand-made spool damage and its exact recovery report; a real SIGKILL;
//! - `targets_config`: `[[targets]]` in site files: what a target becomes, every key's exact message;
//! - `steam`: steam properties against the IAPWS-IF97 reference values;
//! - `validate_props`: property test of the validator's consumption arithmetic;
//! - `validate_rules`: one test per validation rule with exact quality bits;
//! - `window`: window alignment in real time zones, and a telescoping property.

#[path = "../support/mod.rs"]
mod support;

mod aggregate;
mod aggregate_restart;
mod api;
mod archive;
mod bad_devices;
mod boiler_calc;
mod boiler_config;
mod boiler_e2e;
mod boiler_stage;
mod browser;
mod cli;
mod coefficients;
mod config;
mod config_validation;
mod crash;
mod decode_vectors;
mod dlt645_adversarial;
mod dlt645_frames;
mod dlt645_interop;
mod dlt645_mixed_bus;
mod e2e_aggregate;
mod e2e_faults;
mod e2e_influx_v1;
mod e2e_mqtt;
mod e2e_quality;
mod energy;
mod entries;
mod entries_fuel;
mod fieldbus_adversarial;
mod fieldbus_common;
mod fieldbus_config;
mod fieldbus_frames;
mod fieldbus_interop;
mod fieldbus_timing;
mod inflight;
mod influx_errors;
mod influx_v1;
mod influx_v2;
mod interop_pymodbus;
mod lineproto;
mod mqtt_delivery;
mod mqtt_payload;
mod ops_e2e;
mod outage;
mod plan;
mod reload;
mod reports_compliance;
mod reports_core;
mod reports_html;
mod scoped_tokens;
mod shards;
mod shards_e2e;
mod shutdown;
mod sim;
mod sim_dlt645;
mod sim_fieldbus;
mod sim_mqtt;
mod spool_full;
mod spool_model;
mod spool_recovery;
mod steam;
mod steam_state;
mod targets_config;
mod validate_props;
mod validate_rules;
mod window;
