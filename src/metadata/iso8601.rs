//! The durations the YouTube Data API writes (`contentDetails.duration`): ISO
//! 8601 durations such as `PT4M13S`, `PT1H2M3S`, `P1DT2H` or `P0D` (a live
//! stream). Only the designators a duration of time can carry are taken: weeks,
//! days, hours, minutes and seconds. Years and months (of no fixed length) are
//! refused, as is anything malformed; a caller then simply has no duration.

/// Seconds in each designator a video's duration may use.
const WEEK: f64 = 7.0 * DAY;
const DAY: f64 = 24.0 * HOUR;
const HOUR: f64 = 3600.0;
const MINUTE: f64 = 60.0;

/// The seconds `text` stands for, or `None` when it is not a duration of time.
pub fn parse_duration(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => {
            // `T` must introduce at least one time part.
            if time.is_empty() {
                return None;
            }
            (date, Some(time))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut seconds = sum_parts(date, &[('W', WEEK), ('D', DAY)])?;
    if let Some(time) = time {
        seconds += sum_parts(time, &[('H', HOUR), ('M', MINUTE), ('S', 1.0)])?;
    }
    seconds.is_finite().then_some(seconds)
}

/// Adds up `12H30M`-style parts whose designators appear in `units`' order,
/// each at most once; a fraction is allowed only in the last part.
fn sum_parts(text: &str, units: &[(char, f64)]) -> Option<f64> {
    let mut total = 0.0;
    let mut next_unit = 0;
    let mut number_start = 0;
    let mut fraction_seen = false;
    for (at, c) in text.char_indices() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            continue;
        }
        if fraction_seen {
            return None;
        }
        let number = &text[number_start..at];
        let offset = units[next_unit..].iter().position(|(unit, _)| *unit == c)?;
        next_unit += offset + 1;
        let value = parse_number(number)?;
        fraction_seen = number.contains(['.', ',']);
        total += value * units[next_unit - 1].1;
        number_start = at + c.len_utf8();
    }
    // Every number must end in a designator.
    (number_start == text.len()).then_some(total)
}

fn parse_number(text: &str) -> Option<f64> {
    if text.is_empty() || !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    text.replace(',', ".").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_videos_are_read_in_seconds() {
        for (text, seconds) in [
            ("PT4M13S", 253.0),
            ("PT1H2M3S", 3723.0),
            ("PT15M51S", 951.0),
            ("PT45S", 45.0),
            ("PT1H", 3600.0),
            ("P1DT2H", 93_600.0),
            ("P1W", 604_800.0),
            ("P0D", 0.0),
            ("PT0S", 0.0),
            ("PT1.5S", 1.5),
            ("PT2M0,25S", 120.25),
        ] {
            assert_eq!(parse_duration(text), Some(seconds), "{text}");
        }
    }

    #[test]
    fn what_is_no_duration_of_time_is_refused() {
        for text in [
            "", "P", "PT", "4M13S", "PT4M13", "PT13S4M", "PT4M4M", "P1Y", "P1M", "PT-1S", "PT.5S",
            "PT1.5M3S", "PTS", "P1DT", "pt4m", "PT4M13S ", "PT1H2X",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }
}
