//! Topic templates: a subscription's topic with named levels. Checked here
//! when the configuration is loaded, and matched by the MQTT source against
//! every received topic.
//!
//! Why: meters publish to topics such as `energy/fz01/m-17/up`, and the
//! topic is often the only place that names the meter. A template like
//! `energy/{site}/{meter}/up` is both the MQTT subscription filter (each
//! `{x}` becomes `+`) and the pattern that extracts the site and meter ids
//! from a received topic, without allocating.
//!
//! Matching follows MQTT 3.1.1 §4.7: `+` matches exactly one level (possibly
//! empty), a trailing `#` matches the parent level and any number of levels
//! below it, and topics starting with `$` (`$SYS/...`) are never matched by
//! a filter whose first level is a wildcard.

use std::fmt;

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Must equal the topic's level.
    Literal(String),
    /// `+`: any one level.
    Plus,
    /// `{site}`: any one level, captured as the site id.
    Site,
    /// `{meter}`: any one level, captured as the meter id.
    Meter,
    /// `#`: the rest (last level only).
    Hash,
}

/// A parsed topic template, e.g. `energy/{site}/{meter}/up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    levels: Vec<Level>,
    filter: String,
    template: String,
}

/// The ids a topic names through `{site}` and `{meter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicIds<'t> {
    /// The level matched by `{site}`, when the template has one.
    pub site: Option<&'t str>,
    /// The level matched by `{meter}`, when the template has one.
    pub meter: Option<&'t str>,
}

impl TopicTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// A message (without the template itself) saying what is wrong: an
    /// empty template or level, `#` not last, a wildcard or placeholder
    /// that is not a whole level, `{site}` or `{meter}` twice, or an unknown
    /// `{placeholder}`.
    pub fn parse(template: &str) -> Result<TopicTemplate, String> {
        if template.is_empty() {
            return Err("is empty; give a topic such as \"energy/{site}/{meter}/up\"".to_owned());
        }
        if template.contains('\0') {
            return Err("contains a NUL character, which MQTT forbids in topics".to_owned());
        }
        let parts: Vec<&str> = template.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        let (mut site, mut meter) = (false, false);
        for (i, part) in parts.iter().enumerate() {
            let n = i + 1;
            let level = match *part {
                "" => {
                    return Err(format!(
                        "level {n} is empty (\"//\", or a leading or trailing \"/\"); remove the extra \"/\""
                    ));
                }
                "+" => Level::Plus,
                "#" if i + 1 == parts.len() => Level::Hash,
                "#" => {
                    return Err(format!(
                        "\"#\" must be the last level (it is level {n} of {})",
                        parts.len()
                    ));
                }
                "{site}" if site => return Err("\"{site}\" appears twice".to_owned()),
                "{meter}" if meter => return Err("\"{meter}\" appears twice".to_owned()),
                "{site}" => {
                    site = true;
                    Level::Site
                }
                "{meter}" => {
                    meter = true;
                    Level::Meter
                }
                p if p.starts_with('{') && p.ends_with('}') => {
                    return Err(format!(
                        "unknown placeholder \"{p}\"; use \"{{site}}\" or \"{{meter}}\" (or \"+\" for a level that names nothing)"
                    ));
                }
                p if p.contains(['+', '#']) => {
                    return Err(format!(
                        "level \"{p}\": \"+\" and \"#\" must stand alone in their level"
                    ));
                }
                p if p.contains(['{', '}']) => {
                    return Err(format!(
                        "level \"{p}\": a placeholder must be a whole level, e.g. \"a/{{meter}}/b\""
                    ));
                }
                p => Level::Literal(p.to_owned()),
            };
            levels.push(level);
        }
        let filter = levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Plus | Level::Site | Level::Meter => "+",
                Level::Hash => "#",
            })
            .collect::<Vec<_>>()
            .join("/");
        Ok(TopicTemplate {
            levels,
            filter,
            template: template.to_owned(),
        })
    }

    /// The MQTT subscription filter (`{site}` and `{meter}` become `+`).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// True when the template names the meter with `{meter}`.
    pub fn has_meter(&self) -> bool {
        self.levels.contains(&Level::Meter)
    }

    /// True when the template names the site with `{site}`.
    pub fn has_site(&self) -> bool {
        self.levels.contains(&Level::Site)
    }

    /// Matches a received topic; the captured ids on success.
    pub fn matches<'t>(&self, topic: &'t str) -> Option<TopicIds<'t>> {
        // MQTT: `$SYS/...` and other `$` topics are not matched by a
        // wildcard in the first level.
        if topic.starts_with('$') && !matches!(self.levels.first(), Some(Level::Literal(_))) {
            return None;
        }
        let mut ids = TopicIds::default();
        let mut parts = topic.split('/');
        for level in &self.levels {
            if *level == Level::Hash {
                // Matches the parent level alone too (`a/#` matches `a`).
                return Some(ids);
            }
            let part = parts.next()?;
            match level {
                Level::Literal(s) if s != part => return None,
                Level::Site => ids.site = Some(part),
                Level::Meter => ids.meter = Some(part),
                _ => {}
            }
        }
        parts.next().is_none().then_some(ids)
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TopicTemplate {
        TopicTemplate::parse(s).expect("valid template")
    }

    #[allow(clippy::unnecessary_wraps)] // compared with `matches`, which returns an Option
    fn ids<'a>(site: Option<&'a str>, meter: Option<&'a str>) -> Option<TopicIds<'a>> {
        Some(TopicIds { site, meter })
    }

    #[test]
    fn placeholders_become_plus_in_the_filter() {
        assert_eq!(t("energy/{site}/{meter}/up").filter(), "energy/+/+/up");
        assert_eq!(t("a/+/#").filter(), "a/+/#");
        assert_eq!(t("#").filter(), "#");
        assert_eq!(t("plain").filter(), "plain");
        assert!(t("x/{meter}").has_meter());
        assert!(!t("x/{meter}").has_site());
    }

    #[test]
    fn site_and_meter_are_captured() {
        let tpl = t("energy/{site}/{meter}/up");
        assert_eq!(
            tpl.matches("energy/fz01/m-17/up"),
            ids(Some("fz01"), Some("m-17"))
        );
        assert_eq!(tpl.matches("energy/fz01/m-17/down"), None);
        assert_eq!(tpl.matches("energy/fz01/m-17"), None);
        assert_eq!(tpl.matches("energy/fz01/m-17/up/x"), None);
        assert_eq!(tpl.matches("other/fz01/m-17/up"), None);
        // `+` and placeholders match an empty level, as in MQTT.
        assert_eq!(tpl.matches("energy//m/up"), ids(Some(""), Some("m")));
    }

    #[test]
    fn plus_matches_exactly_one_level() {
        let tpl = t("a/+/{meter}");
        assert_eq!(tpl.matches("a/x/m1"), ids(None, Some("m1")));
        assert_eq!(tpl.matches("a/m1"), None);
        assert_eq!(tpl.matches("a/x/y/m1"), None);
    }

    #[test]
    fn hash_matches_the_rest_and_the_parent() {
        let tpl = t("meters/{meter}/#");
        assert_eq!(tpl.matches("meters/m1/a/b/c"), ids(None, Some("m1")));
        assert_eq!(tpl.matches("meters/m1/a"), ids(None, Some("m1")));
        assert_eq!(tpl.matches("meters/m1"), ids(None, Some("m1")));
        assert_eq!(tpl.matches("meters"), None);
        assert_eq!(t("#").matches("any/thing"), ids(None, None));
        assert_eq!(t("#").matches("/"), ids(None, None));
    }

    #[test]
    fn dollar_topics_escape_first_level_wildcards() {
        assert_eq!(t("#").matches("$SYS/broker/uptime"), None);
        assert_eq!(t("+/broker/uptime").matches("$SYS/broker/uptime"), None);
        assert_eq!(t("{meter}/up").matches("$x/up"), None);
        assert_eq!(t("$SYS/#").matches("$SYS/broker/uptime"), ids(None, None));
        // Only the first level is special.
        assert_eq!(t("a/+").matches("a/$x"), ids(None, None));
    }

    #[test]
    fn empty_topic_levels_are_literal_mismatches() {
        assert_eq!(t("a/b").matches("a//b"), None);
        assert_eq!(t("a/b").matches("a/b/"), None);
        assert_eq!(t("a/+").matches("a/"), ids(None, None));
    }

    #[test]
    fn bad_templates_say_why() {
        let err = |s: &str| TopicTemplate::parse(s).expect_err("invalid");
        assert_eq!(
            err(""),
            "is empty; give a topic such as \"energy/{site}/{meter}/up\""
        );
        assert_eq!(
            err("a/#/b"),
            "\"#\" must be the last level (it is level 2 of 3)"
        );
        assert_eq!(err("{meter}/x/{meter}"), "\"{meter}\" appears twice");
        assert_eq!(err("{site}/{site}"), "\"{site}\" appears twice");
        assert_eq!(
            err("a/{device}"),
            "unknown placeholder \"{device}\"; use \"{site}\" or \"{meter}\" (or \"+\" for a level that names nothing)"
        );
        assert_eq!(
            err("a//b"),
            "level 2 is empty (\"//\", or a leading or trailing \"/\"); remove the extra \"/\""
        );
        assert_eq!(
            err("/a"),
            "level 1 is empty (\"//\", or a leading or trailing \"/\"); remove the extra \"/\""
        );
        assert_eq!(
            err("a/b+"),
            "level \"b+\": \"+\" and \"#\" must stand alone in their level"
        );
        assert_eq!(
            err("a/m-{meter}"),
            "level \"m-{meter}\": a placeholder must be a whole level, e.g. \"a/{meter}/b\""
        );
    }
}
