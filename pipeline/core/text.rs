//! Text for messages: every error a user sees is one line.

/// A message on one line (some library errors span several), cut after
/// 1000 characters: a value quoted from a broken file may be megabytes.
pub fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    cut(line, 1000)
}

/// `text` cut after `max` characters, saying how many were left out.
pub fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((at, _)) => {
            let left = text[at..].chars().count();
            format!("{}… ({left} more characters)", &text[..at])
        }
    }
}
