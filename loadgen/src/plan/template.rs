//! Templates of the app file: `{name}` placeholders in strings (`{{` and `}}` for braces), and
//! JSON values whose every string is one. Which names a template may use depends on where it
//! is: a tab's auth knows the tab, a room's name its `{n}` too, a publish its marker.

use serde_json::Value;

/// Known for every template: the tab's index in the plan, and the run's marker nonce (8 hex
/// digits, the same in every shard of a run).
pub const TAB_VARS: &[&str] = &["tab", "run"];
/// A room family's name: the tab's variables and the room's number `{n}` (1-based).
pub const FAMILY_VARS: &[&str] = &["tab", "run", "n"];
/// A join's arguments: the room's name too.
pub const ROOM_VARS: &[&str] = &["tab", "run", "n", "room"];
/// A replay request: the room it asks for, and from when (`{since_ms}`, `{since}`).
pub const REPLAY_VARS: &[&str] = &["tab", "run", "n", "room", "since_ms", "since"];
/// A publish: the marker it carries, its number in the run `{seq}`, another tab of the run
/// (`{peer}`, drawn per publish: whom to write to), and a one-minute slot of time of its own
/// (`{start}`, `{end}`, RFC 3339) for apps that refuse overlapping bookings.
pub const PUBLISH_VARS: &[&str] = &[
    "tab", "run", "n", "room", "marker", "seq", "peer", "start", "end",
];

pub struct Template;

impl Template {
    /// Checks that `text`'s placeholders are closed and known here (`csv.COLUMN` only when
    /// the file names a CSV; its columns are checked when it is read).
    pub fn check(text: &str, vars: &[&str], csv: bool) -> Result<(), String> {
        let mut bad = None;
        render_with(text, &mut |name| {
            let known = vars.contains(&name) || (csv && name.starts_with("csv."));
            if !known && bad.is_none() {
                bad = Some(name.to_string());
            }
            Some(String::new())
        })?;
        match bad {
            None => Ok(()),
            Some(name) if name.starts_with("csv.") => Err(format!(
                "`{{{name}}}` needs `auth_csv`, the file whose columns it names"
            )),
            Some(name) => Err(format!(
                "unknown placeholder `{{{name}}}`: here it may be one of {}",
                vars.iter()
                    .map(|v| format!("{{{v}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// [`Template::check`] for every string of a JSON value (keys included).
    pub fn check_value(value: &Value, vars: &[&str], csv: bool) -> Result<(), String> {
        let mut result = Ok(());
        visit_strings(value, &mut |s| {
            if result.is_ok() {
                result = Self::check(s, vars, csv);
            }
        });
        result
    }

    /// Whether some string of `value` uses `{name}`.
    pub fn value_mentions(value: &Value, name: &str) -> bool {
        let needle = format!("{{{name}}}");
        let mut found = false;
        visit_strings(value, &mut |s| found |= s.contains(&needle));
        found
    }
}

fn visit_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => {
            for (k, v) in map {
                f(k);
                visit_strings(v, f);
            }
        }
        _ => {}
    }
}

/// `text` with each `{name}` replaced by `var(name)`; an unknown name is an error.
pub fn render(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    render_with(text, &mut |name| var(name))
}

fn render_with(text: &str, var: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err(format!(
                "`}}` without `{{` in `{text}` (write `}}}}` for a brace)"
            ));
        } else {
            let Some(end) = tail.find('}') else {
                return Err(format!("`{{` is never closed in `{text}`"));
            };
            let name = &tail[1..end];
            if name.is_empty() || name.contains('{') {
                return Err(format!("empty or nested placeholder in `{text}`"));
            }
            match var(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("no value for `{{{name}}}`")),
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` with every string rendered.
pub fn render_value(value: &Value, var: &dyn Fn(&str) -> Option<String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, var)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, var))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(render(k, var)?, render_value(v, var)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(name: &str) -> Option<String> {
        match name {
            "n" => Some("3".into()),
            "room" => Some("boardroom-3".into()),
            _ => None,
        }
    }

    #[test]
    fn placeholders_are_replaced_and_braces_escaped() {
        assert_eq!(
            render("{room} is #{n} {{not}} }}", &vars).unwrap(),
            "boardroom-3 is #3 {not} }"
        );
        let v = render_value(&json!({"id": "{n}", "list": ["{room}", 4]}), &vars).unwrap();
        assert_eq!(v, json!({"id": "3", "list": ["boardroom-3", 4]}));
    }

    #[test]
    fn broken_and_unknown_placeholders_are_refused_with_what_is_known() {
        assert!(render("{room", &vars).unwrap_err().contains("never closed"));
        assert!(render("room}", &vars).unwrap_err().contains("without"));
        assert!(render("{}", &vars).unwrap_err().contains("empty"));
        let e = Template::check("{rom}", ROOM_VARS, false).unwrap_err();
        assert!(e.contains("`{rom}`") && e.contains("{room}"), "{e}");
        assert!(
            Template::check("{csv.user}", ROOM_VARS, false)
                .unwrap_err()
                .contains("auth_csv")
        );
        assert!(Template::check("{csv.user}-{n}", ROOM_VARS, true).is_ok());
        assert!(Template::value_mentions(
            &json!({"a": ["x {marker}"]}),
            "marker"
        ));
        assert!(!Template::value_mentions(&json!({"a": "{room}"}), "marker"));
    }
}
