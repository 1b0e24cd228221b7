//! Reading the integrations list into the shared contract's types, with one difference from
//! their own `Deserialize`: `connected_at` is read by the small RFC 3339 reader below instead of
//! `time`'s general-purpose parser, which alone would be about 5 % of the widget's gzipped size
//! (for a date the widget never shows).
//!
//! The definitions mirror `latch_shared::api::widget` through serde's remote derive: they
//! build the shared structs themselves, so a field added, removed or retyped there fails to
//! compile here, and the tests below check that every shape the shared types write reads back
//! the same through these definitions (names, defaults, optional fields).

use latch_shared::api::widget::{Integration, IntegrationList, WidgetConnection};
use latch_shared::{ConnectionStatus, Resource};
use serde::{Deserialize, Deserializer};
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

/// `GET /widget/v1/integrations`'s answer.
pub fn integration_list<'de, D: Deserializer<'de>>(d: D) -> Result<IntegrationList, D::Error> {
    IntegrationListDef::deserialize(d)
}

#[derive(Deserialize)]
#[serde(remote = "IntegrationList")]
struct IntegrationListDef {
    #[serde(deserialize_with = "integrations")]
    data: Vec<Integration>,
}

#[derive(Deserialize)]
#[serde(remote = "Integration")]
struct IntegrationDef {
    key: String,
    name: String,
    description: String,
    scopes: Vec<String>,
    #[serde(deserialize_with = "connections")]
    connections: Vec<WidgetConnection>,
    #[serde(default = "yes")]
    connectable: bool,
}

/// `connectable`'s default: a server from before the field offered every provider it listed.
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(remote = "WidgetConnection")]
struct WidgetConnectionDef {
    id: String,
    account_label: Option<String>,
    status: ConnectionStatus,
    scopes: Vec<String>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(deserialize_with = "rfc3339_field")]
    connected_at: OffsetDateTime,
    #[serde(default)]
    resources: Vec<Resource>,
}

fn integrations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Integration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct One(#[serde(with = "IntegrationDef")] Integration);
    Ok(Vec::<One>::deserialize(d)?.into_iter().map(|One(i)| i).collect())
}

fn connections<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WidgetConnection>, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct One(#[serde(with = "WidgetConnectionDef")] WidgetConnection);
    Ok(Vec::<One>::deserialize(d)?.into_iter().map(|One(c)| c).collect())
}

fn rfc3339_field<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let text = String::deserialize(d)?;
    rfc3339(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date-time"))
}

/// An RFC 3339 date-time (`2024-05-01T12:34:56.789Z`, `…+02:00`), read exactly as `time`'s
/// `Rfc3339` reads it (the tests compare the two), without its general parser.
pub fn rfc3339(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    let byte = |i: usize| b.get(i).copied();
    let digits = |from: usize, len: usize| -> Option<u32> {
        b.get(from..from + len)?.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let narrow = |n: u32| u8::try_from(n).ok();
    // `YYYY-MM-DD?HH:MM:SS`, where `?` is any one byte (RFC 3339 allows a space for the `T`).
    if [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')].iter().any(|&(i, c)| byte(i) != Some(c)) {
        return None;
    }
    let year = i32::try_from(digits(0, 4)?).ok()?;
    let month = Month::try_from(narrow(digits(5, 2)?)?).ok()?;
    let day = narrow(digits(8, 2)?)?;
    let (hour, minute) = (narrow(digits(11, 2)?)?, narrow(digits(14, 2)?)?);
    let mut second = narrow(digits(17, 2)?)?;
    let mut i = 19;
    let mut nanosecond = 0u32;
    if byte(i) == Some(b'.') {
        let mut scale = 1_000_000_000;
        while let Some(c) = byte(i + 1).filter(u8::is_ascii_digit) {
            scale /= 10;
            nanosecond += u32::from(c - b'0') * scale;
            i += 1;
        }
        if scale == 1_000_000_000 {
            return None;
        }
        i += 1;
    }
    let offset = match byte(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && byte(i + 3) == Some(b':') => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = i32::try_from(h * 3600 + m * 60).ok()?;
            if sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // A leap second reads as the last instant of the second before, and only where one can
    // be: the end of a month, UTC.
    let leap = second == 60;
    if leap {
        second = 59;
        nanosecond = 999_999_999;
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanosecond).ok()?;
    let value = OffsetDateTime::new_in_offset(date, time, UtcOffset::from_whole_seconds(offset).ok()?);
    if leap {
        let utc = value.checked_to_offset(UtcOffset::UTC)?;
        if (utc.hour(), utc.minute(), utc.day()) != (23, 59, utc.month().length(utc.year())) {
            return None;
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_shared::api::widget::IntegrationList;
    use serde_json::json;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn reads_rfc3339_as_time_does() {
        let samples = [
            "2024-05-01T12:34:56Z",
            "2024-05-01T12:34:56.789Z",
            "2024-05-01T12:34:56.123456789Z",
            "2024-05-01T12:34:56.1234567891Z",
            "2024-05-01t12:34:56z",
            "2024-05-01T12:34:56+02:00",
            "2024-05-01T12:34:56-07:30",
            "2024-05-01T12:34:56-00:00",
            "1970-01-01T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:59:60+01:00",
            "2016-12-30T23:59:60Z",
            "2024-05-01T12:59:60Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56.Z",
            "2024-05-01 12:34:56Z",
            "2024-05-01_12:34:56Z",
            "2024-05-01é12:34:56Z",
            "9999-12-31T23:59:60-01:00",
            "0000-01-01T00:00:00+01:00",
            "2024-05-01T12:34:56+2:00",
            "2024-05-01T12:34:56+24:00",
            "2024-05-01T12:34:56Zjunk",
            "2024-5-01T12:34:56Z",
            "+2024-05-01T12:34:56Z",
            "2024-05-01T12:34:56.-1Z",
            "é024-05-01T12:34:56Z",
            "",
        ];
        for sample in samples {
            assert_eq!(rfc3339(sample), OffsetDateTime::parse(sample, &Rfc3339).ok(), "{sample}");
        }
    }

    #[test]
    fn reads_what_the_shared_types_write() {
        let connected_at = OffsetDateTime::parse("2024-05-01T12:34:56.5+02:00", &Rfc3339).unwrap();
        let list = IntegrationList {
            data: vec![
                Integration {
                    key: "slack".into(),
                    name: "Slack".into(),
                    description: "Posts deploys.".into(),
                    scopes: vec!["chat:write".into()],
                    connections: vec![
                        WidgetConnection {
                            id: "conn_1".into(),
                            account_label: Some("Acme".into()),
                            status: ConnectionStatus::NeedsReauthorization,
                            scopes: vec!["chat:write".into(), "channels:read".into()],
                            purpose: Some("Deploy notices".into()),
                            connected_at,
                            resources: vec![Resource {
                                kind: "channel".into(),
                                id: "C1".into(),
                                name: Some("#deploys".into()),
                            }],
                        },
                        WidgetConnection {
                            id: "conn_2".into(),
                            account_label: None,
                            status: ConnectionStatus::Active,
                            scopes: vec![],
                            purpose: None,
                            connected_at: OffsetDateTime::UNIX_EPOCH,
                            resources: vec![],
                        },
                    ],
                    connectable: false,
                },
                Integration {
                    key: "sandbox".into(),
                    name: "Sandbox".into(),
                    description: String::new(),
                    scopes: vec![],
                    connections: vec![],
                    connectable: true,
                },
            ],
        };
        let written = serde_json::to_value(&list).unwrap();
        assert_eq!(integration_list(&written).unwrap(), list);
        // Fields the shared types default when absent, and ones they do not know, read the same.
        let sparse = json!({"data": [{"key": "k", "name": "N", "description": "", "scopes": [], "connections": [
            {"id": "c", "status": "active", "scopes": [], "connected_at": "2024-05-01T00:00:00Z", "new": 1}
        ]}]});
        let shared: IntegrationList = serde_json::from_value(sparse.clone()).unwrap();
        assert_eq!(integration_list(&sparse).unwrap(), shared);
        // And what they refuse, these refuse.
        for bad in [
            json!({"data": [{"key": "k"}]}),
            json!({"data": [{"key": "k", "name": "N", "description": "", "scopes": [], "connections": [
                {"id": "c", "status": "gone", "scopes": [], "connected_at": "2024-05-01T00:00:00Z"}]}]}),
            json!({"data": [{"key": "k", "name": "N", "description": "", "scopes": [], "connections": [
                {"id": "c", "status": "active", "scopes": [], "connected_at": "yesterday"}]}]}),
        ] {
            assert!(serde_json::from_value::<IntegrationList>(bad.clone()).is_err());
            assert!(integration_list(&bad).is_err(), "{bad}");
        }
    }
}
