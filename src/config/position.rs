//! Where a component's setting starts in the pipeline file, so that an error a component
//! finds inside a value (a remap program's line and column) can be shown at its place in the
//! file. Reads the text as written, before `${ENV}` substitution.

use super::document::section_of;
use super::ComponentKind;

/// A line and column, both from 1.
pub type Position = (usize, usize);

/// Where the text of string `field` of component `id` begins in `text`: the character after
/// its opening quote, or the start of the next line for a multi-line string whose opening
/// quotes end their line (TOML drops that newline). `None` when the setting is not written
/// as `field = "..."` in a `[KIND.ID]` table (an inline table, a dotted key).
pub fn value_start(text: &str, kind: ComponentKind, id: &str, field: &str) -> Option<Position> {
    let header = format!("[{}.{id}]", section_of(kind)?);
    let mut lines = text.lines().enumerate();
    lines.find(|(_, line)| line.trim() == header)?;
    for (index, line) in lines {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            return None;
        }
        let Some(rest) = trimmed.strip_prefix(field) else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let column = line.len() - value.len() + 1;
        for quotes in ["'''", "\"\"\"", "'", "\""] {
            if let Some(after) = value.strip_prefix(quotes) {
                return if quotes.len() == 3 && after.trim_end_matches('\r').is_empty() {
                    Some((index + 2, 1))
                } else {
                    Some((index + 1, column + quotes.len()))
                };
            }
        }
        return None;
    }
    None
}

/// `at` (a position inside a value that begins at `start`) as a position in the file.
pub fn within(start: Position, at: Position) -> Position {
    let (line, column) = at;
    if line <= 1 {
        (start.0, start.1 + column.saturating_sub(1))
    } else {
        (start.0 + line - 1, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[sources.in]\ntype = \"stdin\"\n\n[transforms.shape]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '''\n.a = 1\n.b = x\n'''\n\n[transforms.one]\n  source   =  '.a = oops'\n[sinks.out]\nsource = 'not this'\n";

    #[test]
    fn finds_where_a_string_value_begins() {
        assert_eq!(
            value_start(FILE, ComponentKind::Transform, "shape", "source"),
            Some((8, 1)),
            "a multi-line string begins on the line after its quotes"
        );
        assert_eq!(
            value_start(FILE, ComponentKind::Transform, "one", "source"),
            Some((13, 16))
        );
        assert_eq!(
            value_start(FILE, ComponentKind::Transform, "missing", "source"),
            None
        );
        assert_eq!(
            value_start(FILE, ComponentKind::Transform, "one", "file"),
            None,
            "not in the component's table (the next table's key does not count)"
        );
    }

    #[test]
    fn maps_a_position_inside_the_value_into_the_file() {
        assert_eq!(within((8, 1), (2, 6)), (9, 6));
        assert_eq!(within((13, 16), (1, 6)), (13, 21));
    }
}
